"""The `styledrop-mini` command line."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import world


def cmd_demo(args) -> int:
    start = time.perf_counter()
    sheet = world.contact_sheet(seed=args.seed, tile=args.tile)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"the mini world: {len(world.CONTENTS)} contents, {len(world.COLOURS)} colours, "
          f"{len(world.STYLES)} styles (held out: {', '.join(world.HELD_OUT_STYLES)})")
    print(f"wrote contact sheet {out.resolve()} ({sheet.width}x{sheet.height} px) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_world_export(args) -> int:
    from .datasets import MiniWorld, export_image_folder

    data = MiniWorld(n=args.n, split=args.split, styles=args.styles, size=args.size, seed=args.seed,
                     paraphrase=args.paraphrase)
    folder = export_image_folder(data, args.folder, overwrite=args.overwrite)
    print(f"wrote {len(data)} images and {folder / 'metadata.jsonl'}")
    return 0


def cmd_train(args) -> int:
    import torch

    from .settings import CHECKPOINT_DIR
    from .training import train

    out = Path(args.out) if args.out else CHECKPOINT_DIR / f"{args.model}.safetensors"
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.save_dtype]
    train(args.model, out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, bank_size=args.bank_size,
          seed=args.seed, device=args.device, run_dir=args.run_dir or Path("runs") / args.model,
          resume=args.resume, workers=args.workers, command="styledrop-mini " + " ".join(sys.argv[1:]),
          save_dtype=dtype)
    return 0


def cmd_evaluate(args) -> int:
    import json

    from . import metrics
    from .settings import CHECKPOINT_DIR
    from .training import pick_device

    folder = Path(args.checkpoints) if args.checkpoints else CHECKPOINT_DIR
    device = pick_device(args.device)
    bank = metrics.test_bank(n=args.n, seed=args.seed, workers=args.workers)
    report = {"test_images": len(bank), "seed": args.seed}
    judges = None
    if "judges" in args.models or "tokenizer" in args.models:
        from .judges import Judges
        judges = Judges.load(folder / "judges.safetensors", device)
        report["judges"] = metrics.judges_report(judges, bank)
    if "tokenizer" in args.models:
        from .tokenizer import VQTokenizer
        report["tokenizer"] = metrics.tokenizer_report(VQTokenizer.load(folder / "tokenizer.safetensors", device),
                                                       bank, judges)
    if "clip" in args.models:
        from .clip import MiniClip
        report["clip"] = metrics.clip_report(MiniClip.load(folder / "clip.safetensors", device), bank)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="styledrop-mini", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job (for now: a contact sheet of the mini world)")
    demo.add_argument("--out", "-o", default="styledrop_mini_demo.png", help="PNG to write")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--tile", type=int, default=64, help="pixels per tile in the sheet")
    demo.set_defaults(func=cmd_demo)

    world_cmd = sub.add_parser("world", help="the mini world data set")
    world_sub = world_cmd.add_subparsers(dest="world_command", required=True)
    export = world_sub.add_parser("export", help="render images into a folder with metadata.jsonl")
    export.add_argument("folder")
    export.add_argument("-n", type=int, default=100, help="number of images")
    export.add_argument("--split", choices=["train", "test"], default="train")
    export.add_argument("--styles", default="seen", help="'seen', 'held_out', 'all' or one style name")
    export.add_argument("--size", type=int, default=world.IMAGE_SIZE)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--paraphrase", action="store_true", help="vary the caption templates")
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(func=cmd_world_export)

    train = sub.add_parser("train", help="train a model on the mini world (recipes in training.RECIPES)")
    train.add_argument("model", choices=["tokenizer", "clip", "judges"])
    train.add_argument("--steps", type=int, help="optimiser steps (default: the recipe's)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--bank-size", type=int, help="number of pre-rendered training images")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu", help="cpu (default), cuda (bf16 autocast) or auto")
    train.add_argument("--out", help="checkpoint to write (default: data/checkpoints/MODEL.safetensors)")
    train.add_argument("--run-dir", help="where the resumable state goes (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's saved state")
    train.add_argument("--workers", type=int, help="processes that render the training images")
    train.add_argument("--save-dtype", choices=["fp32", "fp16", "bf16"], default="fp16",
                       help="precision of the saved weights (fp16 halves the bundle)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="measure the bundled models on fresh test renders")
    evaluate.add_argument("models", nargs="*", default=["tokenizer", "judges", "clip"])
    evaluate.add_argument("-n", type=int, default=1000, help="number of fresh test renders")
    evaluate.add_argument("--seed", type=int, default=1)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--checkpoints", help="folder with the checkpoints (default: data/checkpoints)")
    evaluate.add_argument("--workers", type=int)
    evaluate.add_argument("--json", help="also write the report to this file")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"styledrop-mini: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
