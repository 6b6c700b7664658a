"""The paper's Table 2 on the mini world: every method on every reference, CLIP beside the truth.

StyleDrop's main table ranks methods by two CLIP scores: text (does the image show the prompt?) and
style (is it like the reference?). It could not check CLIP against the truth, and it warns that the
style score drifts towards 1.0 when a model copies the reference. Our world knows the truth, so each
row here carries CLIP's scores beside the judges' (content right, style right: every primitive of the
look), a style-embedding similarity that ignores content by construction (the judges' primitive
heads, judges.style_embedding: CSD's idea, trained on the world's truth), and the leakage of the
reference's own content into new prompts.

Rows (METHODS), each from the one reference image and its caption:
  base, style name       the base model asked for "a <content> in <descriptor> style": no tuning.
  base, description      the same with attribute words for the look ("with a thick dark outline on a
                         dark background"): prompt engineering, the tuning-free baseline.
  textual inversion      one new word's embedding learnt in the text tower (textual_inversion.py).
  full fine-tuning       every weight of G tuned on "a <content> in sks style" (a rare token, as in
                         DreamBooth); sampled with Eq. 4 against the frozen base.
  LoRA                   rank-4 LoRA on G's attention (adapters.AdapterConfig(kind="lora")).
  StyleDrop R1           bottleneck adapters, the descriptor template (adapters.tune_style's defaults).
  R2 Random / CF / CF + style floor / simulated HF
                         round 2 from R1's pool (feedback.py): one image per prompt chosen at random,
                         by CLIP's text score, by CLIP's text score among images above the pool's median
                         style score, or by the judges (right content and style, else the likeliest to
                         be: a careful human).
  IP-Adapter             no tuning: the bundled image-prompt adapter reads the reference's CLIP image
                         embedding in every block; the prompt is the content alone (instantstyle.py).
  InstantStyle           the same with the reference's content words subtracted from the embedding and
                         the picture read only by the style blocks (instantstyle.INSTANTSTYLE). Both
                         cost no tuning: their seconds are the embedding's; the adapter was trained once.
Columns (per row: mean, and a standard error over every image of every tuning seed): CLIP text,
CLIP style, style embedding, judge content, judge style, leakage; trainable parameters; tuning seconds.
References outside the world (scripts/make_outside_references.py) have no judge style (no recipe to
check) and no simulated HF; the style embedding still measures them.

Chapter 09: tutorials/09_evaluation.ipynb.
"""
from __future__ import annotations

import csv
import math
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import safetensors.torch
import torch

from . import adapters, feedback, instantstyle, metrics, prompts, world
from .clip import content_prompt
from .datasets import StyleReference, style_references
from .feedback import FeedbackSettings
from .files import read_json, read_jsonl, write_json
from .sampling import GUIDANCE, AdapterGuidance
from .settings import DATA_DIR
from .styles import PRIMITIVES
from .textual_inversion import INVERSION, PLACEHOLDER, invert

METHODS = ("base, style name", "base, description", "textual inversion", "full fine-tuning", "LoRA",
           "StyleDrop R1", "R2 Random", "R2 CF", "R2 CF + style floor", "R2 simulated HF", "IP-Adapter",
           "InstantStyle")
TUNING_FREE = {"IP-Adapter": instantstyle.IP_ADAPTER, "InstantStyle": instantstyle.INSTANTSTYLE}
FULL_LR = 1e-4  # every weight moves: a tenth of the adapters' step (DreamBooth tunes all of Imagen at 5e-6)
COLUMNS = ("clip_text", "clip_style", "style_embedding", "judge_content", "judge_style", "leakage")


@dataclass(frozen=True)
class TableSettings:
    contents: int = 12  # evaluation contents (metrics.style_eval_contents), none the reference shows
    seeds: int = 4  # images per content, per method and tuning seed
    tuning_seeds: tuple = (0, 1, 2)
    steps: int = adapters.TUNING.steps  # every tuned method's steps (round 2: the feedback settings')
    guidance: AdapterGuidance = GUIDANCE  # Eq. 4 for every adapted model
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)


OUTSIDE_DIR = DATA_DIR / "styles_outside"  # references drawn outside the world (scripts/make_outside_references.py)

QUICK_TABLE = TableSettings(contents=3, seeds=2, tuning_seeds=(0,), steps=20,
                            feedback=FeedbackSettings(per_prompt=2, n_prompts=3, steps=20))


def settings_for(quick: bool = False, tuning_seeds: int | None = None, seeds: int | None = None) -> TableSettings:
    """The table's settings: the full ones, or QUICK_TABLE's (minutes on 2 CPU cores); with that many
    tuning seeds (0, 1, ...) and images per content when given."""
    settings = QUICK_TABLE if quick else TableSettings()
    if tuning_seeds is not None:
        settings = replace(settings, tuning_seeds=tuple(range(tuning_seeds)))
    return replace(settings, seeds=seeds) if seeds is not None else settings


@dataclass
class Drawn:
    """How one tuned (or untuned) method draws a content: its pipeline, the prompt it is given, the
    logits function for `generate` (None: plain guidance), and what tuning it cost."""
    pipe: object
    prompt_for: Callable[[str], str]
    logits_fn_for: Callable | None = None
    trainable: int = 0
    seconds: float = 0.0


def description(ref: StyleReference, outside: dict | None = None) -> str:
    """The look in attribute words, as the training captions word them (world.PHRASES): every primitive
    whose value has words (outlines, effects and palettes "as is" go unsaid). A reference from outside
    the world brings its own (`outside[style]`)."""
    if outside and ref.style in outside:
        return outside[ref.style]
    look = world.STYLE_LOOKS[ref.style]
    return " ".join(p for p in (world.PHRASES[k][getattr(look, k)] for k in PRIMITIVES) if p)


def outside_references(folder=OUTSIDE_DIR) -> tuple[dict[str, StyleReference], dict[str, str]]:
    """The references drawn outside the world, and each one's description in the world's attribute
    words (its metadata's `description`), for the prompt-engineering row."""
    folder = Path(folder)
    descriptions = {row["style"]: row.get("description", "") for _, row in read_jsonl(folder / "metadata.jsonl",
                                                                                       "style references list")}
    return style_references(folder), descriptions


def table_references(styles=world.HELD_OUT_STYLES + (world.HARD_STYLE,), outside_folder=OUTSIDE_DIR):
    """The table's references: the bundled ones of `styles` and every one outside the world; with the
    outside ones' descriptions."""
    bundled = style_references()
    missing = [s for s in styles if s not in bundled]
    if missing:
        raise ValueError(f"no bundled reference for {missing}; the bundled ones are {', '.join(bundled)}")
    outside, descriptions = outside_references(outside_folder) if outside_folder else ({}, {})
    return {**{s: bundled[s] for s in styles}, **outside}, descriptions


class Context:
    """One reference's tuning runs, shared between rows: R2's methods start from R1's adapter."""

    def __init__(self, pipe, judges, ref: StyleReference, settings: TableSettings, workdir: Path,
                 outside: dict | None = None, device="cpu"):
        self.pipe, self.judges, self.ref, self.settings = pipe, judges, ref, settings
        self.workdir, self.outside, self.device = workdir, outside or {}, device
        self._round1: dict[int, tuple] = {}
        self._pools: dict[int, tuple[feedback.Run, float]] = {}  # the pool and the seconds it took to draw
        self._image_prompted = None

    def image_prompted(self):
        """The base generator that reads image prompts (the bundled adapter), loaded once."""
        if self._image_prompted is None:
            self._image_prompted = instantstyle.generator(self.pipe)
        return self._image_prompted

    def styled(self, content: str) -> str:
        return prompts.styled(content, self.ref.descriptor, self.ref.template)

    def tuned(self, images, captions, config: adapters.AdapterConfig, seed: int, lr: float = adapters.TUNING.lr):
        """(tuned model, its trainable parameters, seconds) at the table's steps."""
        start = time.perf_counter()
        model, _ = adapters.tune(self.pipe, images, captions, config, steps=self.settings.steps, lr=lr, seed=seed,
                                 device=self.device)
        seconds = time.perf_counter() - start
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return model, trainable, seconds

    def round1(self, seed: int):
        if seed not in self._round1:
            self._round1[seed] = self.tuned(self.ref.image, [self.ref.caption], adapters.AdapterConfig(), seed)
        return self._round1[seed]

    def pool(self, seed: int) -> tuple[feedback.Run, float]:
        """Round 2's pool drawn with R1's adapter of this seed, and the seconds the drawing took."""
        if seed not in self._pools:
            model = self.round1(seed)[0]
            fb = replace(self.settings.feedback, seed=seed, guidance=self.settings.guidance)
            folder = self.workdir / f"{self.ref.style}_seed{seed}"
            start = time.perf_counter()
            run = feedback.make_pool(self.pipe, model, self.ref, folder, self.pipe.clip, fb, overwrite=True)
            self._pools[seed] = run, time.perf_counter() - start
        return self._pools[seed]


def _adapted(ctx: Context, model, trainable: int, seconds: float, prompt_for=None) -> Drawn:
    return Drawn(ctx.pipe, prompt_for or ctx.styled, ctx.pipe.adapter_guided(model, ctx.settings.guidance),
                 trainable, seconds)


def _round2(ctx: Context, seed: int, rule: str) -> Drawn | None:
    run, pool_seconds = ctx.pool(seed)
    if rule == "random":
        ids = feedback.select_random(run.pool, seed)
    elif rule == "clip":
        ids = feedback.select_clip(run.pool)
    elif rule == "clip_floor":  # the pool's median style score as the floor
        ids = feedback.select_clip(run.pool, statistics.median(it["clip_style"] for it in run.pool))
    else:  # simulated human: the judges know content and style
        if ctx.ref.style not in world.STYLE_LOOKS:
            return None
        # best effort: where no image of a prompt is right, a careful person still picks the closest one
        ids = feedback.select_judged(run.pool, ctx.judges.judge(run.images()), ctx.ref.style, best_effort=True)
    if not ids:
        return None
    run.select(rule, ids)
    start = time.perf_counter()
    model, _ = feedback.train_round(ctx.pipe, run, rule, ctx.ref.image, seed=seed, device=ctx.device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    r1_seconds = ctx.round1(seed)[2]  # a round-2 model costs round 1, the pool and its own tuning
    return _adapted(ctx, model, trainable, r1_seconds + pool_seconds + time.perf_counter() - start)


def draw_method(ctx: Context, method: str, seed: int) -> Drawn | None:
    """Tune `method` on the context's reference (tuning seed `seed`) and say how it draws; None where
    the method does not apply (simulated HF on a reference outside the world)."""
    ref, s = ctx.ref, ctx.settings
    if method == "base, style name":
        return Drawn(ctx.pipe, ctx.styled)
    if method == "base, description":
        words = description(ref, ctx.outside)
        return Drawn(ctx.pipe, lambda content: world.with_articles(f"a {content}") + " " + words)
    if method == "textual inversion":
        caption = prompts.styled(ref.content, PLACEHOLDER, ref.template)
        encoder, info = invert(ctx.pipe, ref.image, caption, replace(INVERSION, steps=s.steps), seed=seed,
                               init_words=ref.descriptor, device=ctx.device)
        return Drawn(ctx.pipe.with_text_encoder(encoder), lambda c: prompts.styled(c, PLACEHOLDER, ref.template),
                     None, info["trainable"], info["train_seconds"])
    if method == "full fine-tuning":
        rare = lambda content: prompts.styled(content, PLACEHOLDER, ref.template)  # noqa: E731
        model, trainable, seconds = ctx.tuned(ref.image, [rare(ref.content)], adapters.AdapterConfig(kind="full"),
                                              seed, lr=FULL_LR)
        return _adapted(ctx, model, trainable, seconds, rare)
    if method == "LoRA":
        return _adapted(ctx, *ctx.tuned(ref.image, [ref.caption], adapters.AdapterConfig(kind="lora"), seed))
    if method == "StyleDrop R1":
        return _adapted(ctx, *ctx.round1(seed))
    if method in TUNING_FREE:  # the style comes from the picture: the prompt is the content alone
        settings = TUNING_FREE[method]
        model = ctx.image_prompted()
        start = time.perf_counter()
        embedding = instantstyle.style_embedding(ctx.pipe.clip, ref.image, ref.content, settings.subtract)
        return Drawn(ctx.pipe, content_prompt, instantstyle.logits_for(ctx.pipe, model, embedding, settings),
                     0, time.perf_counter() - start)
    rules = {"R2 Random": "random", "R2 CF": "clip", "R2 CF + style floor": "clip_floor", "R2 simulated HF": "judged"}
    if method in rules:
        return _round2(ctx, seed, rules[method])
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


@torch.no_grad()
def score(ctx: Context, drawn: Drawn, sample_seed: int) -> dict:
    """Draw every evaluation content `seeds` times with a method and measure each image: per-image
    values (lists), so that means and standard errors pool over tuning seeds."""
    ref, s = ctx.ref, ctx.settings
    labels = metrics.test_labels(ref, s.seeds, s.contents)
    prompt_list = [drawn.prompt_for(c) for c in labels]
    images = drawn.pipe.generate(prompt_list, seed=sample_seed, logits_fn_for=drawn.logits_fn_for, progress=False)
    clip = ctx.pipe.clip
    # CLIP's text score against the descriptor's prompt for every method (textual inversion is asked with
    # its learnt word, full fine-tuning with a rare one: scored against the same words as the others)
    asked = [prompts.styled(c, ref.descriptor, ref.template) for c in labels]
    values = {"clip_text": clip.text_score(images, asked).tolist(), "clip_style": clip.style_score(images, ref.image).tolist()}
    judged = metrics.judged_per_image(ctx.judges, images, labels, ref)
    names = {"similarity": "style_embedding", "content": "judge_content", "leak": "leakage", "style": "judge_style"}
    values.update({names[k]: v for k, v in judged.items()})
    return values | {"images": images}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class FinishedRows:
    """The rows a table run has finished, kept in its work folder (rows/REFERENCE/METHOD.json and the
    first tuning seed's images beside it), so that a run of hours cut short continues where it stopped.
    The folder's settings.json says what the rows were measured with; a rerun must ask for the same."""

    def __init__(self, workdir: Path, settings: TableSettings, references, resume: bool):
        self.folder = Path(workdir) / "rows"
        wanted = {"settings": repr(settings), "references": sorted(references)}
        settings_file = Path(workdir) / "settings.json"
        if settings_file.exists():
            if not resume:
                raise ValueError(f"{workdir} holds an earlier table run ({settings_file}); continue it with "
                                 "--resume, or give another --work-dir")
            kept = read_json(settings_file, "table run settings")
            changed = [k for k in wanted if kept.get(k) != wanted[k]]
            if changed:
                raise ValueError(f"{settings_file}: the earlier run's {' and '.join(changed)} differ from this "
                                 f"one's ({kept.get(changed[0])} against {wanted[changed[0]]}); give another --work-dir")
        else:
            write_json(settings_file, wanted)

    def _paths(self, reference: str, method: str) -> tuple[Path, Path]:
        stem = self.folder / _slug(reference) / _slug(method)
        return stem.with_suffix(".json"), stem.with_suffix(".safetensors")

    def get(self, reference: str, method: str):
        """(row or None where the method does not apply, images or None, the seconds it took), or None
        if not finished."""
        row_path, image_path = self._paths(reference, method)
        if not row_path.exists():
            return None
        kept = read_json(row_path, "finished table row")
        images = None
        if image_path.exists():
            try:
                images = safetensors.torch.load_file(image_path)["images"]
            except Exception as exc:  # a file cut short by a crash: say which, and how to measure it again
                raise ValueError(f"{image_path}: cannot read this row's images ({exc}); delete it and {row_path.name} "
                                 "beside it to measure the row again") from exc
        return kept.get("row"), images, kept.get("wall_seconds", 0.0)

    def put(self, reference: str, method: str, row: dict | None, images, wall_seconds: float) -> None:
        row_path, image_path = self._paths(reference, method)
        row_path.parent.mkdir(parents=True, exist_ok=True)
        if images is not None:  # the images first: a row on disk always has its pictures
            safetensors.torch.save_file({"images": images.contiguous()}, image_path)
        write_json(row_path, {"row": row, "wall_seconds": wall_seconds})


def run_table(pipe, judges, references: dict[str, StyleReference], settings: TableSettings = TableSettings(),
              methods=METHODS, outside: dict | None = None, workdir=None, resume: bool = False, device="cpu",
              say: Callable[[str], None] = print) -> dict:
    """Every method on every reference: {reference: {method: {column: metrics.mean_se, trainable, seconds}}},
    {"images": {reference: {method: first tuning seed's images}}} for pictures, and "wall_seconds": the
    time the rows took to measure, summed over every run that measured some of them.

    Each finished row is kept in `workdir` (FinishedRows); with `resume`, rows already there are read
    back instead of measured again (the full table is hours on 2 CPU cores; a resumed reference tunes
    its round 1 again for its round-2 rows, and that time counts again)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if resume and workdir is None:
        raise ValueError("resume needs the work folder of the run to continue (--work-dir)")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="styledrop_table_"))
    finished = FinishedRows(workdir, settings, references, resume)
    table, pictures, wall_seconds = {}, {}, 0.0
    for name, ref in references.items():
        ctx = Context(pipe, judges, ref, settings, workdir, outside, device)
        table[name], pictures[name] = {}, {}
        for method in methods:
            kept = finished.get(name, method)
            if kept is not None:
                row, images, seconds = kept
                wall_seconds += seconds
                if row is not None:
                    table[name][method], pictures[name][method] = row, images
                say(f"{name}: {method}: kept from {finished.folder}")
                continue
            pooled: dict[str, list] = {}
            trainable, seconds, start = 0, [], time.perf_counter()
            for seed in settings.tuning_seeds:
                drawn = draw_method(ctx, method, seed)
                if drawn is None:
                    break
                scored = score(ctx, drawn, sample_seed=10_000 + 1_000 * seed)
                pictures[name].setdefault(method, scored.pop("images"))
                for k, v in scored.items():
                    pooled.setdefault(k, []).extend(v)
                trainable, seconds = drawn.trainable, seconds + [drawn.seconds]
            took = time.perf_counter() - start
            wall_seconds += took
            if not pooled:
                finished.put(name, method, None, None, took)
                say(f"{name}: {method} does not apply")
                continue
            row = {k: metrics.mean_se(v) for k, v in pooled.items()}
            row.update(trainable=trainable, seconds=sum(seconds) / len(seconds))
            table[name][method] = row
            finished.put(name, method, row, pictures[name][method], took)
            say(f"{name}: {method}: " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in row.items()
                                                  if isinstance(v, dict)))
    return {"table": table, "orderings": orderings(table), "disagreements": disagreements(table), "images": pictures,
            "wall_seconds": round(wall_seconds, 1), "settings": {"contents": settings.contents, "seeds": settings.seeds,
                                                                  "tuning_seeds": list(settings.tuning_seeds),
                                                                  "steps": settings.steps}}


# The paper's conclusions from Table 2, as orderings of two rows on a text or a style measure:
# (name, row that should be higher, row that should be lower, kind, ties count as holding)
ORDERINGS = (("R1 style > base", "StyleDrop R1", "base, style name", "style", False),
             ("CF text >= R1", "R2 CF", "StyleDrop R1", "text", True),
             ("HF text >= R1", "R2 simulated HF", "StyleDrop R1", "text", True),
             ("CF style < R1", "StyleDrop R1", "R2 CF", "style", False),
             ("Random text < CF", "R2 CF", "R2 Random", "text", False))
# Each judge of text (is the content right?) and of style: CLIP's scores, the judges' truth, the embedding
MEASURES = {"CLIP": {"text": "clip_text", "style": "clip_style"},
            "judges": {"text": "judge_content", "style": "judge_style"},
            "style embedding": {"style": "style_embedding"}}


def orderings(table: dict) -> dict:
    """For each measure (CLIP, the judges, the style embedding) and each of the paper's orderings: on
    how many references it holds, of those where the measure and both rows exist."""
    out = {}
    for measure, columns in MEASURES.items():
        out[measure] = {}
        for name, high, low, kind, ties_hold in ORDERINGS:
            if kind not in columns:
                continue
            held = total = 0
            for rows in table.values():
                a, b = rows.get(high, {}).get(columns[kind]), rows.get(low, {}).get(columns[kind])
                if a is None or b is None:
                    continue
                total += 1
                held += a["mean"] > b["mean"] or (ties_hold and a["mean"] == b["mean"])
            out[measure][name] = {"holds": held, "of": total}
    return out


def disagreements(table: dict) -> list[dict]:
    """Pairs of rows, per reference, that CLIP ranks one way and the judges the other, on text
    (CLIP text vs judge content) or style (CLIP style vs judge style), each gap beyond two standard
    errors of its difference: where the paper's reading of its table could be wrong."""
    found = []
    pairs = (("text", "clip_text", "judge_content"), ("style", "clip_style", "judge_style"))
    for ref, rows in table.items():
        names = list(rows)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for kind, by_clip, by_judges in pairs:
                    cells = [rows[m].get(c) for m in (a, b) for c in (by_clip, by_judges)]
                    if any(c is None for c in cells):
                        continue
                    clip_a, judge_a, clip_b, judge_b = cells
                    clip_gap, judge_gap = clip_a["mean"] - clip_b["mean"], judge_a["mean"] - judge_b["mean"]
                    clear = all(abs(gap) > 2 * math.hypot(x["se"], y["se"]) for gap, x, y in
                                ((clip_gap, clip_a, clip_b), (judge_gap, judge_a, judge_b)))
                    if clear and clip_gap * judge_gap < 0:
                        found.append({"reference": ref, "kind": kind, "clip_prefers": a if clip_gap > 0 else b,
                                      "judges_prefer": a if judge_gap > 0 else b,
                                      "clip_gap": clip_gap, "judge_gap": judge_gap})
    return found


def write_results(result: dict, folder, stem: str = "paper_table") -> list[Path]:
    """The table as CSV (one row per reference and method) and as markdown; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for ref, methods in result["table"].items():
        for method, row in methods.items():
            flat = {"reference": ref, "method": method, "trainable": row["trainable"],
                    "seconds": round(row["seconds"], 1)}
            for column in COLUMNS:
                cell = row.get(column)
                flat[column] = "" if cell is None else round(cell["mean"], 4)
                flat[f"{column}_se"] = "" if cell is None else round(cell["se"], 4)
            rows.append(flat)
    csv_path = folder / f"{stem}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md_path = folder / f"{stem}.md"
    md_path.write_text(markdown(result))
    return [csv_path, md_path]


def markdown(result: dict) -> str:
    heads = ["CLIP text", "CLIP style", "style emb.", "judge content", "judge style", "leakage"]
    lines = []
    for ref, methods in result["table"].items():
        lines += [f"**{ref}**", "", "| method | " + " | ".join(heads) + " | trainable | tuning s |",
                  "|---|" + "---|" * (len(heads) + 2)]
        for method, row in methods.items():
            cells = []
            for column in COLUMNS:
                cell = row.get(column)
                percent = column in ("judge_content", "judge_style", "leakage")
                cells.append("n/a" if cell is None else
                             f"{100 * cell['mean']:.0f} ± {100 * cell['se']:.0f} %" if percent else
                             f"{cell['mean']:.3f} ± {cell['se']:.3f}")
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {row['trainable']:,} | {row['seconds']:.0f} |")
        lines.append("")
    if "orderings" in result:
        measures = list(result["orderings"])
        lines += ["The paper's orderings: on how many references each holds, by measure", "",
                  "| ordering | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
        for name, *_ in ORDERINGS:
            cells = [result["orderings"][m].get(name) for m in measures]
            lines.append(f"| {name} | " + " | ".join("n/a" if c is None else f"{c['holds']} of {c['of']}"
                                                      for c in cells) + " |")
        lines += ["", f"CLIP and the judges rank {len(result['disagreements'])} pairs of rows in opposite orders "
                      "(both gaps beyond two standard errors).", ""]
    return "\n".join(lines)
