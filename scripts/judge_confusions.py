"""Where the bundled judges go wrong: per head, the most common (truth, judged) confusions on fresh
renders and on their tokenizer reconstructions, and each primitive head's error rate broken down by
the value of every other primitive (which looks hide which values).

    python scripts/judge_confusions.py            # 2,000 fresh test renders, seed 1
    python scripts/judge_confusions.py -n 4000 --json benchmarks/results/judge_confusions.json
"""
import argparse
import collections
import json

import torch

from styledrop_mini.judges import HEADS, PRIMITIVES, Judges
from styledrop_mini.metrics import look_test_bank
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.tokenizer import VQTokenizer, reconstruct


def truth_of(bank, head: str) -> torch.Tensor:
    return bank.primitive_ids[head] if head in bank.primitive_ids else getattr(bank, f"{head}_ids")


def confusions(judged: dict, bank, top: int = 6) -> dict:
    """Per head: accuracy and the `top` most common mistakes as "truth -> judged": count."""
    report = {}
    for head in HEADS:
        truth, ids = truth_of(bank, head), judged[head]["ids"]
        mistakes = collections.Counter(f"{HEADS[head][t]} -> {HEADS[head][p]}"
                                       for t, p in zip(truth.tolist(), ids.tolist()) if t != p)
        report[head] = {"accuracy": round(float((ids == truth).float().mean()), 4),
                        "mistakes": dict(mistakes.most_common(top))}
    return report


def error_by_other_primitive(judged: dict, bank) -> dict:
    """For each primitive head, its error rate among the images with each value of each other primitive."""
    report = {}
    for head in PRIMITIVES:
        wrong = judged[head]["ids"] != truth_of(bank, head)
        report[head] = {}
        for other in PRIMITIVES:
            if other == head:
                continue
            values = truth_of(bank, other)
            report[head][other] = {HEADS[other][v]: {"error": round(float(wrong[values == v].float().mean()), 3),
                                                      "n": int((values == v).sum())}
                                   for v in range(len(HEADS[other])) if (values == v).any()}
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="fresh test renders (default: 2000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the test renders (default: 1)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    bank = look_test_bank(args.n, seed=args.seed, workers=0)
    judges = Judges.load(CHECKPOINT_DIR / "judges.safetensors")
    images = bank.images.float() / 255
    recons, _ = reconstruct(VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors"), images)
    judged = judges.judge(images)
    report = {"n": args.n, "seed": args.seed, "renders": confusions(judged, bank),
              "reconstructions": confusions(judges.judge(recons), bank),
              "render_errors_by_other_primitive": error_by_other_primitive(judged, bank)}
    for kind in ("renders", "reconstructions"):
        print(f"== {kind}")
        for head, r in report[kind].items():
            print(f"{head:10s} {r['accuracy']:6.1%}  " + ", ".join(f"{k} ({v})" for k, v in r["mistakes"].items()))
    print("== render error rate of each primitive head, by the value of another primitive (worst three)")
    for head, others in report["render_errors_by_other_primitive"].items():
        worst = sorted(((r["error"], f"{other} {value}") for other, by in others.items() for value, r in by.items()),
                       reverse=True)[:3]
        print(f"{head:10s} " + ", ".join(f"{name}: {error:.0%}" for error, name in worst))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
