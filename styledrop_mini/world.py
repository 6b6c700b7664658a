"""The mini world: a procedural, captioned image world we can train everything on from scratch.

Every image is fully described by four things: a content (a shape, an icon or a capital letter), a
colour, a look (one value for each of five style primitives: background, fill, outline, effect and
palette; styles.py) and a render seed that sets the jitter (position, size, rotation, texture noise).
Because we draw each image ourselves we know its ground truth exactly, which the StyleDrop paper
could not: later notebooks measure style transfer against it.

Rendering happens in two stages:
  1. `content_mask` draws the content as a grey-level mask (white = content) with jitter;
  2. `styles.paint` turns mask + colour into an RGB picture in the look.
We draw at `SUPERSAMPLE`x the output size and shrink with a box filter, so edges are anti-aliased.
All lengths are in units of `u = canvas / 64`, so a 256-pixel render is a crisper 64-pixel one.

The space holds thousands of looks. Thirteen have names (`STYLE_LOOKS`: "flat", "neon", ...); four of
those are held out from the base generator, which StyleDrop must learn from one image: three as new
combinations of values the base sees elsewhere, one with a value it never sees (`HELD_OUT_SIGNATURES`).

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .images import image_grid
from .styles import PRIMITIVES, Look, all_looks, paint

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

# The named styles: points of the style space with a name people use. Each name has the descriptor
# that goes into captions ("a red star in {descriptor} style") and a look (the recipe of its primitives).
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
    "ripple": "rippled glass",
}
STYLE_LOOKS = {
    "flat": Look("plain", "solid"),
    "line art": Look("white", "none", "bold"),
    "striped": Look("white", "stripes", "thin"),
    "polka dot": Look("white", "dots", "thin"),
    "checkered": Look("white", "checks", "thin"),
    "pixel art": Look("cool", "solid", effect="pixelate"),
    "shadow 3d": Look("gradient", "solid", effect="drop shadow"),
    "sketch": Look("paper", "hatching", "jittered"),
    "blueprint": Look("grid", "solid", "light", palette="pastel"),
    "watercolor": Look("paper", "wash", effect="bleed"),
    "stained glass": Look("amber", "solid", "thick dark", "cells"),
    "neon": Look("dark", "none", "glow"),
    "ripple": Look("white", "bands", "bold", "ripple"),
}

# Never shown to the base generator: StyleDrop must learn these from one reference image. Each is a
# pair of primitive values the base never sees TOGETHER, while it sees each value of the pair in
# other combinations (a new style is a new combination of things it can already draw):
#   neon           a glow outline ON a dark background (glow on light ones, dark under other outlines: seen)
#   stained glass  a cell partition WITH thick dark outlines (cells with other outlines, thick dark alone: seen)
#   watercolor     a wash fill WITH bleeding edges (wash with sharp edges, bleed under other fills: seen)
HELD_OUT_SIGNATURES = {
    "neon": {"background": "dark", "outline": "glow"},
    "stained glass": {"outline": "thick dark", "effect": "cells"},
    "watercolor": {"fill": "wash", "effect": "bleed"},
}
HELD_OUT_STYLES = tuple(HELD_OUT_SIGNATURES)
# The hard held-out style: its "ripple" effect (a wavy displacement of the whole content) is in no
# training look at all, so no prior covers it. It measures, honestly, where one-image tuning stops.
HARD_STYLE = "ripple"
HARD_VALUES = {"effect": ("ripple",)}
SEEN_STYLES = tuple(s for s in STYLES if s not in HELD_OUT_STYLES and s != HARD_STYLE)


def is_held_out(look: Look) -> bool:
    """True for looks the base model must never see: a held-out signature, or a hard value."""
    if any(getattr(look, name) in values for name, values in HARD_VALUES.items()):
        return True
    return any(all(getattr(look, k) == v for k, v in signature.items()) for signature in HELD_OUT_SIGNATURES.values())


def training_looks() -> list[Look]:
    """Every look the base model may be trained on (the whole space less the held-out part)."""
    return [look for look in all_looks() if not is_held_out(look)]


def look_name(look: Look) -> str | None:
    """The named style this look is, if any ("neon"), else None."""
    return next((name for name, recipe in STYLE_LOOKS.items() if recipe == look), None)


CAPTION_TEMPLATES = (  # the first one is canonical; the rest are paraphrases
    "a {colour} {content} in {style} style",
    "a {style} picture of a {colour} {content}",
    "{colour} {content}, {style} style",
    "a {colour} {content} drawn in {style} style",
)

IMAGE_SIZE = 64  # 4x downsampling in the tokenizer then gives a 16x16 = 256-token grid
SUPERSAMPLE = 2  # draw at 2x and shrink: anti-aliased edges at little cost


def caption(content: str, colour: str, style: str, template: int = 0) -> str:
    """The caption of an image: `a {colour} {content} in {style descriptor} style` or a paraphrase."""
    _check_labels(content, colour, style)
    return with_articles(CAPTION_TEMPLATES[template].format(colour=colour, content=content, style=STYLES[style]))


def with_articles(text: str) -> str:
    """'a' before a vowel becomes 'an' ("an orange star"), as a person would write it."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def without_colour(caption: str, colour: str) -> str:
    """The caption with its colour word taken out: "an orange star ..." -> "a star ..."."""
    text = re.sub(rf"\b{re.escape(colour)} ", "", caption, count=1)
    return with_articles(re.sub(r"\ban (?=[^aeiou])", "a ", text))


def _check_labels(content: str, colour: str, style: str) -> None:
    for value, known, kind in ((content, CONTENTS, "content"), (colour, COLOURS, "colour"),
                               (style, STYLES, "style")):
        if value not in known:
            raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(known)}")


# ----------------------------------------------------------------------------------------------
# Captions as people write them: a name, some attribute words, or nothing about the style at all
# ----------------------------------------------------------------------------------------------
PHRASES = {  # (primitive, value) -> words; "" says nothing (the usual case needs no words)
    "background": {"plain": "on a plain background", "white": "on white", "cool": "on a pale blue background",
                   "paper": "on textured paper", "gradient": "on a grey gradient", "dark": "on a dark background",
                   "grid": "on a blue grid", "noise": "on a mottled background", "amber": "on an amber background"},
    "fill": {"solid": "filled solid", "none": "with no fill", "stripes": "with diagonal stripes",
             "dots": "with polka dots", "checks": "with a checkerboard fill", "hatching": "with hatching",
             "wash": "in a transparent wash", "bands": "with horizontal bands", "shaded": "shaded top to bottom"},
    "outline": {"none": "", "thin": "with a thin outline", "bold": "with a bold outline",
                "thick dark": "with a thick black outline", "glow": "with a glowing outline",
                "double": "with a double outline", "jittered": "with sketchy lines", "light": "with a white outline"},
    "effect": {"none": "", "drop shadow": "with a drop shadow", "bleed": "with bleeding edges",
               "pixelate": "pixelated", "cells": "cut into panes", "ripple": "rippled"},
    "palette": {"as is": "", "pastel": "in pastel colours", "dark": "in dark colours"},
}
# Words a caption may carry that say nothing about the picture: the model must learn to ignore them,
# so that a descriptor it never saw does not derail the content (with "zorblax" the narrow base's content
# accuracy falls from 91.8 % to 41.2 %: benchmarks/results/style_prior_narrow.json).
FILLERS = ("nice", "simple", "classic", "my favourite", "new", "cool", "plain old", "a study of")
NONSENSE = ("blick", "vorn", "tesh", "quillo", "mardle", "snib", "poffer", "grune")
CAPTION_MIX = {"name": 0.25, "attributes": 0.4, "none": 0.2, "ignorable": 0.15}  # shares of each kind
# At most three phrases: the longest caption is then 20 BPE tokens ("a purple hexagon with a checkerboard
# fill on a pale blue background with a thick black outline"), 22 with start and end: within the mini CLIP's
# context of 24 (ClipConfig.context_length; tests/test_styles.py measures it).
MAX_PHRASES = 3


def look_caption(content: str, colour: str, look: Look, rng: np.random.Generator, kind: str | None = None) -> str:
    """A caption for a training image: `kind` "name" (its style's descriptor; only for named looks),
    "attributes" (1-3 phrases for primitives that differ from plain), "none" (content and colour
    alone), or "ignorable" (a filler or a nonsense style word); drawn by CAPTION_MIX when None."""
    subject = with_articles(f"a {colour} {content}")
    name = look_name(look)
    if kind is None:
        kinds = [k for k in CAPTION_MIX if k != "name" or name]
        weights = np.array([CAPTION_MIX[k] for k in kinds])
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    if kind == "name":
        if not name:
            raise ValueError(f"the look ({look.words()}) has no name")
        return f"{subject} in {STYLES.get(name, name)} style"
    if kind == "attributes":
        phrases = [PHRASES[k][getattr(look, k)] for k in PRIMITIVES]
        phrases = [p for p in phrases if p]
        picked = sorted(rng.choice(len(phrases), size=min(len(phrases), rng.integers(1, MAX_PHRASES + 1)),
                               replace=False))
        return " ".join([subject] + [phrases[i] for i in picked])
    if kind == "none":
        return subject
    if kind == "ignorable":
        if rng.random() < 0.5:
            return f"{with_articles('a ' + FILLERS[rng.integers(len(FILLERS))])} {colour} {content}"
        return f"{subject} in {NONSENSE[rng.integers(len(NONSENSE))]} style"
    raise ValueError(f"unknown caption kind {kind!r}; use one of {', '.join(CAPTION_MIX)}")


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
# The whole picture: stage 1 (the content's mask) then stage 2 (styles.paint in a look)
# ----------------------------------------------------------------------------------------------
def as_look(style: str | Look) -> Look:
    """A named style's look, or the look itself."""
    if isinstance(style, Look):
        return style
    if style not in STYLE_LOOKS:
        raise ValueError(f"unknown style {style!r}; choose one of: {', '.join(STYLES)}, or give a styles.Look")
    return STYLE_LOOKS[style]


def render(content: str, colour: str, style: str | Look, seed: int = 0, size: int = IMAGE_SIZE) -> Image.Image:
    """Render one RGB image of the mini world in a named style or any look. Same arguments, same pixels."""
    look = as_look(style)
    _check_labels(content, colour, "flat")
    if not 16 <= size <= 1024:
        raise ValueError(f"size must be between 16 and 1024 pixels, got {size}")
    rng = np.random.default_rng(seed)
    canvas = size * SUPERSAMPLE
    return _paint(content_mask(content, canvas, Jitter.draw(rng, content)), colour, look, rng, size)


def _paint(mask: Image.Image, colour: str, look: Look, rng: np.random.Generator, size: int) -> Image.Image:
    """Stage 2 and the shrink: the look turns the mask into pixels, drawn big, then box-filtered."""
    pixels = paint(mask, COLOURS[colour], look, rng, mask.width / 64)
    big = Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    return big.resize((size, size), Image.BOX)


# ----------------------------------------------------------------------------------------------
# A subject for DreamBooth: one particular star, which no caption of the world describes
# ----------------------------------------------------------------------------------------------
# Every "star" of the world has five points. Our subject is an orange star with SIX points: its
# identity is in its shape, which the tokenizer keeps. (A first subject carried a face and
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
    look = as_look(style)
    _check_labels("star", colour, "flat")
    rng = np.random.default_rng(seed)
    if pose is None:
        jitter = Jitter.draw(rng, "star")
    elif 0 <= pose < len(SUBJECT_POSES):
        jitter = SUBJECT_POSES[pose]
    else:
        raise ValueError(f"pose must be None or in 0..{len(SUBJECT_POSES) - 1}, got {pose}")
    canvas = size * SUPERSAMPLE
    return _paint(subject_mask(canvas, jitter), colour, look, rng, size)


def summary() -> str:
    """One line on the world's size: contents, colours, looks, named and held-out styles."""
    return (f"the mini world: {len(CONTENTS)} contents, {len(COLOURS)} colours, {len(all_looks()):,} looks "
            f"({len(training_looks()):,} for the base generator), {len(STYLES)} named (held out: "
            f"{', '.join(HELD_OUT_STYLES)}; hard: {HARD_STYLE})")


def contact_sheet(seed: int = 0, contents=None, size: int = IMAGE_SIZE, tile: int = 64) -> Image.Image:
    """One row per named style (held-out ones marked), one column per content, colours cycling."""

    contents = contents or SHAPES + ("letter A", "letter G", "letter K", "letter R", "letter S", "letter W")
    colours = list(COLOURS)
    rows = [[render(content, colours[(i + j) % len(colours)], style, seed=seed * 10_000 + i * 100 + j, size=size)
             for j, content in enumerate(contents)] for i, style in enumerate(STYLES)]
    labels = [f"{s} (held out)" if s in HELD_OUT_STYLES else f"{s} (hard, held out)" if s == HARD_STYLE else s
              for s in STYLES]
    return image_grid(rows, row_labels=labels, col_labels=[c.replace("letter ", "") for c in contents], tile=tile,
                      title=f"the mini world's {len(STYLES)} named styles ({len(HELD_OUT_STYLES) + 1} held out) "
                            f"x {len(CONTENTS)} contents x {len(COLOURS)} colours, seed {seed}")


# ----------------------------------------------------------------------------------------------
# Measuring and showing the style space
# ----------------------------------------------------------------------------------------------
def content_contrast(look: Look, colour: str, content: str = "circle", seed: int = 0) -> float:
    """How far the content stands out: the mean absolute difference, over the content and a band
    around it, between the look drawn with the content and without it (same seed)."""
    canvas = IMAGE_SIZE * SUPERSAMPLE
    mask = content_mask(content, canvas, Jitter(0.0, 0.0, 0.7, 0.0))
    drawn = paint(mask, COLOURS[colour], look, np.random.default_rng(seed), canvas / 64)
    bare = paint(Image.new("L", mask.size, 0), COLOURS[colour], look, np.random.default_rng(seed), canvas / 64)
    region = np.asarray(mask.filter(ImageFilter.MaxFilter(9))) > 127
    return float(np.abs(drawn - bare)[region].mean())


def primitive_sheet(content: str = "house", colour: str = "teal", base: Look = Look("white", "solid", "thin"),
                    seed: int = 0, tile: int = 64) -> Image.Image:
    """One row per primitive, one column per value: `base` with that one primitive changed."""

    rows = []
    width = max(len(values) for values in PRIMITIVES.values())
    for name, values in PRIMITIVES.items():
        looks = [Look(**{**base.__dict__, name: value}) for value in values]
        rows.append([render(content, colour, look, seed=seed) for look in looks]
                    + [Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")] * (width - len(values)))
    return image_grid(rows, row_labels=list(PRIMITIVES), tile=tile, label_width=90,
                      title=f"{len(all_looks()):,} looks ({len(training_looks()):,} for training); "
                            f"each row changes one primitive of: {base.words()}")
