"""Does the generator learn fills and outlines once it can read their words? The same bundled base
trained on for the same steps two ways, beside the bundled base itself:

  continued    `train base --init-from data/checkpoints/base.safetensors` (the text tower's features)
  + words      the same, with `--text-words` (each prompt word's own embedding beside them)

Each is measured by diagnostics.word_reading (does stating a primitive lower the masked-token loss?),
diagnostics.attribute_control (seen looks drawn from captions naming every primitive) and the
upper bound on a held-out style (an adapter on 8 true renders; diagnostics.upper_bound).

    python benchmarks/text_words_ablation.py continued=RUN_A/base.safetensors words=RUN_B/base.safetensors \
        [--style neon] [-n 96] [--json benchmarks/results/text_words_ablation.json]

The two runs (2 CPU cores, bf16; a shared token bank):
    styledrop-mini train base --init-from data/checkpoints/base.safetensors --steps 600 --batch-size 128 \
        --lr 5e-4 --bank-size 30000 --workers 2 --run-dir RUN_A --out RUN_A/base.safetensors
    (the same with --text-words, --run-dir RUN_B --out RUN_B/base.safetensors)
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from styledrop_mini import diagnostics
from styledrop_mini.datasets import style_references
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.settings import CHECKPOINT_DIR

RESULTS = Path(__file__).resolve().parent / "results"


def pipeline_for(base: Path, folder: Path) -> MusePipeline:
    """The bundled tokenizer, CLIP and judges with another base file beside them (links in `folder`)."""
    for part in ("tokenizer", "clip", "judges"):
        link = folder / f"{part}.safetensors"
        if not link.exists():
            link.symlink_to(CHECKPOINT_DIR / f"{part}.safetensors")
    (folder / base.name).unlink(missing_ok=True)
    (folder / base.name).symlink_to(base.resolve())
    return MusePipeline.load(folder, transformer=base.name)


def measure(pipe: MusePipeline, style: str, n: int) -> dict:
    judges = pipe.judges()
    start = time.perf_counter()
    info = pipe.transformer.info
    row = {"text_words": pipe.transformer.config.text_words,
           "training": {k: info.get(k) for k in ("command", "steps", "batch_size", "lr", "train_seconds", "final")},
           "word_reading": diagnostics.word_reading(pipe, n),
           "attribute_control": diagnostics.attribute_control(pipe, judges, n)}
    row["upper_bound"] = {style: diagnostics.upper_bound(pipe, judges, pipe.clip, style_references()[style], lambdas=(1.0,))}
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bases", nargs="+", metavar="LABEL=FILE", help="base generators to compare with the bundled one")
    parser.add_argument("--style", default="neon", help="held-out style of the upper bound")
    parser.add_argument("-n", type=int, default=96, help="images per measurement")
    parser.add_argument("--json", default=str(RESULTS / "text_words_ablation.json"))
    args = parser.parse_args()
    bases = {"bundled": CHECKPOINT_DIR / "base.safetensors"}
    for item in args.bases:
        label, _, file = item.partition("=")
        if not Path(file).is_file():
            parser.error(f"{item}: no such checkpoint (give LABEL=FILE)")
        bases[label] = Path(file)
    torch.manual_seed(0)
    report = {"command": "python benchmarks/text_words_ablation.py " + " ".join(args.bases), "n": args.n,
              "style": args.style, "models": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for label, file in bases.items():
            folder = Path(scratch) / label
            folder.mkdir()
            report["models"][label] = row = measure(pipeline_for(file, folder), args.style, args.n)
            reading = ", ".join(f"{p} {v['gain']:+.3f}/{v['contrast']:+.3f}" for p, v in row["word_reading"].items())
            control = ", ".join(f"{p} {100 * v['rate']:.0f}%" for p, v in row["attribute_control"].items())
            bound = row["upper_bound"][args.style]["lambda_a=1"]
            print(f"{label}: word reading gain/contrast (nats) {reading}\n   attribute control {control}\n"
                  f"   upper bound {args.style}: style {100 * bound['style']['rate']:.0f} %, "
                  f"content {100 * bound['content']['rate']:.0f} % ({row['seconds']:.0f} s)")
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
