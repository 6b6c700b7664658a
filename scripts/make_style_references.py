"""Render the bundled reference image of each held-out style (and of the hard one) into data/styles/.

    python scripts/make_style_references.py

These stand in for the one image a StyleDrop user brings: 256x256 PNGs, larger than our 64-pixel
world on purpose, so the package's resize path is exercised like a real user's photo would be.
The metadata.jsonl beside them makes the folder an ImageFolder (file_name, text, labels, descriptor).
"""
import json

from styledrop_mini import world
from styledrop_mini.settings import STYLES_DIR

REFERENCES = {  # style -> (content, colour, seed); the paper's examples where they fit our world
    "watercolor": ("house", "blue", 11),
    "stained glass": ("house", "yellow", 12),
    "neon": ("star", "pink", 13),
    "ripple": ("letter S", "teal", 14),  # the hard held-out style (world.HARD_STYLE)
}


def main():
    STYLES_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for style in world.HELD_OUT_STYLES + (world.HARD_STYLE,):
        content, colour, seed = REFERENCES[style]
        name = style.replace(" ", "_") + ".png"
        world.render(content, colour, style, seed=seed, size=256).save(STYLES_DIR / name)
        rows.append({"file_name": name, "text": world.caption(content, colour, style),
                     "content": content, "colour": colour, "style": style,
                     "descriptor": world.STYLES[style], "reference_content": f"a {colour} {content}"})
        print(f"wrote {STYLES_DIR / name}: {rows[-1]['text']}")
    (STYLES_DIR / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
