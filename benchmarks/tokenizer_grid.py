"""Which token grid carries the style space? (issue 16, item 4)

    python benchmarks/tokenizer_grid.py                 # 8x8x512, 8x8x1024 and 16x16x512, 600 steps each
    python benchmarks/tokenizer_grid.py --steps 3000    # the bundled recipe's length

Trains candidate tokenizers with the tokenizer recipe (batch 64, lr 2e-3) on renders of the style
space's training looks (datasets.LookWorld), for the same number of steps each, then measures each with
metrics.look_reconstruction_report (PSNR per primitive value and per named style, held-out ones
included; the bar is 26 dB on every named style). A short run compares candidates with each other: its
figures are below what the full recipe reaches. Writes benchmarks/results/tokenizer_grid.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from styledrop_mini.datasets import LookWorld
from styledrop_mini.metrics import look_reconstruction_report
from styledrop_mini.tokenizer import TokenizerConfig, VQTokenizer, tokenizer_loss
from styledrop_mini.datasets import ImageBank
from styledrop_mini.recipes import RECIPES
from styledrop_mini.training import TrainSettings, fit

CANDIDATES = {
    "8x8x512": TokenizerConfig(),  # the bundled one's shape: 64 tokens for the transformer
    "8x8x1024": TokenizerConfig(codebook_size=1024),
    "16x16x512": TokenizerConfig(channels=(32, 64)),  # 256 tokens: 4x the transformer's sequence
    "16x16x1024": TokenizerConfig(channels=(32, 64), codebook_size=1024),  # more codes for thin random lines
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="training steps per candidate (default: 600)")
    parser.add_argument("--bank", type=int, default=8000, help="training renders (default: 8000)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/tokenizer_grid.json")
    args = parser.parse_args()
    recipe = RECIPES["tokenizer"]
    start = time.perf_counter()
    bank = ImageBank.render(LookWorld(args.bank, split="train", seed=0), args.workers)
    print(f"rendered {len(bank)} training looks in {time.perf_counter() - start:.0f} s")
    results = {}
    for name in args.candidates:
        torch.manual_seed(0)
        model = VQTokenizer(CANDIDATES[name])
        settings = TrainSettings(steps=args.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                                 warmup=min(recipe.warmup, args.steps // 5 + 1), precision="fp32")
        started = time.perf_counter()
        history = fit(model, tokenizer_loss, bank, settings, torch.device("cpu"), desc=f"tokenizer {name}")
        seconds = time.perf_counter() - started
        report = look_reconstruction_report(model.eval())
        results[name] = {"train_seconds": round(seconds, 1), "final": history[-1], **report}
        styles = report["psnr_by_named_style"]
        print(f"{name}: {seconds:.0f} s, mean {report['mean_psnr_db']} dB on random looks; named styles "
              + ", ".join(f"{k} {v}" for k, v in sorted(styles.items(), key=lambda kv: kv[1])))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": args.steps, "bank": args.bank, "results": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
