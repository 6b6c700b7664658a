"""DreamBooth content adapters: one particular subject, bound to a rare identifier.

DreamBooth tunes on a few images of one subject captioned "a sks star" ("sks": a token that means
nothing yet; "star": the subject's class). Our base model only knows captions of the world's form,
so our subject's photos are captioned "an orange sks star in flat style". Tuned on those alone, the
adapter also changes what the plain class words draw — "an orange star in flat style" drifts toward
the subject (language drift). Prior preservation keeps their meaning: the frozen base model draws
images for the caption without the identifier once (cached), and they train alongside:

    loss = L(subject images, "... sks star ...") + w · L(class images, "... star ...")   (w = 1, as diffusers)

The content adapter is an ordinary adapter file (adapters.py), so it mixes with a StyleDrop style
adapter at sampling time (sampling.mixed_logits).

Chapter 08: tutorials/08_dreambooth_mixing.ipynb.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import prompts as templates
from .adapters import AdapterConfig, AdapterInfo, tune
from .checkpoints import read_checkpoint, save_checkpoint
from .files import MetadataError, inside, read_jsonl
from .images import load_image, pil_to_tensor
from .sampling import GUIDANCE, AdapterGuidance
from .settings import DATA_DIR
from .transformer import prompt_loss_fn

SUBJECT_DIR = DATA_DIR / "subjects" / "sks_star"


@dataclass(frozen=True)
class PriorSettings:
    weight: float = 1.0  # diffusers' default weight
    n_class: int = 64  # class images, drawn once and cached


@dataclass(frozen=True)
class SubjectTuning:
    # Content tuning needs more than style tuning: the identity (six points, not five) is a finer
    # detail than a style. Found by hand in notebook 08 (lr 1e-3 or d_prj 4 draw five-point stars).
    steps: int = 600
    lr: float = 3e-3
    d_prj: int = 32


PRIOR, TUNING = PriorSettings(), SubjectTuning()


def subject_prompt(class_noun: str, identifier: str = "sks") -> str:
    """DreamBooth's plain instance prompt, "a sks star", for subjects whose photos carry no caption."""
    return f"a {identifier} {class_noun}"


def class_prompt(prompt: str, identifier: str) -> str:
    """The instance prompt without its identifier: "an orange sks star in flat style" ->
    "an orange star in flat style" — what prior preservation keeps the base model drawing."""
    words = prompt.split()
    if identifier not in words:
        raise ValueError(f"the prompt {prompt!r} does not contain the identifier {identifier!r}")
    return " ".join(w for w in words if w != identifier)


def load_subject(folder=SUBJECT_DIR) -> tuple[torch.Tensor, dict]:
    """The subject's images (K, 3, 64, 64) and its metadata: class_noun, identifier and prompt (the
    photos' caption with the identifier, e.g. "an orange sks star in flat style"), from a folder with
    a metadata.jsonl (one {"file_name", "class_noun", "identifier", "text"} line per image)."""
    folder = Path(folder)
    meta = folder / "metadata.jsonl"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such subject folder")
    if not meta.is_file():
        raise FileNotFoundError(f"{folder} has no metadata.jsonl: one line per image, "
                                '{"file_name": ..., "class_noun": "star", "identifier": "sks", "text": "a sks star"}')
    rows = read_jsonl(meta, "subject metadata")
    if not rows:
        raise MetadataError(f"{meta} lists no images")
    line_no, first = rows[0]
    for key in ("file_name", "class_noun"):
        if not isinstance(first.get(key), str) or not first[key].strip():
            raise MetadataError(f"{meta}, line {line_no}: needs a {key!r} string, e.g. "
                                '{"file_name": "0.png", "class_noun": "star", "identifier": "sks", "text": "a sks star"}')
    class_noun, identifier = first["class_noun"], first.get("identifier", "sks")
    if not isinstance(identifier, str) or len(identifier.split()) != 1:
        raise MetadataError(f"{meta}, line {line_no}: the identifier must be one word, got {identifier!r}")
    prompt = first.get("text") or subject_prompt(class_noun, identifier)
    if identifier not in prompt.split() or class_noun not in prompt:
        raise MetadataError(f"{meta}: the caption {prompt!r} must contain the identifier {identifier!r} and the "
                            f"class noun {class_noun!r}")
    files = [inside(folder, row.get("file_name"), f"{meta}, line {n}") for n, row in rows]
    images = torch.stack([pil_to_tensor(load_image(path, size=64)) for path in files])
    return images, {"class_noun": class_noun, "identifier": identifier, "prompt": prompt}


@torch.no_grad()
def class_tokens(pipe, prompt: str, n: int = PRIOR.n_class, seed: int = 0, cache_dir=None) -> torch.Tensor:
    """Token grids of `n` images the frozen base model draws for the class prompt — made once, then
    read from `cache_dir` (keyed by prompt, count, seed and the base model's fingerprint)."""
    base = pipe.base_fingerprint or "unsaved"
    # The prompt comes from a user's caption: only letters and digits reach the file name (no "/", no
    # ".."), and a hash of the whole prompt keeps two prompts that read alike apart.
    slug = re.sub(r"[^A-Za-z0-9]+", "_", prompt).strip("_")[:48]
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    path = Path(cache_dir) / f"class_{slug}_{digest}_{n}_{seed}_{base}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        return read_checkpoint(path, "class_tokens")[0]["tokens"]
    images = pipe.generate([prompt] * n, seed=seed, progress=False)
    tokens = pipe.tokenizer.encode(images.to(pipe.device)).flatten(1).cpu().short()
    if path is not None:
        save_checkpoint(path, {"tokens": tokens}, "class_tokens", {"prompt": prompt, "n": n, "seed": seed},
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


def tune_subject(pipe, images: torch.Tensor, prompt: str, identifier: str = "sks", config=None,
                 steps: int = TUNING.steps, lr: float = TUNING.lr, prior_weight: float = PRIOR.weight,
                 n_class: int = PRIOR.n_class, cache_dir=None, seed: int = 0, device=None,
                 precision: str = "auto"):
    """A DreamBooth content adapter on the subject's images captioned `prompt` ("an orange sks star in
    flat style"), with prior preservation on the same caption without the identifier.
    Returns (adapted model, history)."""

    loss_fn = None
    if prior_weight:
        plain = class_prompt(prompt, identifier)
        prior = class_tokens(pipe, plain, n_class, seed=seed, cache_dir=cache_dir)
        loss_fn = prior_loss_fn(pipe.text_encoder, prior, plain, prior_weight)
    config = config or AdapterConfig(d_prj=TUNING.d_prj)
    return tune(pipe, images, [prompt] * len(images), config, steps=steps, lr=lr, seed=seed, loss_fn=loss_fn,
                device=device, precision=precision)


def renamed(meta: dict, identifier: str | None = None, class_noun: str | None = None) -> dict:
    """A subject's metadata (`load_subject`) with its identifier and class noun renamed, in the caption too."""
    if identifier is not None and len(identifier.split()) != 1:
        raise ValueError(f"the identifier must be one word, got {identifier!r}")
    words = [identifier if identifier and w == meta["identifier"] else w for w in meta["prompt"].split()]
    words = [class_noun if class_noun and w == meta["class_noun"] else w for w in words]
    return {"prompt": " ".join(words), "identifier": identifier or meta["identifier"],
            "class_noun": class_noun or meta["class_noun"]}


def tune_subject_folder(pipe, folder, identifier: str | None = None, class_noun: str | None = None, config=None,
                        steps: int = TUNING.steps, lr: float = TUNING.lr, prior_weight: float = PRIOR.weight,
                        n_class: int = PRIOR.n_class, cache_dir=None, seed: int = 0, device=None,
                        precision: str = "auto") -> tuple[torch.nn.Module, AdapterInfo]:
    """`tune_subject` on a folder of subject images (`load_subject`), its identifier and class noun
    optionally renamed. Returns (content adapter, the info to save with it)."""
    images, meta = load_subject(folder)
    meta = renamed(meta, identifier, class_noun)
    config = (config or AdapterConfig(d_prj=TUNING.d_prj)).check()
    start = time.perf_counter()
    model, _ = tune_subject(pipe, images, meta["prompt"], meta["identifier"], config, steps=steps, lr=lr,
                            prior_weight=prior_weight, n_class=n_class, cache_dir=cache_dir, seed=seed, device=device,
                            precision=precision)
    info = AdapterInfo(pipe.base_fingerprint, "content", meta["prompt"], identifier=meta["identifier"],
                       class_noun=meta["class_noun"],
                       tuning={"class_prompt": class_prompt(meta["prompt"], meta["identifier"]), "images": len(images),
                               "prior_weight": prior_weight, "steps": steps, "lr": lr, "seed": seed,
                               "train_seconds": round(time.perf_counter() - start, 1)})
    return model, info


def mixing_report(pipe, style_model, content_model, prompt: str, descriptor: str, style: str, gammas,
                  judges, subject_judge, n: int = 16, seed: int = 0, guidance: AdapterGuidance = GUIDANCE,
                  content_prompt: str | None = None) -> tuple[list[dict], torch.Tensor]:
    """The γ sweep: for each γ, `n` images of `prompt` ("an orange sks star") in the style — the style
    adapter sees "... in {descriptor} style", the content adapter `content_prompt` (default: `prompt`)
    — with their subject fidelity (subject judge), judge style accuracy and seconds per image.
    Returns (rows, images (G, n, ...))."""

    styled = templates.styled(prompt, descriptor)
    rows, images = [], []
    for gamma in gammas:
        start = time.perf_counter()
        drawn = pipe.generate([styled] * n, seed=seed, progress=False,
                              logits_fn_for=pipe.mixed(style_model, content_model, content_prompt or prompt,
                                                      guidance, gamma))
        seconds = time.perf_counter() - start
        rows.append({"gamma": gamma, "subject": subject_judge.fidelity(drawn),
                     "style": judges.accuracy(drawn, style=style)["style"], "seconds_per_image": seconds / n})
        images.append(drawn)
    return rows, torch.stack(images)
