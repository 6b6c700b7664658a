"""InstantStyle: a style from one image with no tuning at all (Wang et al. 2024), on an image-prompt
adapter of ours (IP-Adapter, Ye et al. 2023).

StyleDrop tunes adapters on the reference for minutes. IP-Adapter instead trains ONE small module, once,
on the whole world, so that the generator reads a picture as well as a prompt. Each block's
cross-attention reads the prompt's tokens; the adapter adds a second attention of the same queries over
a few *image tokens* made from the mini CLIP image embedding e of a picture (decoupled cross-attention):

    c = LN(W_p e) as n tokens                       (B, n, text_width)
    z = Attn(Q, K_t, V_t) + λ · Attn(Q, W_k' c, W_v' c)     then the block's output projection

Only W_p and each block's (W_k', W_v') train, the base stays frozen; (W_k', W_v') start as copies of the
block's text K/V, as IP-Adapter's do, so the image tokens are read the way text tokens are from the
start. It trains on the image that is also the target, so it may carry *everything* in e — the content
too. That is the leak InstantStyle fixes at sampling time, with no training:

  1. content subtraction: e' = e − s · e_text(the reference's content words)  (CLIP's joint space), and
  2. style blocks: λ is non-zero only in the blocks that carry style, found by ablation (`block_ablation`).

Classifier-free guidance runs the unconditional pass with the image branch off (the base model alone),
so l = l(v, ∅) + s_cfg (l(v, t, e') − l(v, ∅)).

Measured on the bundled models (benchmarks/instantstyle_ablation.py): the picture moves the look into
new contents (judges' style similarity 0.19–0.28 -> 0.52–0.68 on the held-out and hard references) and leaks the
reference's content into 0–2 % of images; it lowers the prompt's content instead. Block 0 carries most
of the style and of that cost, so "style blocks" that keep content (2 and 3) give up most of the style.

Chapter 11: tutorials/11_tuning_free_style.ipynb.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import world
from .checkpoints import CheckpointError, find_checkpoint, load_model, read_checkpoint, save_model
from .clip import content_prompt
from .datasets import TokenBank
from .metrics import judged_per_image, mean_se, test_labels
from .pipeline import check_prompts
from .prompts import propose_content
from .settings import CHECKPOINT_DIR
from .text_encoder import TextFeatures
from .transformer import CrossAttention, masked_loss, random_mask, training_prompt

KIND = "image_prompt"


@dataclass
class ImagePromptConfig:
    image_dim: int = 128  # the mini CLIP's embedding width
    n_tokens: int = 4  # image tokens made from one embedding (IP-Adapter: 4)
    text_width: int = 128  # the generator's text feature width: the image tokens live beside the text's
    width: int = 256  # the generator's width
    layers: int = 4  # the generator's blocks: one image K/V per block


class ImagePromptAdapter(nn.Module):
    """W_p (an image embedding -> n image tokens) and one image K/V projection per generator block."""

    def __init__(self, config: ImagePromptConfig | None = None):
        super().__init__()
        self.config = cfg = config or ImagePromptConfig()
        self.project = nn.Linear(cfg.image_dim, cfg.n_tokens * cfg.text_width)
        self.norm = nn.LayerNorm(cfg.text_width)
        self.kv = nn.ModuleList(nn.Linear(cfg.text_width, 2 * cfg.width) for _ in range(cfg.layers))
        nn.init.normal_(self.project.weight, std=0.02)
        nn.init.zeros_(self.project.bias)

    def image_tokens(self, embedding: torch.Tensor) -> torch.Tensor:
        """Image embeddings (B, image_dim) -> image tokens (B, n_tokens, text_width)."""
        cfg = self.config
        return self.norm(self.project(embedding).view(len(embedding), cfg.n_tokens, cfg.text_width))

    def save(self, path, info=None, dtype=None):
        return save_model(self, path, KIND, info, dtype)

    @staticmethod
    def load(path, device="cpu") -> "ImagePromptAdapter":
        return load_model(ImagePromptAdapter, ImagePromptConfig, find_checkpoint(path), KIND, device)


class DecoupledCrossAttention(nn.Module):
    """A block's cross-attention to the text, plus λ times the same queries' attention over image tokens."""

    def __init__(self, cross: CrossAttention, kv: nn.Linear):
        super().__init__()
        self.text = cross
        # Held in a tuple, so not registered here: the adapter (model.image_prompt) owns it, and the
        # generator's state then names each tensor once (safetensors refuses a tensor under two names).
        self._kv = (kv,)
        self.image_tokens = None  # (B, n, text_width), set by `injected`
        self.scale = None  # (B,) λ per example, set by `injected`

    def forward(self, x, text, text_mask):
        out = self.text(x, text, text_mask)
        if self.image_tokens is None:
            return out
        B, N, C = x.shape
        heads, n = self.text.heads, self.image_tokens.shape[1]
        q = self.text.q(x).view(B, N, heads, C // heads).transpose(1, 2)
        k, v = self._kv[0](self.image_tokens).view(B, n, 2, heads, C // heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        # out(a + λ b) = out(a) + λ W_out b: the image branch goes through the same output projection
        return out + self.scale.view(B, 1, 1).to(y.dtype) * F.linear(y, self.text.out.weight)


def _check_fresh(model) -> None:
    if getattr(model, "image_prompt", None) is not None:
        raise ValueError("this generator already has an image-prompt adapter; load a fresh base model")


def attach(model, adapter: ImagePromptAdapter) -> list[nn.Parameter]:
    """Freeze the generator `model` and give each block's cross-attention its image branch (the
    adapter's K/V, copied from the block's text K/V when fresh); `model.image_prompt` is the adapter.
    Returns the adapter's (trainable) parameters."""
    cfg, mine = model.config, adapter.config
    if (mine.text_width, mine.width, mine.layers) != (cfg.text_width, cfg.width, cfg.layers):
        raise ValueError(f"this image-prompt adapter fits a generator of width {mine.width}, text width "
                         f"{mine.text_width}, {mine.layers} blocks, not {cfg.width}, {cfg.text_width}, {cfg.layers}")
    _check_fresh(model)
    model.requires_grad_(False)
    for block, kv in zip(model.blocks, adapter.kv):
        block.cross = DecoupledCrossAttention(block.cross, kv)
    model.image_prompt = adapter.to(model.head.weight.device)
    adapter.requires_grad_(True)
    return list(adapter.parameters())


def fresh_adapter(model, image_dim: int, n_tokens: int = 4) -> ImagePromptAdapter:
    """A new adapter for the generator `model` reading image embeddings of width `image_dim`, each
    block's image K/V a copy of its text K/V."""
    _check_fresh(model)
    cfg = model.config
    adapter = ImagePromptAdapter(ImagePromptConfig(image_dim=image_dim, n_tokens=n_tokens, text_width=cfg.text_width,
                                                   width=cfg.width, layers=cfg.layers))
    with torch.no_grad():
        for block, kv in zip(model.blocks, adapter.kv):
            kv.load_state_dict(block.cross.kv.state_dict())
    return adapter


def _branches(model) -> list[DecoupledCrossAttention]:
    branches = [block.cross for block in model.blocks if isinstance(block.cross, DecoupledCrossAttention)]
    if not branches:
        raise ValueError("this generator has no image-prompt adapter: instantstyle.attach one first")
    return branches


@contextlib.contextmanager
def injected(model, embeddings: torch.Tensor, scale: torch.Tensor | float = 1.0, blocks=None):
    """Within the block, the generator reads the image embeddings (B, image_dim) with λ = `scale` (a
    float, or (B,) per example: 0 turns it off) in the blocks numbered in `blocks` (None: every block)."""
    branches = _branches(model)
    chosen = range(len(branches)) if blocks is None else check_blocks(blocks, len(branches))
    B, device = len(embeddings), model.head.weight.device
    per_example = torch.as_tensor(scale, dtype=torch.float32, device=device).expand(B)
    tokens = model.image_prompt.image_tokens(embeddings.to(device).float())
    for i, branch in enumerate(branches):
        if i in chosen:
            branch.image_tokens, branch.scale = tokens, per_example
    try:
        yield
    finally:
        for branch in branches:
            branch.image_tokens = branch.scale = None


def check_blocks(blocks, layers: int) -> tuple[int, ...]:
    """Block numbers (from 0) of a generator with `layers` blocks, checked and sorted."""
    chosen = tuple(sorted(set(blocks)))
    wrong = [b for b in chosen if not (isinstance(b, int) and 0 <= b < layers)]
    if wrong:
        raise ValueError(f"block {wrong[0]} does not exist: this generator has blocks 0 to {layers - 1}")
    return chosen


def parse_blocks(text: str | None) -> tuple[int, ...] | None:
    """The command line's "2,3" -> (2, 3); None or "all" -> None (every block)."""
    if text is None or text.strip().lower() == "all":
        return None
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"--style-blocks takes block numbers separated by commas, e.g. 2,3; got {text!r}") from None


def describe_blocks(blocks) -> str:
    return "all" if blocks is None else ",".join(map(str, blocks)) or "none"


def style_embedding(clip, image: torch.Tensor, content: str = "", subtract: float = 0.0) -> torch.Tensor:
    """InstantStyle's content subtraction: the CLIP image embedding of `image` (3, H, W) minus `subtract`
    times the CLIP text embedding of its content words (both unit vectors) -> (1, image_dim)."""
    if subtract and not content.strip():
        raise ValueError("content subtraction needs the reference's content words, e.g. \"a house\"")
    embedding = clip.image_embeddings(image)
    if subtract:
        embedding = embedding - subtract * clip.text_embeddings([content])
    return embedding


# Defaults: IP-Adapter alone. On the bundled models InstantStyle's two fixes trade style for content
# (benchmarks/instantstyle_ablation.py, notebook 11): subtract=1.0 and blocks=(2, 3) are its settings.
@dataclass(frozen=True)
class InstantStyleSettings:
    scale: float = 1.0  # λ of the image branch
    subtract: float = 0.0  # s: how much of the content's text embedding leaves the image embedding
    blocks: tuple | None = None  # the blocks that read the picture, from 0 (None: every block, IP-Adapter alone)
    guidance_scale: float = 2.0  # classifier-free guidance, with the image branch off in the unconditional pass

    def check(self) -> "InstantStyleSettings":
        for name, value, low, high in (("scale", self.scale, -10, 10), ("subtract", self.subtract, -10, 10),
                                       ("guidance_scale", self.guidance_scale, -10, 50)):
            if not (isinstance(value, (int, float)) and low <= value <= high):  # also False for NaN
                raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
        if self.blocks is not None and not all(isinstance(b, int) and b >= 0 for b in self.blocks):
            raise ValueError(f"blocks are block numbers from 0, e.g. (2, 3), got {self.blocks}")
        return self


IP_ADAPTER = InstantStyleSettings()  # the picture in every block, nothing subtracted
# InstantStyle as measured here (benchmarks/results/instantstyle.json, its "style_blocks"): the reference's
# content words subtracted once, the picture read by the blocks that keep content (block_ablation)
INSTANTSTYLE = InstantStyleSettings(subtract=1.0, blocks=(2, 3))


def image_prompt_logits(model, cond: TextFeatures, uncond: TextFeatures, embeddings: torch.Tensor,
                        settings: InstantStyleSettings = InstantStyleSettings()):
    """The logits function of `MusePipeline.generate` for a generator with an image-prompt adapter:
    the conditional pass reads the prompt and the image embedding (B, image_dim), the unconditional one
    neither; both in one batch."""
    def logits_fn(tokens):
        B = len(tokens)
        on = torch.cat([torch.full((B,), settings.scale), torch.zeros(B)])
        with injected(model, torch.cat([embeddings, embeddings]), on, settings.blocks):
            both = model(torch.cat([tokens, tokens]), torch.cat([cond.tokens, uncond.tokens]),
                         torch.cat([cond.mask, uncond.mask]), torch.cat([cond.pooled, uncond.pooled]))
        l_cond, l_uncond = both.chunk(2)
        return l_uncond + settings.guidance_scale * (l_cond - l_uncond)
    return logits_fn


# ----------------------------------------------------------------------------------------------
# Training the adapter once, on the world's images, with the generator frozen
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class EmbeddedTokenBank(TokenBank):
    """A TokenBank whose images also carry their mini CLIP image embeddings (N, image_dim)."""
    embeddings: torch.Tensor

    @staticmethod
    @torch.no_grad()
    def encode(bank, tokenizer, clip, batch_size: int = 500) -> "EmbeddedTokenBank":
        tokens = TokenBank.encode(bank, tokenizer, batch_size)
        embeddings = torch.cat([clip.image_embeddings(bank.images[i:i + batch_size].float() / 255.0).cpu()
                                for i in range(0, len(bank), batch_size)])
        return EmbeddedTokenBank(tokens=tokens.tokens, embeddings=embeddings.half(), **bank.captions())

    def batch(self, index: torch.Tensor, device="cpu") -> dict:
        return {**super().batch(index, device), "embedding": self.embeddings[index].to(device).float()}


def image_prompt_loss_fn(text_encoder, text_dropout: float = 0.1):
    """MaskGIT loss for the adapter: each image is the target and, through its CLIP embedding, the
    image prompt; its caption (as the base trained on it) is the text prompt, dropped for `text_dropout`
    of the images so that a picture alone also draws. Needs the generator with the adapter attached."""
    colours = list(world.COLOURS)

    def loss_fn(model, batch: dict):
        tokens = batch["tokens"]
        B, device = len(tokens), tokens.device
        choice, drop = torch.rand(B).tolist(), (torch.rand(B) < text_dropout).tolist()
        prompts = ["" if d else training_prompt(caption, colours[k], u)
                   for caption, k, u, d in zip(batch["text"], batch["colour_id"].tolist(), choice, drop)]
        text_encoder.to(device)
        text = text_encoder(prompts).to(device)
        mask = random_mask(B, model.config.n_tokens, device=device)
        with injected(model, batch["embedding"]):
            loss, logits = masked_loss(model, tokens, text.tokens, text.mask, mask, text.pooled)
        return loss, {"masked_acc": float((logits[mask].argmax(-1) == tokens[mask]).float().mean())}

    return loss_fn


DEFAULT_FILE = CHECKPOINT_DIR / "image_prompt.safetensors"


def load(model, path=DEFAULT_FILE, base_fingerprint: str | None = None) -> ImagePromptAdapter:
    """Attach the adapter in `path` to a fresh base generator `model`, refusing one trained on another base."""
    adapter = ImagePromptAdapter.load(path, model.head.weight.device)
    expected = adapter.info.get("base_fingerprint")
    if base_fingerprint and expected and expected != base_fingerprint:
        raise CheckpointError(f"{path}: this image-prompt adapter was trained on base model {expected}, not on the "
                              f"one loaded ({base_fingerprint}); train it again: styledrop-mini train image_prompt")
    attach(model, adapter)
    model.eval()
    return adapter


def generator(pipe, path=DEFAULT_FILE):
    """A copy of the pipeline's base generator that reads image prompts (the adapter in `path`)."""
    model = copy.deepcopy(pipe.transformer)
    load(model, path, pipe.base_fingerprint)
    return model


def logits_for(pipe, model, embedding: torch.Tensor, settings: InstantStyleSettings = InstantStyleSettings()):
    """`logits_fn_for` of `MusePipeline.generate`: every prompt drawn with the one image embedding (1, D)."""
    settings.check()
    embedding = embedding.to(pipe.device)
    return lambda chunk: image_prompt_logits(model, pipe.text(chunk), pipe.text([""] * len(chunk)),
                                             embedding.expand(len(chunk), -1), settings)


def stylise(pipe, model, prompts: list[str], reference: torch.Tensor, content: str = "",
            settings: InstantStyleSettings = InstantStyleSettings(), seed: int = 0, progress: bool = True):
    """One image per prompt in the style of `reference` (3, H, W), with no tuning: `model` is
    `generator(pipe)`; `content` names what the reference shows (for `settings.subtract`). A prompt ""
    draws from the picture alone."""
    embedding = style_embedding(pipe.clip, reference, content, settings.subtract)
    return pipe.generate(prompts, seed=seed, logits_fn_for=logits_for(pipe, model, embedding, settings),
                         progress=progress, allow_empty=True)  # "": the picture alone


def check_request(settings: InstantStyleSettings, adapter_file=DEFAULT_FILE) -> None:
    """Settings and adapter file checked before any model loads: a missing or broken file is named, and
    blocks the adapter's generator does not have are refused."""
    settings.check()
    try:
        path = find_checkpoint(adapter_file)
    except CheckpointError as exc:
        bundled = Path(adapter_file) == DEFAULT_FILE
        hint = " (make it with: styledrop-mini train image_prompt --overwrite)" if bundled else ""
        raise CheckpointError(f"{exc}{hint}") from None
    _, config, _ = read_checkpoint(path, KIND)
    if settings.blocks is not None:
        check_blocks(settings.blocks, int(config.get("layers", 0)))


def draw(pipe, prompts, reference: torch.Tensor, n: int = 8, seed: int = 0,
         settings: InstantStyleSettings = InstantStyleSettings(), content: str = "", adapter_file=DEFAULT_FILE,
         say: Callable[[str], None] = print) -> tuple[torch.Tensor, list[str]]:
    """`n` images per prompt in the style of the picture `reference` (3, H, W), no tuning. With
    `settings.subtract` and no `content`, the mini CLIP proposes what the picture shows (and `say`s so).
    Returns (images (len(prompts) * n, 3, H, W), the prompts)."""
    prompts = check_prompts(prompts)
    check_request(settings, adapter_file)
    if settings.subtract and not content.strip():
        content, confidence = propose_content(pipe.clip, reference)
        say(f"no content given for the style image: the mini CLIP proposes {content!r} (confidence "
            f"{confidence:.0%}), subtracted with weight {settings.subtract}")
    model = generator(pipe, adapter_file)
    images = stylise(pipe, model, [p for p in prompts for _ in range(n)], reference, content, settings, seed)
    return images, prompts


# ----------------------------------------------------------------------------------------------
# Measuring it: StyleDrop's test (new contents in the reference's style), and the block ablation
# ----------------------------------------------------------------------------------------------
def transfer_outcomes(pipe, model, judges, ref, settings: InstantStyleSettings = InstantStyleSettings(),
                      seeds: int = 4, n_contents: int = 12, seed: int = 0) -> tuple[dict, torch.Tensor, list]:
    """StyleDrop's test for tuning-free style: `n_contents` contents the reference does not show × `seeds`,
    each prompt the content alone ("a star": the style must come from the picture), judged per image by
    metrics.judged_per_image (content, leak, similarity, style). Returns (outcomes, images, prompts)."""
    labels = test_labels(ref, seeds, n_contents)
    prompts = [content_prompt(c) for c in labels]
    embedding = style_embedding(pipe.clip, ref.image, ref.content, settings.subtract)
    images = pipe.generate(prompts, seed=seed, logits_fn_for=logits_for(pipe, model, embedding, settings),
                           progress=False)
    return judged_per_image(judges, images, labels, ref), images, prompts


def block_ablation(pipe, model, judges, references: dict, settings: InstantStyleSettings = InstantStyleSettings(),
                   seeds: int = 2, n_contents: int = 12, seed: int = 0) -> list[dict]:
    """InstantStyle's search for the style blocks: the picture read in one block at a time (and in all, and
    in none), each row `transfer_outcomes` pooled over `references` (mean ± s.e. over images)."""
    choices = {"none": (), "all": None, **{f"block {i}": (i,) for i in range(model.config.layers)}}
    rows = []
    for name, blocks in choices.items():
        pooled: dict[str, list] = {}
        for ref in references.values():
            outcomes, _, _ = transfer_outcomes(pipe, model, judges, ref, replace(settings, blocks=blocks), seeds,
                                               n_contents, seed)
            for key, values in outcomes.items():
                pooled.setdefault(key, []).extend(values)
        rows.append({"blocks": name, **{key: mean_se(values) for key, values in pooled.items()}})
    return rows
