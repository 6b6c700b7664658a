"""The main job, `styledrop-mini demo` (chapters 04-05 build each step): learn each held-out style from
its one bundled reference image, draw new contents with StyleDrop and with the base model given the
same prompts, score both with the judges (the truth) and the mini CLIP (the paper's metric), and lay
the images out as one grid: per style, the reference beside StyleDrop's images, and the base model's.

Chapter 04: tutorials/04_adapters.ipynb.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from PIL import Image

from . import adapters, metrics, world
from .datasets import style_references
from .devices import describe, pick_device
from .images import image_grid, tensor_to_pil
from .pipeline import MusePipeline


# Sized to draw all three held-out styles in about a minute on 2 CPU cores (fp32). The measured round-1
# default is adapters.TUNING (300 steps); `--steps 300` gives it here.
DEMO_STEPS = 120
DEMO_CONTENTS = 6


@dataclass
class DemoResult:
    captions: dict  # style -> its reference's templated caption
    scores: dict  # style -> {"StyleDrop": report, "base model": report}: judge_style, judge_content, clip_style, ...
    grid: Image.Image  # two rows per style: the reference then StyleDrop's new contents; the base model's
    adapter_parameters: int
    base_parameters: int
    seconds: float


def run(styles=None, n: int = DEMO_CONTENTS, steps: int | None = None, seed: int = 0, device="cpu",
        precision: str = "auto", say: Callable[[str], None] = print) -> DemoResult:
    """For each of `styles` (default: the held-out ones), tune adapters on its bundled reference
    (adapters.TUNING with DEMO_STEPS, or `steps`), then draw `n` new contents with StyleDrop and with the
    base model given the same prompts. `say` reports each stage."""
    start = time.perf_counter()
    refs = style_references()
    styles = list(styles or world.HELD_OUT_STYLES)
    for style in styles:  # before any model loads
        if style not in refs:
            raise ValueError(f"no bundled reference for style {style!r}; choose from {', '.join(refs)}")
    device = pick_device(device)
    pipe = MusePipeline.load(device=device)
    judges = pipe.judges()
    tuning = replace(adapters.TUNING, steps=steps or DEMO_STEPS)
    say(f"running on {describe(device, precision)}; {len(styles)} styles, each learnt from ONE image "
        f"({tuning.steps} tuning steps), {n} new contents each")
    captions, scores, rows, labels = {}, {}, [], []
    blank = Image.new("RGB", (64, 64), (255, 255, 255))
    for k, style in enumerate(styles, 1):
        ref = refs[style]
        captions[style] = ref.caption
        model, _ = adapters.tune(pipe, ref.image, [ref.caption], steps=tuning.steps, batch_size=tuning.batch_size,
                                 lr=tuning.lr, seed=seed, device=device, precision=precision)
        runs = {name: metrics.style_transfer_report(pipe, judges, pipe.clip, ref, m, seeds=1, n_contents=n, seed=seed)
                for name, m in (("StyleDrop", model), ("base model", None))}
        scores[style] = {name: report for name, (report, _, _) in runs.items()}
        (_, styled, _), (_, plain, _) = runs.values()
        rows += [[tensor_to_pil(ref.image)] + [tensor_to_pil(i) for i in styled],
                 [blank] + [tensor_to_pil(i) for i in plain]]
        labels += [f"{ref.descriptor}: StyleDrop", "base model, same prompt"]
        say(f"{k}/{len(styles)} {style}: tuned on {ref.file_name} ({ref.caption!r}) and drew "
            f"{n} contents both ways, {time.perf_counter() - start:.0f} s so far")
    n_adapter, n_base = adapters.count(model)
    drawn = {tuple(metrics.style_eval_contents(exclude=refs[style].content_label, n=n)) for style in styles}
    contents = list(drawn.pop()) if len(drawn) == 1 else [f"new content {i + 1}" for i in range(n)]
    grid = image_grid(rows, row_labels=labels, col_labels=["reference"] + contents,
                      tile=80, label_width=170, title="StyleDrop from one reference image per style, against the base model")
    return DemoResult(captions, scores, grid, n_adapter, n_base, time.perf_counter() - start)
