"""DreamBooth content adapters: one particular subject, bound to a rare identifier.

DreamBooth tunes on a few images of one subject captioned "a sks star" ("sks": a token that means
nothing yet; "star": the subject's class). Tuned on those alone, the adapter also changes what the
plain class word draws — "a star" drifts toward the subject (language drift). Prior preservation
keeps the class word's meaning: the frozen base model draws images for "a star" once (cached), and
they train alongside, with their own prompt:

    loss = L(subject images, "a sks star") + w · L(class images, "a star")       (w = 1, as diffusers)

The content adapter is an ordinary adapter file (adapters.py), so it mixes with a StyleDrop style
adapter at sampling time (sampling.mixed_logits).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoints import fingerprint, read_checkpoint, save_checkpoint
from .images import load_image, pil_to_tensor
from .settings import DATA_DIR
from .transformer import prompt_loss_fn

SUBJECT_DIR = DATA_DIR / "subjects" / "sks_star"
PRIOR = dict(weight=1.0, n_class=64)  # diffusers' default weight; class images drawn once and cached


def subject_prompt(class_noun: str, identifier: str = "sks") -> str:
    return f"a {identifier} {class_noun}"


def load_subject(folder=SUBJECT_DIR) -> tuple[torch.Tensor, dict]:
    """The subject's images (K, 3, 64, 64) and its metadata (class_noun, identifier) from a folder
    with a metadata.jsonl (one {"file_name", "class_noun", "identifier"} line per image)."""
    folder = Path(folder)
    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        raise FileNotFoundError(f"{folder} has no metadata.jsonl: one line per image, "
                                '{"file_name": ..., "class_noun": "star", "identifier": "sks"}')
    rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{meta} lists no images")
    images = torch.stack([pil_to_tensor(load_image(folder / r["file_name"], size=64)) for r in rows])
    return images, {"class_noun": rows[0]["class_noun"], "identifier": rows[0].get("identifier", "sks")}


@torch.no_grad()
def class_tokens(pipe, class_noun: str, n: int = PRIOR["n_class"], seed: int = 0, cache_dir=None) -> torch.Tensor:
    """Token grids of `n` images the frozen base model draws for "a {class_noun}" — made once, then
    read from `cache_dir` (keyed by class, count, seed and the base model's fingerprint)."""
    base = fingerprint(pipe.transformer_file) if hasattr(pipe, "transformer_file") else "unsaved"
    path = Path(cache_dir) / f"class_{class_noun.replace(' ', '_')}_{n}_{seed}_{base}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        return read_checkpoint(path, "class_tokens")[0]["tokens"]
    images = pipe.generate([f"a {class_noun}"] * n, seed=seed, progress=False)
    tokens = pipe.tokenizer.encode(images.to(pipe.device)).flatten(1).cpu().short()
    if path is not None:
        save_checkpoint(path, {"tokens": tokens}, "class_tokens", {"class_noun": class_noun, "n": n, "seed": seed},
                        {"base_fingerprint": base})
    return tokens


def prior_loss_fn(text_encoder, prior_tokens: torch.Tensor, class_prompt: str, weight: float):
    """Instance loss on the batch + weight × the same loss on as many class images (prior preservation)."""
    masked = prompt_loss_fn(text_encoder)

    def loss_fn(model, batch):
        loss, metrics = masked(model, batch)
        if weight:
            index = torch.randint(len(prior_tokens), (len(batch["tokens"]),))
            prior_batch = {"tokens": prior_tokens[index].long().to(batch["tokens"].device),
                           "text": [class_prompt] * len(index)}
            prior, _ = masked(model, prior_batch)
            loss = loss + weight * prior
            metrics = {**metrics, "prior_loss": prior.item()}
        return loss, metrics
    return loss_fn


def tune_subject(pipe, images: torch.Tensor, class_noun: str, identifier: str = "sks", config=None,
                 steps: int = 300, lr: float = 3e-4, prior_weight: float = PRIOR["weight"],
                 n_class: int = PRIOR["n_class"], cache_dir=None, seed: int = 0):
    """A DreamBooth content adapter on the subject's images captioned "a {identifier} {class_noun}".
    Returns (adapted model, history)."""
    from .adapters import tune

    loss_fn = None
    if prior_weight:
        prior = class_tokens(pipe, class_noun, n_class, seed=seed, cache_dir=cache_dir)
        loss_fn = prior_loss_fn(pipe.text_encoder, prior, f"a {class_noun}", prior_weight)
    prompt = subject_prompt(class_noun, identifier)
    return tune(pipe, images, [prompt] * len(images), config, steps=steps, lr=lr, seed=seed, loss_fn=loss_fn)
