"""Style-prior diagnostics: can the base model learn a new style at all, and can it from one image?

StyleDrop works on Muse because a new style is a new *combination* of looks the base model can
already draw: a tiny adapter finds it from one image. Whether our base has such a prior is measured,
per held-out style, by (`styledrop-mini evaluate style-prior`; the protocol is ../shared/README.md's):

  upper_bound   an adapter tuned on K TRUE renders of the style, of K contents the test never shows.
                If even this cannot draw new contents in the style, no one-image method, feedback
                round or content adapter can: run it before blaming a method. Whether a wider adapter,
                full fine-tuning, more renders or a cooler sampler would change it:
                benchmarks/upper_bound_ablation.py.
  one_image     StyleDrop round 1 from the style's bundled reference at the default settings.
  name_only     the base model given the style's name alone. It must draw the style rarely (the
                acceptance bar is <= 20 %), or the test measures what the base already knows rather
                than what the adapter learnt from the image.
and, once for the base model:
  unseen_word   content accuracy with a style word it never saw ("zorblax"), beside the same prompts
                with their own style word: robust text conditioning ignores an unknown word.
  seen_quality  content, colour and style accuracy on the styles it was trained on.
  word_reading  whether it reads each primitive's words at all: the masked-token loss on true renders
                with the right phrase ("with polka dots"), a wrong one ("with no fill") and none. A
                generator that gains nothing from a primitive's words cannot be asked for that
                primitive: attribute_control shows what it draws instead.
  attribute_control  the seen looks drawn from captions that name every primitive: each primitive
                judged right, and the whole look.
and, for a picture drawn outside the world (any PNG, `outside_reference`):
  similarity    the judges' style embedding (judges.style_similarity, CSD-like) of images made for
                new contents, against the picture, before tuning (the base model given the
                descriptor) and after one-image tuning on it. The world's truth cannot judge such a
                style; the embedding can.

Every rate comes with its standard error, sqrt(p (1 - p) / n). Test renders and samples use seeds
that no setting was chosen on (DIAGNOSTIC_SEED).

Chapter 03: tutorials/03_masked_transformer.ipynb.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace

import numpy as np
import torch
import torch.nn.functional as F

from . import adapters, metrics, prompts, world
from .datasets import StyleReference
from .images import fit_square, load_image, pil_to_tensor
from .judges import style_similarity
from .sampling import GUIDANCE, AdapterGuidance
from .styles import PRIMITIVES
from .transformer import random_mask

DIAGNOSTIC_SEED = 7_000  # fresh: no default of the package was chosen on these seeds
UNSEEN_WORD = "zorblax"
# Contents for the upper bound's training renders: none of them is a test content (metrics.STYLE_EVAL_CONTENTS
# or its spares), so the test asks for contents the adapter never saw in the style.
UPPER_BOUND_CONTENTS = ("square", "cross", "ring", "hexagon", "lightning bolt", "letter B", "letter D", "letter G",
                        "letter H", "letter N", "letter P", "letter T")


def rate(p: float, n: int) -> dict:
    """A rate with its standard error."""
    return {"rate": p, "se": math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan"), "n": n}


def _judged(report: dict, n: int) -> dict:
    """style_transfer_report's judge accuracies as rates with standard errors, plus its CLIP scores."""
    return {"style": rate(report["judge_style"], n), "content": rate(report["judge_content"], n),
            "clip_text": report["clip_text"], "clip_style": report["clip_style"],
            "leak_reference_content": report["leak_reference_content"],
            **({"primitives": report["primitives"]} if "primitives" in report else {})}


def true_renders(style: str, contents, seed: int = DIAGNOSTIC_SEED) -> tuple[torch.Tensor, list[str]]:
    """One true render of each content in `style` (colours cycling), with its canonical caption."""
    colours = list(world.COLOURS)
    picked = [colours[i % len(colours)] for i in range(len(contents))]
    images = torch.stack([pil_to_tensor(world.render(c, k, style, seed=2 * (seed + i)))  # even: the train split
                          for i, (c, k) in enumerate(zip(contents, picked))])
    return images, [world.caption(c, k, style) for c, k in zip(contents, picked)]


def upper_bound(pipe, judges, clip, ref: StyleReference, k: int = 8, seeds: int = 4, n_contents: int = 12,
                lambdas=(1.0, 2.0), tuning: dict | None = None, precision: str = "auto") -> dict:
    """An adapter tuned (round-1 settings) on `k` true renders of `k` contents that the test never asks
    for, then asked for `n_contents` new contents x `seeds` at each lambda_A (lambda_B as the library's)."""
    tuning = asdict(replace(adapters.TUNING, **(tuning or {})))
    test = set(metrics.style_eval_contents(exclude=ref.content_label, n=n_contents))
    contents = [c for c in UPPER_BOUND_CONTENTS if c not in test and c != ref.content_label][:k]
    if len(contents) < k:
        raise ValueError(f"only {len(contents)} training contents are free of the test set; ask for k <= {len(contents)}")
    images, captions = true_renders(ref.style, contents)
    start = time.perf_counter()
    model, _ = adapters.tune(pipe, images, captions, seed=DIAGNOSTIC_SEED, precision=precision, **tuning)
    seconds = time.perf_counter() - start
    n = seeds * n_contents
    rows = {}
    for lambda_a in lambdas:
        report = metrics.style_transfer_report(pipe, judges, clip, ref, model, seeds=seeds, n_contents=n_contents,
                                               guidance=AdapterGuidance(lambda_a, GUIDANCE.lambda_b), seed=DIAGNOSTIC_SEED)[0]
        rows[f"lambda_a={lambda_a:g}"] = _judged(report, n)
    return {"train_contents": contents, "tune_seconds": round(seconds, 1), **rows}


def one_image(pipe, judges, clip, ref: StyleReference, seeds: int = 4, n_contents: int = 12, tuning: dict | None = None,
              precision: str = "auto") -> dict:
    """StyleDrop round 1 from the bundled reference at the default tuning and guidance."""
    tuning = asdict(replace(adapters.TUNING, **(tuning or {})))
    caption = ref.caption
    start = time.perf_counter()
    model, _ = adapters.tune(pipe, ref.image, [caption], seed=DIAGNOSTIC_SEED, precision=precision, **tuning)
    seconds = time.perf_counter() - start
    report = metrics.style_transfer_report(pipe, judges, clip, ref, model, seeds=seeds, n_contents=n_contents,
                                           seed=DIAGNOSTIC_SEED)[0]
    return {"tune_seconds": round(seconds, 1), **_judged(report, seeds * n_contents)}


def name_only(pipe, judges, clip, ref: StyleReference, seeds: int = 4, n_contents: int = 12) -> dict:
    """The base model, no adapter, given "{content} in {descriptor} style" for the same test contents."""
    report = metrics.style_transfer_report(pipe, judges, clip, ref, None, seeds=seeds, n_contents=n_contents,
                                           seed=DIAGNOSTIC_SEED)[0]
    return _judged(report, seeds * n_contents)


@torch.no_grad()
def unseen_word(pipe, judges, n: int = 48, word: str = UNSEEN_WORD) -> dict:
    """Content (and colour) accuracy of the base model on `n` seen-style prompts, with their own style
    word and with `word` in its place: "a red star in zorblax style"."""
    bank = metrics.test_bank(n, seed=DIAGNOSTIC_SEED, styles="seen", workers=0)
    labels = [(world.CONTENTS[c], list(world.COLOURS)[k]) for c, k in zip(bank.content_ids.tolist(),
                                                                         bank.colour_ids.tolist())]
    prompt_sets = {"own word": bank.texts,
                   "unseen word": [world.with_articles(f"a {k} {c} in {word} style") for c, k in labels]}
    out = {"word": word}
    for name, texts in prompt_sets.items():
        images = pipe.generate(texts, seed=DIAGNOSTIC_SEED, progress=False)
        acc = judges.accuracy(images, content=bank.content_ids, colour=bank.colour_ids)
        out[name] = {"content": rate(acc["content"], n), "colour": rate(acc["colour"], n)}
    return out


@torch.no_grad()
def _masked_nll(pipe, tokens: torch.Tensor, prompt_list: list[str], mask: torch.Tensor) -> float:
    """Mean cross-entropy (nats) of the generator's guesses at the masked tokens, given the prompts."""
    text = pipe.text(prompt_list)
    model = pipe.transformer
    logits = model(tokens.masked_fill(mask, model.config.mask_id), text.tokens, text.mask, text.pooled)
    return float(F.cross_entropy(logits[mask].float(), tokens[mask]))


def word_reading(pipe, n: int = 96, seed: int = DIAGNOSTIC_SEED, mask_ratio: float | None = None) -> dict:
    """Per primitive, on `n` true renders of seen looks where it is not plain: the masked-token loss
    (nats per token, the same masks throughout) with the right phrase, with another value's phrase,
    and with none ("a red star"). gain = none - right (what stating it helps), contrast = wrong - right
    (what a wrong statement hurts); near 0: the generator does not read these words. Masks follow the
    training schedule, or hide `mask_ratio` of the tokens (1.0: all, where sampling starts and the
    prompt is all there is to go on)."""
    rng = np.random.default_rng(seed)
    looks, contents, colours = world.training_looks(), list(world.CONTENTS), list(world.COLOURS)
    out = {}
    for primitive in PRIMITIVES:
        worded = [value for value, words in world.PHRASES[primitive].items() if words]
        images, right, wrong, none = [], [], [], []
        while len(images) < n:
            look = looks[rng.integers(len(looks))]
            value = getattr(look, primitive)
            if value not in worded:
                continue
            content, colour = contents[rng.integers(len(contents))], colours[rng.integers(len(colours))]
            other = [v for v in worded if v != value][rng.integers(len(worded) - 1)]
            images.append(pil_to_tensor(world.render(content, colour, look, seed=2 * int(rng.integers(10**6)) + 1)))
            subject = world.with_articles(f"a {colour} {content}")
            none.append(subject)
            right.append(f"{subject} {world.PHRASES[primitive][value]}")
            wrong.append(f"{subject} {world.PHRASES[primitive][other]}")
        tokens = pipe.tokenizer.encode(torch.stack(images).to(pipe.device)).flatten(1).long()
        generator = torch.Generator().manual_seed(seed)
        if mask_ratio is None:
            mask = random_mask(n, tokens.shape[1], generator=generator)
        else:  # the same share hidden in every image, at random places
            ranks = torch.rand(n, tokens.shape[1], generator=generator).argsort(-1).argsort(-1)
            mask = ranks < max(1, round(mask_ratio * tokens.shape[1]))
        mask = mask.to(pipe.device)
        nll = {name: _masked_nll(pipe, tokens, texts, mask) for name, texts in
               (("right", right), ("wrong", wrong), ("none", none))}
        out[primitive] = {**{k: round(v, 4) for k, v in nll.items()}, "gain": round(nll["none"] - nll["right"], 4),
                          "contrast": round(nll["wrong"] - nll["right"], 4)}
    return out


def attribute_control(pipe, judges, n: int = 96, seed: int = DIAGNOSTIC_SEED) -> dict:
    """`n` images of seen looks drawn from captions that name every primitive that is not plain
    ("a red star on a dark background with no fill with a thin outline"): the share judged right per
    primitive, for the whole look, and for content."""
    rng = np.random.default_rng(seed)
    looks, contents, colours = world.training_looks(), list(world.CONTENTS), list(world.COLOURS)
    picked, labels, prompt_list = [], [], []
    while len(picked) < n:
        look = looks[rng.integers(len(looks))]
        phrases = [world.PHRASES[k][getattr(look, k)] for k in PRIMITIVES]
        phrases = [p for p in phrases if p]
        if len(phrases) > world.MAX_PHRASES:  # the captions the model was trained on hold at most three
            continue
        content, colour = contents[rng.integers(len(contents))], colours[rng.integers(len(colours))]
        picked.append(look)
        labels.append(content)
        prompt_list.append(" ".join([world.with_articles(f"a {colour} {content}")] + phrases))
    images = pipe.generate(prompt_list, seed=seed, progress=False)
    verdict = judges.judge(images)
    out = {p: rate(sum(v == getattr(look, p) for v, look in zip(verdict[p]["labels"], picked)) / n, n)
           for p in PRIMITIVES}
    out["look"] = rate(sum(v == look for v, look in zip(verdict["look"], picked)) / n, n)
    out["content"] = rate(sum(v == c for v, c in zip(verdict["content"]["labels"], labels)) / n, n)
    return out


def seen_quality(pipe, judges, clip, n: int = 96) -> dict:
    report = metrics.generator_report(pipe, judges, clip, n=n, seed=DIAGNOSTIC_SEED, styles="seen", workers=0)
    return {**{k: rate(v, n) for k, v in report["judges"].items()},
            "clip_text_score_ratio": report["clip_text_score_ratio"]}


def outside_reference(pipe, judges, path, descriptor: str, content: str = "a picture", seeds: int = 4,
                      n_contents: int = 12, tuning: dict | None = None, precision: str = "auto") -> dict:
    """Style-embedding similarity to a user's picture (a PNG drawn anywhere) of `n_contents` x `seeds`
    images "{content} in {descriptor} style", from the base model and from an adapter tuned on it."""
    reference = pil_to_tensor(fit_square(load_image(path), pipe.tokenizer.config.image_size))
    contents = metrics.style_eval_contents(n=n_contents)
    prompt_list = [prompts.styled(c, descriptor) for c in contents for _ in range(seeds)]
    before = pipe.generate(prompt_list, seed=DIAGNOSTIC_SEED, progress=False)
    tuning = asdict(replace(adapters.TUNING, **(tuning or {})))
    start = time.perf_counter()
    model, _ = adapters.tune(pipe, reference, [prompts.styled(content, descriptor)], seed=DIAGNOSTIC_SEED,
                             precision=precision, **tuning)
    seconds = time.perf_counter() - start
    after = pipe.generate(prompt_list, seed=DIAGNOSTIC_SEED, progress=False,
                          logits_fn_for=pipe.adapter_guided(model, GUIDANCE))
    return {"file": str(path), "descriptor": descriptor, "tune_seconds": round(seconds, 1),
            "similarity_before": metrics.mean_se(style_similarity(judges, before, reference)),
            "similarity_after": metrics.mean_se(style_similarity(judges, after, reference))}


def style_prior_report(pipe, judges, clip, references: dict, styles=world.HELD_OUT_STYLES + (world.HARD_STYLE,),
                       seeds: int = 4,
                       n_contents: int = 12, k: int = 8, n_prompts: int = 96, tuning: dict | None = None,
                       precision: str = "auto", outside=(), log=print) -> dict:
    """All the diagnostics for `styles` (each needs a bundled reference in `references`), and for each
    (png path, descriptor) of `outside` the style similarity before and after tuning on it."""
    missing = [s for s in styles if s not in references]
    if missing:
        raise ValueError(f"no reference image for {missing}; choose from {', '.join(references)}")
    report = {"base": str(pipe.transformer_file or ""), "seed": DIAGNOSTIC_SEED,
              "settings": {"seeds": seeds, "n_contents": n_contents, "k": k, "n_prompts": n_prompts,
                           "tuning": asdict(replace(adapters.TUNING, **(tuning or {}))), "guidance": asdict(GUIDANCE)},
              "styles": {}}
    for style in styles:
        ref = references[style]
        log(f"{style}: upper bound ({k} true renders), one image, name only")
        report["styles"][style] = {
            "upper_bound": upper_bound(pipe, judges, clip, ref, k, seeds, n_contents, tuning=tuning, precision=precision),
            "one_image": one_image(pipe, judges, clip, ref, seeds, n_contents, tuning=tuning, precision=precision),
            "name_only": name_only(pipe, judges, clip, ref, seeds, n_contents)}
    log("base model: an unseen style word, and the seen styles")
    report["unseen_word"] = unseen_word(pipe, judges, n_prompts)
    report["seen_quality"] = seen_quality(pipe, judges, clip, n_prompts)
    for path, descriptor in outside or ():
        log(f"{path}: style similarity before and after tuning on it")
        report.setdefault("outside", []).append(outside_reference(pipe, judges, path, descriptor, seeds=seeds,
                                                                  n_contents=n_contents, tuning=tuning,
                                                                  precision=precision))
    return report


def _cell(r: dict) -> str:
    return f"{100 * r['style']['rate']:.0f} / {100 * r['content']['rate']:.0f}"


def table(report: dict) -> str:
    """The report as a markdown table: judge style / content % per held-out style and test."""
    styles = list(report["styles"])
    lines = ["| test (judge style / content %) | " + " | ".join(styles) + " |", "|---" * (len(styles) + 1) + "|"]
    lambdas = [name for name in next(iter(report["styles"].values()))["upper_bound"] if name.startswith("lambda_a")]
    tests = [(f"upper bound, {name.replace('=', ' ')}", lambda s, n=name: s["upper_bound"][n]) for name in lambdas]
    tests += [("one image, round 1, defaults", lambda s: s["one_image"]),
              ("base model, style name only", lambda s: s["name_only"])]
    for label, pick in tests:
        lines.append(f"| {label} | " + " | ".join(_cell(pick(report["styles"][s])) for s in styles) + " |")
    upper = [report["styles"][s]["upper_bound"][lambdas[0]].get("primitives") for s in styles]
    if all(upper):  # which part of the look the adapter on true renders misses
        lines += ["", f"| upper bound, {lambdas[0].replace('=', ' ')}: primitive as its recipe % | " + " | ".join(styles) + " |",
                  "|---" * (len(styles) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{100 * row[name]:.0f}" for row in upper) + " |" for name in upper[0]]
    word, quality = report["unseen_word"], report["seen_quality"]
    lines.append("")
    lines.append(f"base content with its own style word {100 * word['own word']['content']['rate']:.1f} %, with "
                 f"'{word['word']}' {100 * word['unseen word']['content']['rate']:.1f} % "
                 f"(n = {word['unseen word']['content']['n']}); seen styles: content "
                 f"{100 * quality['content']['rate']:.1f} %, colour {100 * quality['colour']['rate']:.1f} %, style "
                 f"{100 * quality['style']['rate']:.1f} % (n = {quality['content']['n']})")
    for row in report.get("outside", ()):
        before, after = row["similarity_before"], row["similarity_after"]
        lines.append(f"{row['file']} ('{row['descriptor']}'): style similarity {before['mean']:.3f} ± {before['se']:.3f} "
                     f"before tuning, {after['mean']:.3f} ± {after['se']:.3f} after (n = {after['n']})")
    return "\n".join(lines)
