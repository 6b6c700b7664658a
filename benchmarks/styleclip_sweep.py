"""Text-guided edits of fresh renders, judged: does the edit happen, and does the rest stay?

    python benchmarks/styleclip_sweep.py            # 24 edits (8 colour, 8 content, 8 style), ~5 min on 2 cores
    python benchmarks/styleclip_sweep.py -n 48

Each source is a test render (odd seed) of a seen named style; its edit changes its colour, its content
(one of the 14 shapes) or its named style, one kind in three. Methods: StyleCLIP's latent optimisation
(styleclip.optimise_latent) at several settings (the last with the base transformer's prior), and the MaskGIT-native edit (styleclip.remask_edit:
half the tokens re-masked and re-decoded under the edited caption). For each: the judges' rates of
`changed` (the edited attribute has its new value), `kept` (the other two are as before), `both`,
per kind of edit, and seconds per edit. Writes benchmarks/results/styleclip_sweep.json.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from styledrop_mini import world
from styledrop_mini.images import pil_to_tensor
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.styleclip import EDIT_KINDS, Edit, LatentOptimisation, edit_report, optimise_latent, remask_edit

VARIANTS = {
    "latent, StyleCLIP's defaults (lr 0.05, l2 0.008)": LatentOptimisation(),
    "latent, lr 0.1, l2 0.002": LatentOptimisation(lr=0.1, l2=0.002),
    "latent, straight-through, 4 views, lr 0.1, l2 0.002": LatentOptimisation(lr=0.1, l2=0.002, straight_through=True,
                                                                              views=4),
    "latent, straight-through, 4 views, lr 0.2, l2 0.0005": LatentOptimisation(lr=0.2, l2=0.0005,
                                                                               straight_through=True, views=4),
    "latent, as above, keep 1": LatentOptimisation(lr=0.2, l2=0.0005, straight_through=True, views=4, keep=1.0),
    "latent, straight-through, 4 views, lr 0.2, l2 0.0005, prior 1": LatentOptimisation(
        lr=0.2, l2=0.0005, straight_through=True, views=4, prior=1.0),
}


def sources(n: int, seed: int = 0):
    """n test renders of seen named styles, each with an edit (colour, content, style in turn) and the
    caption of the edited image."""
    rng = np.random.default_rng(seed)
    seen, colours, shapes = list(world.SEEN_STYLES), list(world.COLOURS), list(world.CONTENTS[:14])
    images, edits, captions = [], [], []
    for i in range(n):
        content, colour, style = shapes[rng.integers(len(shapes))], colours[rng.integers(len(colours))], \
            seen[rng.integers(len(seen))]
        images.append(pil_to_tensor(world.render(content, colour, style, seed=2 * i + 1)))
        kind = EDIT_KINDS[i % 3]
        now = {"colour": colour, "content": content, "style": style}[kind]
        pool = {"colour": colours, "content": shapes, "style": seen}[kind]
        value = [v for v in pool if v != now][rng.integers(len(pool) - 1)]
        edits.append(Edit(kind, value))
        new = {"content": content, "colour": colour, "style": style, kind: value}
        captions.append(world.caption(new["content"], new["colour"], new["style"]))
    return torch.stack(images), edits, captions


def judged(judges, before, after, edits, seconds) -> dict:
    report = {"all": edit_report(judges, before, after, edits), "seconds_per_edit": round(seconds / len(edits), 3)}
    for kind in EDIT_KINDS:
        idx = [i for i, e in enumerate(edits) if e.kind == kind]
        report[kind] = edit_report(judges, before[idx], after[idx], [edits[i] for i in idx])
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=24, help="edits (a third of each kind)")
    parser.add_argument("--out", default="benchmarks/results/styleclip_sweep.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    judges = pipe.judges()
    before, edits, captions = sources(args.n)
    results = {}
    for name, settings in VARIANTS.items():
        start = time.perf_counter()
        after = torch.cat([optimise_latent(pipe.tokenizer, pipe.clip, before[i:i + 1], edits[i], settings, pipe)[0]
                           for i in range(len(edits))])
        results[name] = {"settings": asdict(settings), **judged(judges, before, after, edits, time.perf_counter() - start)}
        print(name, results[name]["all"], flush=True)
    start = time.perf_counter()
    after = remask_edit(pipe, before, captions, share=0.5)
    results["MaskGIT re-mask, half the tokens"] = judged(judges, before, after, edits, time.perf_counter() - start)
    print("MaskGIT re-mask", results["MaskGIT re-mask, half the tokens"]["all"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"edits": args.n, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
