"""`styledrop-mini evaluate`: the bundled models measured on fresh test renders, in one report.

The measuring models (tokenizer, judges, CLIP) against the truth of the test renders; the base
generator on seen styles and on held-out names (metrics.generator_report); the style-prior
diagnostics (diagnostics.py): can the base learn each held-out style, from true renders and from one
image?; and the paper's table (paper_table.py): every method on every reference.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch.nn.functional as F

from . import diagnostics, metrics, paper_table, world
from .clip import MiniClip
from .datasets import style_references
from .devices import pick_device
from .images import image_grid, load_image
from .judges import Judges
from .pipeline import MusePipeline
from .sampling import SamplerSettings
from .settings import CHECKPOINT_DIR
from .tokenizer import VQTokenizer

MODELS = ("tokenizer", "judges", "clip", "base", "style-prior", "table")
HELD_OUT = world.HELD_OUT_STYLES + (world.HARD_STYLE,)


def check_request(models, styles=HELD_OUT, png=(), resume: bool = False, table_workdir=None) -> None:
    """Refuse what cannot be measured before any slow work: unknown models, styles that are not
    held out, a PNG without 'style-prior' to measure it, a missing or broken PNG, a table to resume
    without its work folder."""
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    bad_styles = [s for s in styles if s not in HELD_OUT]
    if ("style-prior" in models or "table" in models) and bad_styles:
        which = "style-prior" if "style-prior" in models else "table"
        raise ValueError(f"styles {bad_styles}: {which} measures held-out styles: {', '.join(HELD_OUT)}")
    if png and "style-prior" not in models:
        raise ValueError("a PNG is measured by 'style-prior': add it to the models")
    for path, _ in png:
        load_image(path)  # a missing or broken picture fails now
    if resume and ("table" not in models or table_workdir is None):
        raise ValueError("--resume continues a 'table' run: give 'table' and the run's --work-dir")


def evaluate(models, checkpoints=None, device="cpu", n: int = 1000, seed: int = 1, workers: int | None = None,
             prompts: int = 400, settings: SamplerSettings | None = None, styles=HELD_OUT, seeds: int | None = None,
             precision: str = "auto", png=(), table_settings: paper_table.TableSettings | None = None,
             table_dir=None, table_workdir=None, resume: bool = False, say=print) -> dict:
    """The report of each of `models` (any of MODELS) on the checkpoints in `checkpoints` (default: the
    bundled ones): `n` fresh test renders (seed `seed`) for the measuring models, `prompts` prompts per
    style group for "base" (sampled with `settings`), `prompts` x `seeds` images per test for
    "style-prior" (with `png`: pictures drawn outside the world, as (file, descriptor) pairs); for
    "table", `table_settings` (default paper_table.TableSettings()), its CSV, markdown and pictures
    written to `table_dir` when given, each finished row kept in `table_workdir` (with `resume`: read
    back from it)."""
    check_request(models, styles, png, resume, table_workdir)
    settings = (settings or SamplerSettings()).check()
    folder = Path(checkpoints) if checkpoints else CHECKPOINT_DIR
    device = pick_device(device)
    measuring = [m for m in models if m in ("tokenizer", "judges", "clip")]  # the ones read from test renders
    bank = metrics.look_test_bank(n=n, seed=seed, workers=workers) if measuring else None
    report = {"test_images": len(bank) if bank else 0, "seed": seed}
    if "tokenizer" in models or "judges" in models:
        tokenizer = VQTokenizer.load(folder / "tokenizer.safetensors", device)
    if "judges" in models:
        judges = Judges.load(folder / "judges.safetensors", device)
        report["judges"] = metrics.judges_on_renders_and_reconstructions(judges, tokenizer, bank)
        # the style embedding (CSD-like) ignores content: renders, and what a generator makes of them
        report["judges"]["style_embedding_content_invariance"] = {
            "renders": metrics.content_invariance(judges.style_embedding, seed=seed),
            "reconstructions": metrics.content_invariance(judges.style_embedding, seed=seed, tokenizer=tokenizer)}
    if "tokenizer" in models:
        report["tokenizer"] = metrics.tokenizer_report(tokenizer, bank)
        report["tokenizer"]["looks"] = metrics.look_reconstruction_report(tokenizer, n=n, seed=seed,
                                                                          per_style=max(4, n // 16))
    if "clip" in models:
        clip = MiniClip.load(folder / "clip.safetensors", device)
        report["clip"] = metrics.clip_report(clip, bank)
        # CLIP's image embedding as a style descriptor, for comparison with the judges' style embedding
        report["clip"]["image_embedding_content_invariance"] = metrics.content_invariance(
            lambda images: F.normalize(clip.image_embeddings(images), dim=-1), seed=seed)
    if {"base", "style-prior", "table"} & set(models):
        pipe = MusePipeline.load(folder, device)
    if "base" in models:  # the generator: seen styles (what it learnt) and held-out names (what it cannot)
        report["base"] = {group: metrics.generator_report(pipe, pipe.judges(), pipe.clip, n=prompts, seed=seed,
                                                          styles=group, settings=settings, workers=workers)
                          for group in ("seen", "held_out")}
        report["base"]["sampler"] = asdict(settings)
    if "style-prior" in models:  # can the base learn a held-out style at all, and from one image?
        start = time.perf_counter()
        report["style_prior"] = diagnostics.style_prior_report(
            pipe, pipe.judges(), pipe.clip, style_references(), styles, seeds=seeds or 4, n_prompts=prompts,
            precision=precision, outside=png)
        report["style_prior"]["wall_seconds"] = round(time.perf_counter() - start, 1)
        say(diagnostics.table(report["style_prior"]))
    if "table" in models:  # the paper's Table 2: every method on every reference
        start = time.perf_counter()
        references, descriptions = paper_table.table_references(styles)
        result = paper_table.run_table(pipe, pipe.judges(), references, table_settings or paper_table.TableSettings(),
                                       outside=descriptions, workdir=table_workdir, resume=resume, device=device,
                                       say=say)
        report["table"] = {k: v for k, v in result.items() if k != "images"}
        report["table_wall_seconds"] = round(time.perf_counter() - start, 1)
        say(paper_table.markdown(result))
        if table_dir:
            for path in paper_table.write_results(result, table_dir) + _table_pictures(result, table_dir):
                say(f"wrote {path}")
    return report


def _table_pictures(result: dict, folder) -> list[Path]:
    """One picture per reference: a row of each method's first images."""
    paths = []
    for ref, methods in result["images"].items():
        rows = [list(images[:8]) for images in methods.values()]
        path = Path(folder) / f"paper_table_{ref.replace(' ', '_')}.png"
        image_grid(rows, row_labels=list(methods), tile=48, label_width=150, title=ref).save(path)
        paths.append(path)
    return paths
