"""How well a tokenizer carries the style space (issue 16, item 4: choose the grid by measurement).

    python benchmarks/tokenizer_looks.py                       # the bundled 8x8x512 tokenizer
    python benchmarks/tokenizer_looks.py --checkpoint runs/tokenizer/tokenizer.safetensors

Encodes and decodes renders of every look of styles.py (held-out ones included) and reports the
reconstruction PSNR per primitive value and per named style (the acceptance bar is 26 dB on every
named style): metrics.look_reconstruction_report, as JSON (default benchmarks/results/tokenizer_looks.json)
and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from styledrop_mini.metrics import look_reconstruction_report
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.tokenizer import VQTokenizer


def print_report(label: str, result: dict) -> None:
    print(f"{label}: {result['grid']}x{result['grid']} tokens, codebook {result['codebook']}; mean PSNR over "
          f"{result['renders']} random looks {result['mean_psnr_db']} dB")
    for name, table in result["psnr_by_value"].items():
        print(f"  {name:10s} " + ", ".join(f"{v} {db}" for v, db in sorted(table.items(), key=lambda kv: kv[1])))
    print("  named      " + ", ".join(f"{v} {db}" for v, db in sorted(result["psnr_by_named_style"].items(),
                                                                     key=lambda kv: kv[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT_DIR / "tokenizer.safetensors"))
    parser.add_argument("-n", type=int, default=3000, help="renders of random looks (default: 3000)")
    parser.add_argument("--per-style", type=int, default=64, help="renders per named style (default: 64)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/tokenizer_looks.json")
    args = parser.parse_args()
    result = {"checkpoint": args.checkpoint,
              **look_reconstruction_report(VQTokenizer.load(args.checkpoint), args.n, args.per_style, args.seed)}
    print_report(args.checkpoint, result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
