"""Write the DreamBooth subject's images to data/subjects/sks_star/ (PNGs + metadata.jsonl).

    python scripts/make_subject.py

The subject (world.render_subject) is one particular star: orange, with six points where every star of
the world has five. Flat style, 5 poses: what a user would bring as 3-5 photos of "my star".
"""
import json

from styledrop_mini import world
from styledrop_mini.dreambooth import SUBJECT_DIR


def main():
    SUBJECT_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for pose in range(len(world.SUBJECT_POSES)):
        name = f"pose_{pose}.png"
        world.render_subject(pose, seed=pose).save(SUBJECT_DIR / name)
        # The caption of the world's form with the identifier before the class noun: the base model
        # only draws well from captions that name a colour and a style.
        text = world.with_articles(f"a {world.SUBJECT['colour']} {world.SUBJECT['identifier']} "
                                   f"{world.SUBJECT['class_noun']} in flat style")
        rows.append({"file_name": name, "text": text, "class_noun": world.SUBJECT["class_noun"],
                     "identifier": world.SUBJECT["identifier"]})
    (SUBJECT_DIR / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} images to {SUBJECT_DIR}")


if __name__ == "__main__":
    main()
