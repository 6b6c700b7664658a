"""Write the DreamBooth subject's images to data/subjects/sks_star/ (PNGs + metadata.jsonl).

    python scripts/make_subject.py

The subject (world.render_subject) is one particular orange star with two eyes and a teal band, in
5 poses: what a user would bring as 3-5 photos of "my star".
"""
import json

from styledrop_mini import world
from styledrop_mini.dreambooth import SUBJECT_DIR


def main():
    SUBJECT_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for pose in range(len(world.SUBJECT_POSES)):
        name = f"pose_{pose}.png"
        world.render_subject(pose).save(SUBJECT_DIR / name)
        rows.append({"file_name": name, "text": f"a {world.SUBJECT['identifier']} {world.SUBJECT['class_noun']}",
                     "class_noun": world.SUBJECT["class_noun"], "identifier": world.SUBJECT["identifier"]})
    (SUBJECT_DIR / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} images to {SUBJECT_DIR}")


if __name__ == "__main__":
    main()
