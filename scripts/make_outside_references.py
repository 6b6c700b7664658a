"""Draw the style references from OUTSIDE the mini world (data/styles_outside/), for the paper table.

    python scripts/make_outside_references.py            # writes data/styles_outside/
    python scripts/make_outside_references.py --out DIR  # elsewhere

The world's renderers (styles.paint) never draw these looks: a mosaic of square tiles with grout, and
a crayon drawing of wobbly hatching strokes on paper. Only the content's shape comes from the world
(world.content_mask), so the judges can still tell whether the reference's content leaks into new
prompts; whether the *style* is right, no recipe says: the style embedding and CLIP measure it.
Each row of metadata.jsonl carries a `description` in the world's attribute words (world.PHRASES:
the nearest the base model's vocabulary comes), for the prompt-engineering baseline of the table. Seeded: the same files every time.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from styledrop_mini import world
from styledrop_mini.settings import DATA_DIR

SIZE = 256  # drawn at 4x, shrunk to the world's 64 px with a box filter, like world.render


def mosaic(content: str, colour: str, seed: int = 0) -> Image.Image:
    """Square tiles of 16 px (4 px at 64) with dark grout; the content's tiles in the colour, each a
    little lighter or darker, the others a pale stone."""
    rng = np.random.default_rng(seed)
    mask = np.asarray(world.content_mask(content, SIZE, world.Jitter(0.0, 0.0, 0.75, 0.0)), dtype=np.float32) / 255
    tile, grout = 16, 3
    canvas = np.full((SIZE, SIZE, 3), 60, dtype=np.float32)  # grout
    base, stone = np.array(world.COLOURS[colour], dtype=np.float32), np.array([222, 214, 196], dtype=np.float32)
    for y in range(0, SIZE, tile):
        for x in range(0, SIZE, tile):
            inside = mask[y:y + tile, x:x + tile].mean() > 0.5
            shade = rng.uniform(0.8, 1.15)
            canvas[y + grout:y + tile, x + grout:x + tile] = np.clip((base if inside else stone) * shade, 0, 255)
    return Image.fromarray(canvas.astype(np.uint8)).resize((world.IMAGE_SIZE,) * 2, Image.BOX)


def crayon(content: str, colour: str, seed: int = 0) -> Image.Image:
    """Wobbly diagonal strokes inside the content, a shaky outline around it, on off-white paper."""
    rng = np.random.default_rng(seed)
    mask = world.content_mask(content, SIZE, world.Jitter(0.0, 0.0, 0.75, 0.0))
    paper = np.full((SIZE, SIZE, 3), 246, dtype=np.float32) - rng.uniform(0, 10, (SIZE, SIZE, 1))
    strokes = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(strokes)
    for offset in range(-SIZE, SIZE, 9):  # hatching at 45 degrees, each stroke wobbling
        points = [(t, t + offset + rng.normal(0, 2.5)) for t in range(0, SIZE + 1, 16)]
        draw.line(points, fill=255, width=5)
    hatch = np.asarray(strokes, dtype=np.float32) / 255 * np.asarray(mask, dtype=np.float32) / 255
    # The outline: a soft band where the shape ends (the mask blurred by shrinking and growing it back)
    edge = np.asarray(mask.resize((SIZE // 4,) * 2).resize((SIZE, SIZE)), dtype=np.float32) / 255
    ring = ((edge > 0.15) & (edge < 0.85)).astype(np.float32)
    ink = np.clip(hatch * 0.9 + ring * rng.uniform(0.6, 1.0, (SIZE, SIZE)), 0, 1)[..., None]
    colour_rgb = np.array(world.COLOURS[colour], dtype=np.float32)
    canvas = paper * (1 - ink) + colour_rgb * ink
    return Image.fromarray(canvas.astype(np.uint8)).resize((world.IMAGE_SIZE,) * 2, Image.BOX)


REFERENCES = [
    {"file_name": "mosaic.png", "draw": mosaic, "content": "heart", "colour": "red", "style": "mosaic",
     "descriptor": "mosaic tile", "description": "cut into panes with a thick black outline"},
    {"file_name": "crayon.png", "draw": crayon, "content": "tree", "colour": "green", "style": "crayon",
     "descriptor": "crayon drawing", "description": "on textured paper with hatching with sketchy lines"},
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DATA_DIR / "styles_outside", help="folder to write")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ref in REFERENCES:
        image = ref["draw"](ref["content"], ref["colour"], seed=0)
        image.save(args.out / ref["file_name"])
        subject = world.with_articles(f"a {ref['colour']} {ref['content']}")
        rows.append({"file_name": ref["file_name"], "text": f"{subject} in {ref['descriptor']} style",
                     "content": ref["content"], "colour": ref["colour"], "style": ref["style"],
                     "descriptor": ref["descriptor"], "reference_content": subject,
                     "description": ref["description"]})
    (args.out / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} references to {args.out}")


if __name__ == "__main__":
    main()
