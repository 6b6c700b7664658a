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
