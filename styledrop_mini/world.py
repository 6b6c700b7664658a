"""The mini world: a procedural, captioned image world we can train everything on from scratch.

Every image is fully described by four things: a content (a shape, an icon or a capital letter), a
colour, a style, and a render seed that sets the jitter (position, size, rotation, texture noise).
Because we draw each image ourselves we know its ground truth exactly, which the StyleDrop paper
could not: later notebooks measure style transfer against it.

Rendering happens in two stages, which is also how the code is laid out:
  1. `content_mask` draws the content as a grey-level mask (white = content) with jitter;
  2. a *style* turns mask + colour into an RGB picture: texture, stroke, palette and background.
We draw at `SUPERSAMPLE`× the output size and shrink with a box filter, so edges are anti-aliased.
All lengths are in units of `u = canvas / 64`, so a 256-pixel render is a crisper 64-pixel one.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

# ----------------------------------------------------------------------------------------------
# What the world contains
# ----------------------------------------------------------------------------------------------
SHAPES = (
    "circle", "square", "triangle", "star", "heart", "diamond", "cross",
    "moon", "ring", "arrow", "house", "tree", "hexagon", "lightning bolt",
)
LETTERS = tuple(f"letter {chr(c)}" for c in range(ord("A"), ord("Z") + 1))
CONTENTS = SHAPES + LETTERS

COLOURS = {  # name -> RGB; chosen to stay apart from each other under every style
    "red": (214, 40, 40),
    "orange": (247, 127, 0),
    "yellow": (245, 200, 20),
    "green": (46, 160, 67),
    "teal": (0, 150, 150),
    "blue": (40, 80, 210),
    "purple": (126, 58, 180),
    "pink": (236, 100, 170),
}

# style name -> the descriptor that goes into captions ("a red star in {descriptor} style")
STYLES = {
    "flat": "flat",
    "line art": "line art",
    "striped": "striped",
    "polka dot": "polka dot",
    "checkered": "checkered",
    "pixel art": "pixel art",
    "shadow 3d": "3d drop shadow",
    "sketch": "pencil sketch",
    "blueprint": "blueprint",
    "watercolor": "watercolor painting",
    "stained glass": "stained glass",
    "neon": "glowing neon",
}
# Never shown to the base generator: StyleDrop must learn these from one reference image.
HELD_OUT_STYLES = ("watercolor", "stained glass", "neon")
SEEN_STYLES = tuple(s for s in STYLES if s not in HELD_OUT_STYLES)

CAPTION_TEMPLATES = (  # the first one is canonical; the rest are paraphrases
    "a {colour} {content} in {style} style",
    "a {style} picture of a {colour} {content}",
    "{colour} {content}, {style} style",
    "a {colour} {content} drawn in {style} style",
)

IMAGE_SIZE = 64  # 8x downsampling in the tokenizer then gives an 8x8 = 64-token grid
SUPERSAMPLE = 2  # draw at 2x and shrink: anti-aliased edges at little cost


def caption(content: str, colour: str, style: str, template: int = 0) -> str:
    """The caption of an image: `a {colour} {content} in {style descriptor} style` or a paraphrase."""
    _check_labels(content, colour, style)
    return with_articles(CAPTION_TEMPLATES[template].format(colour=colour, content=content, style=STYLES[style]))


def with_articles(text: str) -> str:
    """'a' before a vowel becomes 'an' ("an orange star"), as a person would write it."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _check_labels(content: str, colour: str, style: str) -> None:
    for value, known, kind in ((content, CONTENTS, "content"), (colour, COLOURS, "colour"),
                               (style, STYLES, "style")):
        if value not in known:
            raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(known)}")


# ----------------------------------------------------------------------------------------------
# Stage 1: contents as masks
# ----------------------------------------------------------------------------------------------
def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    return [((1 if k % 2 == 0 else inner) * math.sin(math.pi * k / points),
             -(1 if k % 2 == 0 else inner) * math.cos(math.pi * k / points)) for k in range(2 * points)]


def _regular(n: int, phase: float = 0.0) -> list[tuple[float, float]]:
    return [(math.cos(2 * math.pi * k / n + phase), math.sin(2 * math.pi * k / n + phase)) for k in range(n)]


def _heart() -> list[tuple[float, float]]:
    pts = []
    for k in range(64):  # the classic parametric heart, scaled into [-1, 1]
        t = 2 * math.pi * k / 64
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17, -y / 17 + 0.1))
    return pts


# Shapes drawn as polygons in a unit frame: x and y in [-1, 1], y pointing down (image convention).
POLYGONS = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0, -0.95), (0.95, 0.75), (-0.95, 0.75)],
    "star": _star(),
    "heart": _heart(),
    "diamond": [(0, -1), (0.7, 0), (0, 1), (-0.7, 0)],
    "cross": [(-0.3, -0.9), (0.3, -0.9), (0.3, -0.3), (0.9, -0.3), (0.9, 0.3), (0.3, 0.3),
              (0.3, 0.9), (-0.3, 0.9), (-0.3, 0.3), (-0.9, 0.3), (-0.9, -0.3), (-0.3, -0.3)],
    "arrow": [(-0.95, -0.25), (0.15, -0.25), (0.15, -0.7), (0.95, 0), (0.15, 0.7), (0.15, 0.25),
              (-0.95, 0.25)],
    "house": [(-0.75, -0.1), (0, -0.9), (0.75, -0.1), (0.75, 0.9), (-0.75, 0.9)],
    "hexagon": _regular(6),
    "lightning bolt": [(0.15, -1), (-0.6, 0.15), (-0.05, 0.15), (-0.25, 1), (0.6, -0.2),
                       (0.05, -0.2), (0.3, -1)],
}


@lru_cache(maxsize=8)
def _font(pixels: int) -> ImageFont.FreeTypeFont:
    # Pillow >= 10.1 ships a scalable font (Aileron) inside the package: works offline.
    return ImageFont.load_default(size=pixels)


def draw_content(content: str, canvas: int, scale: float = 0.7) -> Image.Image:
    """The content, upright and centred, as an 'L' mask of `canvas` pixels (no jitter)."""
    if content not in CONTENTS:
        raise ValueError(f"unknown content {content!r}; choose one of: {', '.join(CONTENTS)}")
    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    half = canvas / 2
    r = scale * half  # the content spans about `scale` of the canvas

    def xy(points):
        return [(half + r * x, half + r * y) for x, y in points]

    def disc(cx, cy, rad, fill=255):
        draw.ellipse([half + r * (cx - rad), half + r * (cy - rad),
                      half + r * (cx + rad), half + r * (cy + rad)], fill=fill)

    if content in POLYGONS:
        draw.polygon(xy(POLYGONS[content]), fill=255)
        if content == "house":  # a door, so a house is not just a pentagon
            draw.rectangle(xy([(-0.18, 0.35), (0.18, 0.9)]), fill=0)
    elif content == "circle":
        disc(0, 0, 0.9)
    elif content == "ring":
        disc(0, 0, 0.92)
        disc(0, 0, 0.55, fill=0)
    elif content == "moon":
        disc(0, 0, 0.9)
        disc(0.42, -0.2, 0.72, fill=0)
    elif content == "tree":
        draw.polygon(xy([(0, -1), (0.65, -0.1), (-0.65, -0.1)]), fill=255)
        draw.polygon(xy([(0, -0.55), (0.85, 0.5), (-0.85, 0.5)]), fill=255)
        draw.rectangle(xy([(-0.15, 0.5), (0.15, 1.0)]), fill=255)
    else:  # "letter X": the glyph scaled so its box fills the same span as a shape
        glyph = content[-1]
        font = _font(int(2 * r * 1.25))
        left, top, right, bottom = draw.textbbox((0, 0), glyph, font=font)
        draw.text((half - (left + right) / 2, half - (top + bottom) / 2), glyph, font=font, fill=255)
        # The built-in font is light; thicken its strokes so a letter survives 64 px and textures.
        mask = mask.filter(ImageFilter.MaxFilter(2 * (canvas // 64) + 1))
    return mask


@dataclass(frozen=True)
class Jitter:
    """Where and how big the content sits: the per-image randomness besides texture noise."""
    dx: float  # centre offset, fraction of the canvas
    dy: float
    scale: float  # span of the content, fraction of the canvas
    angle: float  # degrees, counter-clockwise

    @staticmethod
    def draw(rng: np.random.Generator, content: str) -> "Jitter":
        max_angle = 12 if content.startswith("letter") else 25  # letters must stay readable
        return Jitter(dx=rng.uniform(-0.1, 0.1), dy=rng.uniform(-0.1, 0.1),
                      scale=rng.uniform(0.55, 0.75), angle=rng.uniform(-max_angle, max_angle))


def content_mask(content: str, canvas: int, jitter: Jitter) -> Image.Image:
    """Stage 1: the content as an 'L' mask, moved, scaled and rotated by `jitter`."""
    mask = draw_content(content, canvas, jitter.scale)
    return mask.rotate(jitter.angle, resample=Image.BILINEAR,
                       translate=(jitter.dx * canvas, jitter.dy * canvas))


# ----------------------------------------------------------------------------------------------
# Stage 2: styles turn (mask, colour) into pictures
# ----------------------------------------------------------------------------------------------
# Everything below works on float arrays: mask m in [0, 1] of shape (S, S), images (S, S, 3).
def _rgb(colour) -> np.ndarray:
    return np.asarray(colour, dtype=np.float32) / 255.0


def _mix(a, b, t):
    """Linear blend a -> b by t (t broadcast over the colour channel when it is a mask)."""
    t = np.asarray(t, dtype=np.float32)
    if t.ndim == 2:
        t = t[..., None]
    return np.asarray(a, dtype=np.float32) * (1 - t) + np.asarray(b, dtype=np.float32) * t


def _canvas(S: int, colour) -> np.ndarray:
    return np.broadcast_to(_rgb(colour), (S, S, 3)).copy()


def _arr(mask: Image.Image) -> np.ndarray:
    return np.asarray(mask, dtype=np.float32) / 255.0


def _edge(mask: Image.Image, width: int) -> np.ndarray:
    """A band of about `width` pixels along the boundary of the mask (dilation minus erosion)."""
    size = 2 * (width // 2) + 1
    outer = mask.filter(ImageFilter.MaxFilter(size))
    inner = mask.filter(ImageFilter.MinFilter(size))
    return _arr(ImageChops.subtract(outer, inner))


def _grid(S: int):
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    return x, y


LIGHT_BACKGROUNDS = ((250, 250, 247), (244, 238, 222), (232, 234, 237), (236, 244, 240))


def style_flat(mask, colour, rng, u):
    bg = LIGHT_BACKGROUNDS[rng.integers(len(LIGHT_BACKGROUNDS))]
    return _mix(_canvas(mask.width, bg), _rgb(colour), _arr(mask))


def style_line_art(mask, colour, rng, u):
    img = _canvas(mask.width, (252, 252, 252))
    return _mix(img, _rgb(colour), _edge(mask, int(3 * u)))


def _patterned(mask, colour, pattern, u, bg=(248, 248, 245)):
    """Fill the content with a two-tone pattern (1 = colour, 0 = pale tint) and outline it."""
    m = _arr(mask)
    c = _rgb(colour)
    pale = _mix(c, 1.0, 0.8)
    fill = _mix(pale, c, pattern)
    img = _mix(_canvas(mask.width, bg), fill, m)
    return _mix(img, c, _edge(mask, int(2 * u)))


# The three pattern styles print their texture on a fixed 8-pixel lattice (at 64 px), like patterned
# paper that the content is cut from. The lattice lines up with the tokenizer's 8x8-pixel patches,
# so a patch of texture always looks the same: the tokenizer spends its codes on shapes, not phases.
def style_striped(mask, colour, rng, u):
    x, y = _grid(mask.width)
    stripes = (((x + y) / (4 * u)).astype(int) % 2).astype(np.float32)  # 45-degree bands
    return _patterned(mask, colour, stripes, u)


def style_polka_dot(mask, colour, rng, u):
    x, y = _grid(mask.width)
    step = 8 * u
    dx = x % step - step / 2
    dy = y % step - step / 2
    dots = (dx ** 2 + dy ** 2 < (2.4 * u) ** 2).astype(np.float32)
    return _patterned(mask, colour, dots, u)


def style_checkered(mask, colour, rng, u):
    x, y = _grid(mask.width)
    cell = 4 * u
    checks = (((x // cell) + (y // cell)) % 2).astype(np.float32)
    return _patterned(mask, colour, checks, u)


def style_pixel_art(mask, colour, rng, u):
    S = mask.width
    block = int(4 * u)  # 16x16 "pixels" at 64 px: chunky staircase edges
    small = mask.resize((S // block, S // block), Image.BOX).point(lambda v: 255 if v > 90 else 0)
    shadow = ImageChops.subtract(ImageChops.offset(small, 1, 1), small)  # a one-pixel drop shadow
    big = _arr(small.resize((S, S), Image.NEAREST))
    img = _mix(_canvas(S, (222, 230, 240)), _rgb((70, 70, 90)), _arr(shadow.resize((S, S), Image.NEAREST)))
    return _mix(img, _rgb(colour), big)


def style_shadow_3d(mask, colour, rng, u):
    S = mask.width
    x, y = _grid(S)
    bg = _mix(_rgb((250, 250, 250)), _rgb((205, 210, 220)), (y / S)[..., None])  # soft gradient
    shift = int(4 * u)
    shadow = ImageChops.offset(mask, shift, shift).filter(ImageFilter.GaussianBlur(1.5 * u))
    img = _mix(bg, _rgb((60, 60, 70)), 0.75 * _arr(shadow))
    m = _arr(mask)
    c = _rgb(colour)
    # Bevel: light on the upper-left rim, dark on the lower-right rim of the content.
    k = int(2 * u)
    upper_left = np.clip(m - _arr(ImageChops.offset(mask, k, k)), 0, 1)
    lower_right = np.clip(m - _arr(ImageChops.offset(mask, -k, -k)), 0, 1)
    face = _mix(_mix(c, 1.0, 0.55 * upper_left), c * 0.5, 0.8 * lower_right)
    return _mix(img, face, m)


def style_sketch(mask, colour, rng, u):
    S = mask.width
    paper = _canvas(S, (238, 236, 230)) + rng.normal(0, 0.02, (S, S, 1)).astype(np.float32)
    c = _rgb(colour) * 0.85
    x, y = _grid(S)
    hatch = ((x - y) % (4 * u) < 0.9 * u).astype(np.float32)  # thin lines, the other diagonal
    img = _mix(paper, c, 0.75 * hatch * _arr(mask))
    for _ in range(3):  # a few loose, jittered strokes along the outline
        dx, dy = rng.integers(-int(1.5 * u), int(1.5 * u) + 1, size=2)
        stroke = _edge(ImageChops.offset(mask, int(dx), int(dy)), max(2, int(u)))
        img = _mix(img, c, 0.8 * stroke)
    return img


def style_blueprint(mask, colour, rng, u):
    S = mask.width
    x, y = _grid(S)
    img = _canvas(S, (22, 62, 132))
    grid = (((x % (8 * u)) < 0.6 * u) | ((y % (8 * u)) < 0.6 * u)).astype(np.float32)
    img = _mix(img, _rgb((90, 130, 200)), grid)
    tint = _mix(_rgb(colour), 1.0, 0.35)  # the content keeps its colour, lightened to read on blue
    img = _mix(img, tint, 0.85 * _arr(mask))
    return _mix(img, _rgb((245, 248, 255)), _edge(mask, max(2, int(1.5 * u))))


def style_watercolor(mask, colour, rng, u):
    S = mask.width
    paper = _canvas(S, (246, 240, 226))
    grain = np.asarray(Image.fromarray(rng.normal(128, 40, (S // 2, S // 2)).clip(0, 255).astype(np.uint8))
                       .resize((S, S), Image.BILINEAR), dtype=np.float32) / 255.0
    paper = paper * (0.94 + 0.08 * grain[..., None])
    # Pigment bleeds: a blurred, wobbly mask; blotches of low-frequency noise vary its density.
    bleed = _arr(mask.filter(ImageFilter.GaussianBlur(2.5 * u)))
    blotch = np.asarray(Image.fromarray(rng.uniform(0, 255, (6, 6)).astype(np.uint8))
                        .resize((S, S), Image.BICUBIC), dtype=np.float32) / 255.0
    density = np.clip(bleed * (0.55 + 0.35 * blotch), 0, 1)
    rim = np.clip(_edge(mask, int(2 * u)) * bleed * 1.6, 0, 1) * 0.35  # pigment pools at the rim
    wash = np.clip(density + rim, 0, 1)
    pigment = _rgb(colour)
    return paper * _mix(1.0, pigment, wash[..., None] * 0.95)  # glazes multiply, like real paint


def style_stained_glass(mask, colour, rng, u):
    S = mask.width
    x, y = _grid(S)
    n = 12  # few, large panes: random leads are noise the 8x8 tokenizer must spend codes on
    seeds = rng.uniform(0, S, size=(n, 2)).astype(np.float32)
    d = (x[..., None] - seeds[:, 0]) ** 2 + (y[..., None] - seeds[:, 1]) ** 2
    cell = d.argmin(-1)  # Voronoi cells: the panes of glass
    shade = rng.uniform(-0.25, 0.25, size=n).astype(np.float32)[cell][..., None]
    m = _arr(mask)
    c = _rgb(colour)
    glass_bg = np.clip(_rgb((214, 206, 186)) + shade * 0.5, 0, 1)  # pale amber panes behind
    glass_fg = np.clip(c + shade * np.where(shade > 0, 1 - c, c), 0, 1)
    img = _mix(glass_bg, glass_fg, (m > 0.5).astype(np.float32))
    lead = (cell != np.roll(cell, 1, 0)) | (cell != np.roll(cell, 1, 1))
    lead_img = Image.fromarray((lead * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * int(0.75 * u) + 1))
    lead = np.maximum(_arr(lead_img), _edge(mask, int(1.5 * u)))
    return _mix(img, _rgb((25, 25, 28)), lead)


def style_neon(mask, colour, rng, u):
    S = mask.width
    x, y = _grid(S)
    r = np.hypot(x - S / 2, y - S / 2) / S
    img = _mix(_rgb((16, 14, 34)), _rgb((4, 4, 10)), np.clip(r * 1.6, 0, 1)[..., None])  # vignette
    c = _rgb(colour)
    tube = Image.fromarray((_edge(mask, int(2 * u)) * 255).astype(np.uint8))
    glow = _arr(tube.filter(ImageFilter.GaussianBlur(3 * u)))
    img = img + c * np.clip(glow * 2.2, 0, 1)[..., None] * 0.9  # light adds up
    core = _arr(tube)
    return _mix(img, _mix(c, 1.0, 0.45), core)


STYLE_RENDERERS = {
    "flat": style_flat, "line art": style_line_art, "striped": style_striped,
    "polka dot": style_polka_dot, "checkered": style_checkered, "pixel art": style_pixel_art,
    "shadow 3d": style_shadow_3d, "sketch": style_sketch, "blueprint": style_blueprint,
    "watercolor": style_watercolor, "stained glass": style_stained_glass, "neon": style_neon,
}
assert set(STYLE_RENDERERS) == set(STYLES), "every style needs a renderer"


# ----------------------------------------------------------------------------------------------
# The whole picture
# ----------------------------------------------------------------------------------------------
def render(content: str, colour: str, style: str, seed: int = 0, size: int = IMAGE_SIZE) -> Image.Image:
    """Render one RGB image of the mini world. Same arguments, same pixels."""
    _check_labels(content, colour, style)
    if not 16 <= size <= 1024:
        raise ValueError(f"size must be between 16 and 1024 pixels, got {size}")
    rng = np.random.default_rng(seed)
    canvas = size * SUPERSAMPLE
    return _paint(content_mask(content, canvas, Jitter.draw(rng, content)), colour, style, rng, size)


def _paint(mask: Image.Image, colour: str, style: str, rng: np.random.Generator, size: int) -> Image.Image:
    """Stage 2 and the shrink: the style turns the mask into pixels, drawn big, then box-filtered."""
    pixels = STYLE_RENDERERS[style](mask, COLOURS[colour], rng, mask.width / 64)
    big = Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    return big.resize((size, size), Image.BOX)


# ----------------------------------------------------------------------------------------------
# A subject for DreamBooth: one particular star, which no caption of the world describes
# ----------------------------------------------------------------------------------------------
# Every "star" of the world has five points. Our subject is an orange star with SIX points: its
# identity is in its shape, which the 8x8-token tokenizer keeps. (A first subject carried a face and
# a teal band; the tokenizer reconstructed it as a plain orange star, so no generator built on it
# could ever draw that identity: notebook 08 shows both.)
SUBJECT = {"class_noun": "star", "identifier": "sks", "colour": "orange", "points": 6}
SUBJECT_POLYGON = _star(SUBJECT["points"], inner=0.55)
# Five "photos" of the same star, as jitters (dx, dy, scale, angle): what a user brings as 3-5 photos.
SUBJECT_POSES = (Jitter(0.0, 0.0, 0.74, 0), Jitter(-0.1, 0.08, 0.62, 14), Jitter(0.1, -0.06, 0.68, -18),
                 Jitter(0.06, 0.1, 0.58, 28), Jitter(-0.08, -0.08, 0.7, -8))


def subject_mask(canvas: int, jitter: Jitter) -> Image.Image:
    """Stage 1 for the subject: its six-pointed outline as an 'L' mask, moved by `jitter`."""
    mask = Image.new("L", (canvas, canvas), 0)
    half, r = canvas / 2, jitter.scale * canvas / 2
    ImageDraw.Draw(mask).polygon([(half + r * x, half + r * y) for x, y in SUBJECT_POLYGON], fill=255)
    return mask.rotate(jitter.angle, resample=Image.BILINEAR, translate=(jitter.dx * canvas, jitter.dy * canvas))


def render_subject(pose: int | None = 0, style: str = "flat", seed: int = 0, colour: str = SUBJECT["colour"],
                   size: int = IMAGE_SIZE) -> Image.Image:
    """The DreamBooth subject drawn like any image of the world: one of its SUBJECT_POSES (or, with
    pose=None, a random jitter from `seed`), in any style — held-out ones included, which is the
    ground truth of "the sks star in watercolor". Another `colour` gives a look-alike that is not it."""
    _check_labels("star", colour, style)
    rng = np.random.default_rng(seed)
    if pose is None:
        jitter = Jitter.draw(rng, "star")
    elif 0 <= pose < len(SUBJECT_POSES):
        jitter = SUBJECT_POSES[pose]
    else:
        raise ValueError(f"pose must be None or in 0..{len(SUBJECT_POSES) - 1}, got {pose}")
    canvas = size * SUPERSAMPLE
    return _paint(subject_mask(canvas, jitter), colour, style, rng, size)


def contact_sheet(seed: int = 0, contents=None, size: int = IMAGE_SIZE, tile: int = 64) -> Image.Image:
    """One row per style (held-out ones marked), one column per content, colours cycling."""
    from .images import image_grid

    contents = contents or SHAPES + ("letter A", "letter G", "letter K", "letter R", "letter S", "letter W")
    colours = list(COLOURS)
    rows = [[render(content, colours[(i + j) % len(colours)], style, seed=seed * 10_000 + i * 100 + j, size=size)
             for j, content in enumerate(contents)] for i, style in enumerate(STYLES)]
    labels = [f"{s} (held out)" if s in HELD_OUT_STYLES else s for s in STYLES]
    return image_grid(rows, row_labels=labels, col_labels=[c.replace("letter ", "") for c in contents], tile=tile,
                      title=f"the mini world: {len(CONTENTS)} contents x {len(COLOURS)} colours x "
                            f"{len(STYLES)} styles ({len(HELD_OUT_STYLES)} held out), seed {seed}")
