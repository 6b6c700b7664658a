"""Measurements: how good are the tokenizer, the judges and the mini CLIP, on fresh test renders.

Every figure in data/checkpoints/README.md comes from `styledrop-mini evaluate`, which calls these.
Test renders use the *test* split (odd render seeds), so no image was seen in training.

Chapter 01: tutorials/01_image_tokenizer.ipynb.
"""
from __future__ import annotations

import numpy as np
import torch

from . import prompts as templates
from . import world
from .clip import attribute_prompt, colour_prompt, content_prompt, style_prompt
from .datasets import PRIMITIVE_KEYS, ImageBank, LookWorld, MiniWorld, StyleReference, training_world
from .images import pil_to_tensor
from .judges import style_similarity
from .sampling import GUIDANCE, AdapterGuidance
from .styles import PRIMITIVES, all_looks
from .tokenizer import psnr, reconstruct


def test_bank(n: int = 1000, seed: int = 1, styles="all", workers=None) -> ImageBank:
    """`n` fresh renders of the test split, balanced over contents x colours x styles."""
    return ImageBank.render(MiniWorld(n=n, split="test", styles=styles, seed=seed), workers, desc="test renders")


def look_test_bank(n: int = 1000, seed: int = 1, workers=None) -> ImageBank:
    """`n` fresh renders of the test split over the whole style space, a quarter in named styles (the
    measuring models' training world, datasets.training_world("all"), on odd render seeds)."""
    return ImageBank.render(training_world("all", n, seed, split="test"), workers, desc="test renders")


def _images(bank: ImageBank) -> torch.Tensor:
    return bank.images.float() / 255.0


def judges_report(judges, bank: ImageBank, images: torch.Tensor | None = None) -> dict:
    """Accuracy of each judge head on the bank's images (or `images` drawn from them); "style" (every
    primitive right) over the images that are in a named style."""
    images = _images(bank) if images is None else images
    report = judges.accuracy(images, content=bank.content_ids, colour=bank.colour_ids, **bank.primitive_ids)
    named = bank.style_ids >= 0
    if named.any():
        report["style"] = judges.accuracy(images[named], style=bank.style_ids[named])["style"]
    return report


def judges_on_renders_and_reconstructions(judges, tokenizer, bank: ImageBank) -> dict:
    """judges_report on the bank's renders and on their tokenizer reconstructions: the judges will
    mostly read generated images, which are token decodes, so both must hold."""
    recons, _ = reconstruct(tokenizer, _images(bank))
    return {"renders": judges_report(judges, bank), "reconstructions": judges_report(judges, bank, recons)}


def tokenizer_report(tokenizer, bank: ImageBank) -> dict:
    images = _images(bank)
    recons, tokens = reconstruct(tokenizer, images)
    report = {"psnr_db": float(psnr(recons, images).mean()),
              "codes_used": tokens.unique().numel() / tokenizer.config.codebook_size,
              "tokens_per_image": int(tokens[0].numel())}
    per_style = {}
    for s, name in enumerate(world.STYLES):
        keep = bank.style_ids == s
        if keep.any():
            per_style[name] = round(float(psnr(recons[keep], images[keep]).mean()), 2)
    report["psnr_by_style"] = per_style
    return report


@torch.no_grad()
def look_reconstruction_report(tokenizer, n: int = 3000, per_style: int = 64, seed: int = 1) -> dict:
    """How well a tokenizer carries the style space (styles.py): reconstruction PSNR of `n` test renders
    of random looks (held-out ones included) per primitive value, and of `per_style` renders per named look."""

    def psnr_of(data):
        items = [data[i] for i in range(len(data))]
        images = torch.stack([item["image"] for item in items])
        return psnr(reconstruct(tokenizer, images)[0], images), items

    values, items = psnr_of(LookWorld(n, split="test", looks=all_looks(), seed=seed))
    by_value = {}
    for name, options in PRIMITIVES.items():
        ids = torch.tensor([item[PRIMITIVE_KEYS[name]] for item in items])
        by_value[name] = {option: round(float(values[ids == j].mean()), 2) for j, option in enumerate(options)}
    by_style = {name: round(float(psnr_of(LookWorld(per_style, split="test", looks=[look], seed=seed))[0].mean()), 2)
                for name, look in world.STYLE_LOOKS.items()}
    return {"grid": tokenizer.config.grid, "codebook": tokenizer.config.codebook_size, "renders": n,
            "mean_psnr_db": round(float(values.mean()), 2), "psnr_by_value": by_value, "psnr_by_named_style": by_style}


def clip_report(clip, bank: ImageBank) -> dict:
    """CLIP zero-shot accuracy for content, colour, named style (over the images in one) and each style
    primitive (attribute prompts), and how often an image's own caption beats another's."""

    images = _images(bank)
    styles = list(world.STYLES)
    named = bank.style_ids >= 0
    tasks = [("content", images, bank.content_ids, [content_prompt(c) for c in world.CONTENTS]),
             ("colour", images, bank.colour_ids, [colour_prompt(c) for c in world.COLOURS]),
             ("style", images[named], bank.style_ids[named], [style_prompt(s) for s in styles])]
    tasks += [(name, images, bank.primitive_ids[name], [attribute_prompt(name, v) for v in values])
              for name, values in PRIMITIVES.items() if name in bank.primitive_ids]
    report = {}
    for name, pictures, labels, prompts in tasks:
        if not len(pictures):
            continue
        predicted = clip.zero_shot(pictures, prompts).argmax(-1)
        report[f"zero_shot_{name}"] = float((predicted == labels).float().mean())
        if name == "style":
            held = torch.tensor([styles[i] in world.HELD_OUT_STYLES for i in labels.tolist()])
            if held.any():
                report["zero_shot_style_held_out"] = float((predicted[held] == labels[held]).float().mean())
    # Text score: the image's own caption against the caption of a different combination.
    n = len(bank)
    shift = torch.roll(torch.arange(n), 1)
    matching = clip.text_score(images, bank.texts)
    mismatched = clip.text_score(images, [bank.texts[j] for j in shift.tolist()])
    differ = torch.tensor([bank.texts[i] != bank.texts[j] for i, j in zip(range(n), shift.tolist())])
    report["text_score_matching"] = float(matching.mean())
    report["text_score_mismatched"] = float(mismatched.mean())
    report["matching_beats_mismatched"] = float((matching > mismatched)[differ].float().mean())
    return report


@torch.no_grad()
def generator_report(pipe, judges, clip, n: int = 400, seed: int = 1, styles="seen", settings=None,
                     batch_size: int = 100, workers=None) -> dict:
    """Generate one image for each of `n` prompts drawn from `styles` (balanced over contents x colours
    x styles), then judge them and score them with CLIP, next to real renders of the same prompts."""
    bank = test_bank(n, seed=seed, styles=styles, workers=workers)
    generated = pipe.generate(bank.texts, seed=seed * 100_000, settings=settings, batch_size=batch_size)
    report = {"prompts": n, "styles": styles if isinstance(styles, str) else list(styles)}
    report["judges"] = judges.accuracy(generated, content=bank.content_ids, colour=bank.colour_ids,
                                       style=bank.style_ids)
    text_generated = clip.text_score(generated, bank.texts)
    text_real = clip.text_score(_images(bank), bank.texts)
    report["clip_text_score_generated"] = float(text_generated.mean())
    report["clip_text_score_real"] = float(text_real.mean())
    report["clip_text_score_ratio"] = float(text_generated.mean() / text_real.mean())
    return report


# The acceptance set for style transfer: 12 contents (6 shapes, 6 letters) drawn in a learnt style.
STYLE_EVAL_CONTENTS = ("circle", "triangle", "heart", "moon", "arrow", "tree",
                       "letter A", "letter E", "letter K", "letter M", "letter R", "letter S")


def style_eval_contents(exclude: str | None = None, n: int = 12) -> list[str]:
    """The evaluation contents, without the reference's own content (swapped for a spare one)."""
    spare = [c for c in ("star", "diamond", "house") if c != exclude]
    return ([c for c in STYLE_EVAL_CONTENTS if c != exclude] + spare)[:n]


def test_labels(ref: StyleReference, seeds: int = 4, n_contents: int = 12) -> list[str]:
    """StyleDrop's test set for a reference: `n_contents` contents it does not show, each `seeds` times."""
    return [c for c in style_eval_contents(exclude=ref.content_label, n=n_contents) for _ in range(seeds)]


@torch.no_grad()
def judged_per_image(judges, images: torch.Tensor, labels: list[str], ref: StyleReference) -> dict[str, list[float]]:
    """Each image against its content label and the reference, by the judges: `content` (the label is
    drawn), `leak` (the reference's own content is), `similarity` (judges.style_similarity: the share of
    primitives alike, for any picture) and, for a reference in a world style, `style` (every primitive
    as its recipe)."""
    verdict = judges.judge(images)
    drawn = verdict["content"]["labels"]
    outcomes = {"content": [float(v == c) for v, c in zip(drawn, labels)],
                "leak": [float(v == ref.content_label) for v in drawn],
                "similarity": style_similarity(judges, images, ref.image).tolist()}
    if ref.style in world.STYLE_LOOKS:
        outcomes["style"] = [float(look == world.STYLE_LOOKS[ref.style]) for look in verdict["look"]]
    return outcomes


@torch.no_grad()
def primitive_rates(judges, images: torch.Tensor, style: str) -> dict[str, float]:
    """For a named world style: the share of `images` whose judged value of each primitive is the
    style's recipe. "Style right" needs all five at once; this says which of them a model misses."""
    recipe, looks = world.STYLE_LOOKS[style], judges.judge(images)["look"]
    return {name: sum(getattr(look, name) == getattr(recipe, name) for look in looks) / len(looks)
            for name in PRIMITIVES}


@torch.no_grad()
def style_report(images: torch.Tensor, contents: list[str], style: str, prompts: list[str], judges, clip,
                 reference: torch.Tensor) -> dict:
    """How well `images` (one per entry of `contents`/`prompts`) show their content in `style`:
    judge accuracies, and StyleDrop's CLIP text score (vs the prompt) and style score (vs the reference)."""
    acc = judges.accuracy(images, content=contents, style=[style] * len(images))
    text = clip.text_score(images, prompts)
    style_scores = clip.style_score(images, reference)
    n = len(images)
    return {"judge_content": acc["content"], "judge_style": acc["style"],
            "clip_text": float(text.mean()), "clip_text_se": float(text.std() / n ** 0.5),
            "clip_style": float(style_scores.mean()), "clip_style_se": float(style_scores.std() / n ** 0.5)}


@torch.no_grad()
def style_transfer_report(pipe, judges, clip, ref: StyleReference, model=None, seeds: int = 4,
                          guidance: AdapterGuidance = GUIDANCE,
                          n_contents: int = 12, prompt_for=None, seed: int = 0) -> tuple[dict, torch.Tensor, list]:
    """StyleDrop's test: draw `n_contents` contents the reference does not show, `seeds` images each,
    with `model` (adapted, Eq. 4 `guidance`) or, with None, the base model given
    the same prompt. `ref` is a row of datasets.style_references(). Returns (report, images, prompts);
    the report is style_report's plus "leak_reference_content": the share of images the judges take
    for the reference's own content, and for a world style "primitives" (`primitive_rates`)."""

    labels = test_labels(ref, seeds, n_contents)
    prompt_for = prompt_for or (lambda content: templates.styled(content, ref.descriptor, ref.template))
    prompt_list = [prompt_for(c) for c in labels]
    logits_fn_for = None if model is None else pipe.adapter_guided(model, guidance)
    images = pipe.generate(prompt_list, seed=seed, logits_fn_for=logits_fn_for, progress=False)
    report = style_report(images, labels, ref.style, prompt_list, judges, clip, ref.image)
    leak = judged_per_image(judges, images, labels, ref)["leak"]
    report["leak_reference_content"] = sum(leak) / len(leak)
    if ref.style in world.STYLE_LOOKS:
        report["primitives"] = primitive_rates(judges, images, ref.style)
    return report, images, prompt_list


def mean_se(values) -> dict:
    """Mean and standard error of per-image values (a list or a tensor), with their count."""
    values = torch.as_tensor(values, dtype=torch.float64)
    n = len(values)
    return {"mean": float(values.mean()), "se": float(values.std() / n ** 0.5) if n > 1 else float("nan"), "n": n}


def pair_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """The chance that a random positive pair scores above a random negative one (a tie counts half):
    the area under the ROC curve, computed over every (positive, negative) couple."""
    positive, negative = positive.flatten()[:, None], negative.flatten()[None]
    return float((positive > negative).float().mean() + 0.5 * (positive == negative).float().mean())


@torch.no_grad()
def content_invariance(embed, n_looks: int = 24, n_contents: int = 8, seed: int = 1, tokenizer=None) -> dict:
    """How well an image embedding (`embed(images) -> (B, D)` unit vectors) ignores content: renders of
    `n_looks` random looks x `n_contents` contents (or their `tokenizer` reconstructions, the kind of
    image a generator makes). AUC: the chance that a pair in the same look with different contents is
    more alike than a pair of the same content in different looks (1: style alone counts; 0.5: blind
    to style), and the two kinds' mean similarities. CSD's test of a style descriptor, on the truth."""
    rng = np.random.default_rng(seed)
    looks, colours = all_looks(), list(world.COLOURS)
    picked = [looks[i] for i in rng.choice(len(looks), n_looks, replace=False)]
    contents = [world.CONTENTS[i] for i in rng.choice(len(world.CONTENTS), n_contents, replace=False)]
    images = torch.stack([pil_to_tensor(world.render(c, colours[j % len(colours)], look,
                                                     seed=2 * (i * n_contents + j) + 1))  # odd: test renders
                          for i, look in enumerate(picked) for j, c in enumerate(contents)])
    if tokenizer is not None:
        images = reconstruct(tokenizer, images)[0]
    e = embed(images)
    similarity = e @ e.T
    look_id = torch.arange(n_looks).repeat_interleave(n_contents)
    content_id = torch.arange(n_contents).repeat(n_looks)
    same_look = (look_id[:, None] == look_id[None]) & (content_id[:, None] != content_id[None])
    same_content = (content_id[:, None] == content_id[None]) & (look_id[:, None] != look_id[None])
    pos, neg = similarity[same_look], similarity[same_content]
    return {"auc": pair_auc(pos, neg), "same_look_other_content": float(pos.mean()),
            "same_content_other_look": float(neg.mean()), "images": len(images)}
