"""Text-guided edits of fresh renders, judged: does the edit happen, and does the rest stay?

    python benchmarks/styleclip_sweep.py            # 48 edits (16 colour, 16 content, 16 style), ~25 min on 2 cores
    python benchmarks/styleclip_sweep.py -n 24

Each source is a test render (odd seed) of a seen named style; its edit changes its colour, its content
(one of the 14 shapes) or its named style, one kind in three. Methods:
  - StyleCLIP's latent optimisation (styleclip.optimise_latent) at its paper's defaults, pushed harder
    (straight-through codes, shifted views), and with the base transformer's likelihood as a prior;
  - StyleCLIP's latent mapper (styleclip.train_mapper): one network per distinct edit, trained on 64
    other renders, then one pass per source;
  - StyleCLIP's global directions (styleclip.channel_effects on 32 other renders, apply_global_direction);
  - the MaskGIT-native edit (styleclip.remask_edit): half the tokens at random, or the tokens the edit
    concerns (edit_mask: the source caption's likelihood against the target's; at the default threshold
    or a tighter one), one draw or the best of 4 by CLIP. Source captions are read off CLIP (styleclip.describe), as the CLI does; one row gives it
    the true captions instead, to show what CLIP's misreadings cost.
For each: the judges' rates (mean, standard error) of `changed` (the edited attribute has its new
value), `kept` (the other two are as before) and `both`, per kind of edit, and seconds per edit.
Writes benchmarks/results/styleclip_sweep.json.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from styledrop_mini import styleclip, world
from styledrop_mini.images import pil_to_tensor
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.styleclip import (EDIT_KINDS, Edit, GlobalDirection, LatentOptimisation, MapperSettings, RemaskEdit,
                                      edit_report)

LATENT = {
    "latent optimisation, StyleCLIP's defaults (lr 0.05, l2 0.008)": LatentOptimisation(),
    "latent optimisation, straight-through, 4 views, lr 0.1, l2 0.002": LatentOptimisation(
        lr=0.1, l2=0.002, straight_through=True, views=4),
    "latent optimisation, as above, lr 0.2, l2 0.0005, base transformer prior 1": LatentOptimisation(
        lr=0.2, l2=0.0005, straight_through=True, views=4, prior=1.0),
}
GLOBAL = {f"global directions, strength {a:g}": GlobalDirection(strength=a) for a in (1.0, 3.0, 6.0)}
REMASK = {
    "MaskGIT re-mask, half the tokens at random": RemaskEdit(mask="random", best_of=1),
    "MaskGIT re-mask, the edit's tokens (likelihood mask)": RemaskEdit(best_of=1),
    "MaskGIT re-mask, the edit's tokens, best of 4 by CLIP": RemaskEdit(),
    "MaskGIT re-mask, a tighter mask (0.5 nats, not grown), best of 4 by CLIP": RemaskEdit(threshold=0.5, dilation=0),
}


def sources(n: int, seed: int = 0):
    """n test renders of seen named styles, each with an edit (colour, content, style in turn) and the
    true {content, colour, style} of the source."""
    rng = np.random.default_rng(seed)
    seen, colours, shapes = list(world.SEEN_STYLES), list(world.COLOURS), list(world.CONTENTS[:14])
    images, edits, truth = [], [], []
    for i in range(n):
        content, colour, style = shapes[rng.integers(len(shapes))], colours[rng.integers(len(colours))], \
            seen[rng.integers(len(seen))]
        images.append(pil_to_tensor(world.render(content, colour, style, seed=2 * i + 1)))
        kind = EDIT_KINDS[i % 3]
        now = {"colour": colour, "content": content, "style": style}[kind]
        pool = {"colour": colours, "content": shapes, "style": seen}[kind]
        value = [v for v in pool if v != now][rng.integers(len(pool) - 1)]
        edits.append(Edit(kind, value))
        truth.append({"content": content, "colour": colour, "style": style})
    return torch.stack(images), edits, truth


def judged(judges, before, after, edits, seconds) -> dict:
    report = {"all": edit_report(judges, before, after, edits), "seconds_per_edit": round(seconds / len(edits), 3)}
    for kind in EDIT_KINDS:
        idx = [i for i, e in enumerate(edits) if e.kind == kind]
        report[kind] = edit_report(judges, before[idx], after[idx], [edits[i] for i in idx])
    return report


def show(name, report):
    print(f"{name}: " + ", ".join(f"{k} {report['all'][k]['mean']:.2f}" for k in ("changed", "kept", "both"))
          + f" ({report['seconds_per_edit']} s per edit)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=48, help="edits (a third of each kind)")
    parser.add_argument("--out", default="benchmarks/results/styleclip_sweep.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    wall = time.perf_counter()
    pipe = MusePipeline.load()
    judges, tokenizer, clip = pipe.judges(), pipe.tokenizer, pipe.clip
    before, edits, truth = sources(args.n)
    results = {}

    def record(name, after, seconds, settings=None):
        results[name] = {**({"settings": asdict(settings)} if settings else {}),
                         **judged(judges, before, after, edits, seconds)}
        show(name, results[name])

    for name, settings in LATENT.items():
        start = time.perf_counter()
        after = torch.cat([styleclip.optimise_latent(tokenizer, clip, before[i:i + 1], edits[i], settings, pipe)[0]
                           for i in range(len(edits))])
        record(name, after, time.perf_counter() - start, settings)

    training = styleclip.mapper_sources(64, seed=1)
    start = time.perf_counter()
    mappers = {e: styleclip.train_mapper(tokenizer, clip, training, e) for e in dict.fromkeys(edits)}
    after = torch.cat([styleclip.apply_mapper(tokenizer, mappers[e], before[i:i + 1])[0] for i, e in enumerate(edits)])
    record(f"latent mapper ({len(mappers)} edits, {MapperSettings.steps} steps each on 64 renders)", after,
           time.perf_counter() - start, MapperSettings())

    start = time.perf_counter()
    effects = styleclip.channel_effects(tokenizer, clip, styleclip.mapper_sources(32, seed=2))
    effect_seconds = time.perf_counter() - start
    for name, settings in GLOBAL.items():
        start = time.perf_counter()
        after = torch.cat([styleclip.apply_global_direction(tokenizer, clip, effects, before[i:i + 1], e, settings)[0]
                           for i, e in enumerate(edits)])
        record(name, after, effect_seconds + time.perf_counter() - start, settings)

    start = time.perf_counter()
    described = styleclip.describe(clip, before)
    describe_seconds = time.perf_counter() - start
    read_right = [d == t for d, t in zip(described, truth)]
    for name, settings in REMASK.items():
        start = time.perf_counter()
        after = styleclip.remask_edit(pipe, before, [world.caption(**styleclip.edited(d, e)) for d, e in zip(described, edits)],
                                      settings, [world.caption(**d) for d in described])
        record(name, after, describe_seconds + time.perf_counter() - start, settings)
    start = time.perf_counter()
    after = styleclip.remask_edit(pipe, before, [world.caption(**styleclip.edited(t, e)) for t, e in zip(truth, edits)],
                                  RemaskEdit(), [world.caption(**t) for t in truth])
    record("MaskGIT re-mask, best of 4, the true source captions (an upper bound)", after,
           time.perf_counter() - start, RemaskEdit())

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python benchmarks/styleclip_sweep.py" + (f" -n {args.n}" if args.n != 48 else ""),
                               "edits": args.n, "clip_reads_the_source_right": sum(read_right) / len(read_right),
                               "results": results, "wall_seconds": round(time.perf_counter() - wall, 1)}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
