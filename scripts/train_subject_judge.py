"""Train the subject judge (judges.SubjectJudge) and write data/checkpoints/subject_judge.safetensors.

    python scripts/train_subject_judge.py

It answers "is this the sks star?" for any image: DreamBooth's subject fidelity, in every style. The
script then measures it on fresh renders (another seed) and their tokenizer reconstructions, per
style: how often it finds the subject, and how often it calls an orange five-point star the subject.
"""
import argparse
import sys
import time

import torch

from styledrop_mini import world
from styledrop_mini.images import pil_to_tensor
from styledrop_mini.judges import SUBJECT_TRAINING, train_subject_judge
from styledrop_mini.metrics import reconstruct
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.tokenizer import VQTokenizer


def calibration(judge, tokenizer, n_per_style: int = 40, seed: int = 12345) -> dict:
    """Per style: subject found (true positives) and orange stars mistaken for it (false positives),
    on renders and on their tokenizer reconstructions."""
    table = {}
    for i, style in enumerate(world.STYLES):
        subject = torch.stack([pil_to_tensor(world.render_subject(None, style, seed + i * 1000 + k)) for k in range(n_per_style)])
        stars = torch.stack([pil_to_tensor(world.render("star", "orange", style, seed + i * 1000 + k)) for k in range(n_per_style)])
        row = {}
        for name, images in (("subject", subject), ("orange star", stars)):
            decoded, _ = reconstruct(tokenizer, images)
            row[name] = round(judge.fidelity(images), 3)
            row[f"{name}, reconstructed"] = round(judge.fidelity(decoded.clamp(0, 1)), 3)
        table[style] = row
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(CHECKPOINT_DIR / "subject_judge.safetensors"))
    parser.add_argument("--n", type=int, default=SUBJECT_TRAINING["n"])
    parser.add_argument("--steps", type=int, default=SUBJECT_TRAINING["steps"])
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors")
    start = time.perf_counter()
    judge, losses = train_subject_judge(tokenizer, n=args.n, steps=args.steps)
    seconds = time.perf_counter() - start
    table = calibration(judge, tokenizer)
    for style, row in table.items():
        print(f"{style:14s} " + "  ".join(f"{k} {v:.0%}" for k, v in row.items()))
    mean = {k: round(sum(r[k] for r in table.values()) / len(table), 3) for k in next(iter(table.values()))}
    print("mean          ", mean)
    judge.save(args.out, {"command": "python " + " ".join(sys.argv), "train_seconds": round(seconds, 1),
                          "final_loss": round(sum(losses[-50:]) / 50, 4), "calibration_mean": mean,
                          "calibration": table, "n": args.n, "steps": args.steps})
    print(f"trained in {seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
