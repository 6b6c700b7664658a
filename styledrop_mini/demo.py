"""The main job, `styledrop-mini demo` (chapters 04-05 build each step): learn a held-out style from its
one bundled reference image, draw new contents with StyleDrop and with the base model given the same
prompt, score both with the judges (the truth) and the mini CLIP (the paper's metric), and lay the
images out as one grid.

Chapter 04: tutorials/04_adapters.ipynb.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from PIL import Image

from . import adapters, metrics
from .datasets import style_references
from .devices import describe, pick_device
from .images import image_grid, tensor_to_pil
from .pipeline import MusePipeline


@dataclass
class DemoResult:
    caption: str  # the reference's templated caption
    scores: dict  # "StyleDrop" / "base model" -> judge_style, judge_content, clip_style, clip_text, ...
    grid: Image.Image  # a row per method: the reference, then the new contents
    adapter_parameters: int
    base_parameters: int
    seconds: float


def run(style: str = "stained glass", n: int | None = None, steps: int | None = None, seed: int = 0,
        device="cpu", precision: str = "auto", say: Callable[[str], None] = print) -> DemoResult:
    """Tune adapters on `style`'s bundled reference (adapters.TUNING, `steps` if given), then draw `n`
    new contents (default: all of metrics.STYLE_EVAL_CONTENTS). `say` reports each stage."""
    start = time.perf_counter()
    refs = style_references()
    if style not in refs:
        raise ValueError(f"no bundled reference for style {style!r}; choose from {', '.join(refs)}")
    ref, device = refs[style], pick_device(device)
    n = n or len(metrics.STYLE_EVAL_CONTENTS)
    pipe = MusePipeline.load(device=device)
    caption = ref.caption
    say(f"running on {describe(device, precision)}")
    say(f"1/3 style tuning on ONE image, {ref.file_name}, captioned {caption!r}")
    tuning = replace(adapters.TUNING, steps=steps or adapters.TUNING.steps)
    model, _ = adapters.tune(pipe, ref.image, [caption], steps=tuning.steps, batch_size=tuning.batch_size, lr=tuning.lr,
                             seed=seed, device=device, precision=precision)
    n_adapter, n_base = adapters.count(model)
    say(f"    {n_adapter:,} adapter parameters ({100 * n_adapter / n_base:.2f} % of the base model) "
        f"in {time.perf_counter() - start:.0f} s")

    contents = metrics.style_eval_contents(exclude=ref.content_label, n=n)
    say(f"2/3 drawing {len(contents)} new contents in {ref.descriptor!r} style, with StyleDrop and "
        "with the base model given the same prompt, and measuring them")
    runs = {name: metrics.style_transfer_report(pipe, pipe.judges(), pipe.clip, ref, m, seeds=1, n_contents=n,
                                                seed=seed)
            for name, m in (("StyleDrop", model), ("base model", None))}
    rows = [[tensor_to_pil(ref.image)] + [tensor_to_pil(i) for i in images] for _, images, _ in runs.values()]
    grid = image_grid(rows, row_labels=list(runs), col_labels=["reference"] + contents, tile=96,
                      title=f"{ref.descriptor} style, learnt from one image ({caption!r})")
    return DemoResult(caption, {name: report for name, (report, _, _) in runs.items()}, grid, n_adapter, n_base,
                      time.perf_counter() - start)
