"""How well a tokenizer carries the style space (issue 16, item 4: choose the grid by measurement).

    python benchmarks/tokenizer_looks.py                       # the bundled 8x8x512 tokenizer
    python benchmarks/tokenizer_looks.py --checkpoint runs/tokenizer/tokenizer.safetensors

Encodes and decodes renders of every look of styles.py (held-out ones included) and reports the
reconstruction PSNR per primitive value and per named style (the acceptance bar is 26 dB on every
named style), as JSON in benchmarks/results/tokenizer_looks.json and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from styledrop_mini import styles
from styledrop_mini.datasets import LookWorld
from styledrop_mini.metrics import reconstruct
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.tokenizer import VQTokenizer, psnr


def psnr_of(tokenizer, data: LookWorld) -> tuple[torch.Tensor, list[dict]]:
    items = [data[i] for i in range(len(data))]
    images = torch.stack([item["image"] for item in items])
    recons, _ = reconstruct(tokenizer, images)
    return psnr(recons, images), items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT_DIR / "tokenizer.safetensors"))
    parser.add_argument("-n", type=int, default=3000, help="renders of random looks (default: 3000)")
    parser.add_argument("--per-style", type=int, default=64, help="renders per named style (default: 64)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/tokenizer_looks.json")
    args = parser.parse_args()
    tokenizer = VQTokenizer.load(args.checkpoint)
    values, items = psnr_of(tokenizer, LookWorld(args.n, split="test", looks=styles.all_looks(), seed=args.seed))
    by_value = {}
    for name, options in styles.PRIMITIVES.items():
        key = f"{name.replace(' ', '_')}_id"
        by_value[name] = {option: round(float(values[[i for i, it in enumerate(items) if it[key] == j]].mean()), 2)
                          for j, option in enumerate(options)}
    by_style = {name: round(float(psnr_of(tokenizer, LookWorld(args.per_style, split="test", looks=[look],
                                                               seed=args.seed))[0].mean()), 2)
                for name, look in styles.NAMED.items()}
    result = {"checkpoint": args.checkpoint, "grid": tokenizer.config.grid, "codebook": tokenizer.config.codebook_size,
              "renders": args.n, "mean_psnr_db": round(float(values.mean()), 2), "psnr_by_value": by_value,
              "psnr_by_named_style": by_style}
    print(f"{args.checkpoint}: {tokenizer.config.grid}x{tokenizer.config.grid} tokens, codebook "
          f"{tokenizer.config.codebook_size}; mean PSNR over {args.n} random looks {result['mean_psnr_db']} dB")
    for name, table in by_value.items():
        print(f"  {name:10s} " + ", ".join(f"{v} {db}" for v, db in sorted(table.items(), key=lambda kv: kv[1])))
    print("  named     " + ", ".join(f"{v} {db}" for v, db in sorted(by_style.items(), key=lambda kv: kv[1])))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
