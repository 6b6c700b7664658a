"""The mini CLIP: an open_clip CLIP sized for 64-pixel images, trained contrastively on the mini world.

StyleDrop scores its results with CLIP: the *text score* is the cosine between the embeddings of a
generated image and its prompt; the *style score* is the cosine between the embeddings of a
generated image and the style reference. Our CLIP is open_clip's own `CLIP` class built from a small
config (open_clip's BPE tokenizer, open_clip's `ClipLoss`), trained on the whole world — held-out
styles included — so it plays the part of a CLIP that has seen far more than the generator.

A user with real open_clip weights on disk can wrap any open_clip architecture instead:
`MiniClip.from_open_clip("ViT-B-32", pretrained="/path/to/weights.bin")`.

Chapter 02: tutorials/02_clip_and_judges.ipynb.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer

from . import world
from .checkpoints import load_model, save_model
from .styles import PRIMITIVES, Look

KIND = "clip"


@dataclass
class ClipConfig:
    image_size: int = 64
    # The image tower: open_clip's ModifiedResNet (CLIP's RN50 family, here one bottleneck per stage
    # and base width 16) or a ViT. At our scale the convolutions learn shapes far faster: after 400
    # steps the ResNet names the content of 17 % of test renders, the ViT 3 % (chance: 2.5 %).
    vision: str = "resnet"  # "resnet" or "vit"
    resnet_layers: tuple = (1, 1, 1, 1)
    resnet_width: int = 16
    patch_size: int = 8  # ViT only: 8x8-pixel patches, the transformer's 8x8 positions
    vision_width: int = 128  # ViT only
    vision_layers: int = 3  # ViT only
    vision_head_width: int = 32  # ViT only
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    context_length: int = 24  # the world's longest caption is 20 tokens, 22 with start and end; open_clip: 77
    vocab_size: int = 49408  # open_clip's BPE vocabulary
    embed_dim: int = 128


class MiniClip(nn.Module):
    def __init__(self, config: ClipConfig | None = None):
        super().__init__()
        self.config = config or ClipConfig()
        cfg = self.config
        if cfg.vision == "resnet":  # a tuple of layers tells open_clip to build a ModifiedResNet
            cfg.resnet_layers = tuple(cfg.resnet_layers)
            vision_cfg = open_clip.CLIPVisionCfg(layers=cfg.resnet_layers, width=cfg.resnet_width,
                                                 image_size=cfg.image_size)
        elif cfg.vision == "vit":
            vision_cfg = open_clip.CLIPVisionCfg(layers=cfg.vision_layers, width=cfg.vision_width,
                                                 head_width=cfg.vision_head_width, patch_size=cfg.patch_size,
                                                 image_size=cfg.image_size)
        else:
            raise ValueError(f"unknown vision tower {cfg.vision!r}; use 'resnet' or 'vit'")
        self.model = open_clip.CLIP(
            embed_dim=cfg.embed_dim,
            vision_cfg=vision_cfg,
            text_cfg=open_clip.CLIPTextCfg(context_length=cfg.context_length, vocab_size=cfg.vocab_size,
                                           width=cfg.text_width, heads=cfg.text_heads, layers=cfg.text_layers))
        self.tokenizer = SimpleTokenizer(context_length=cfg.context_length)
        self.image_size = cfg.image_size
        self.register_buffer("mean", torch.full((3,), 0.5), persistent=False)
        self.register_buffer("std", torch.full((3,), 0.5), persistent=False)

    @classmethod
    def from_open_clip(cls, name: str, pretrained: str | None = None) -> "MiniClip":
        """Wrap any open_clip architecture (`open_clip.list_models()`), with weights from a local file."""
        if name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip architecture {name!r}; see open_clip.list_models()")
        self = nn.Module.__new__(cls)
        nn.Module.__init__(self)
        self.config = None
        self.model = open_clip.create_model(name, pretrained=pretrained)
        self.tokenizer = open_clip.get_tokenizer(name)
        pre = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        size = pre.get("size", self.model.visual.image_size)
        self.image_size = size[0] if isinstance(size, (tuple, list)) else size
        self.register_buffer("mean", torch.tensor(pre.get("mean", open_clip.OPENAI_DATASET_MEAN)), persistent=False)
        self.register_buffer("std", torch.tensor(pre.get("std", open_clip.OPENAI_DATASET_STD)), persistent=False)
        return self.eval()

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    # --- the two towers -----------------------------------------------------------------------
    def token_ids(self, prompts: list[str]) -> torch.Tensor:
        """The tokenizer's ids (B, context_length), padded with 0. A prompt longer than the context is
        cut there (as CLIP does); the first time that happens, a warning says so and what is dropped."""
        context = getattr(self.tokenizer, "context_length", None)
        if context and hasattr(self.tokenizer, "encode") and not getattr(self, "_warned_cut", False):
            for prompt in prompts:
                words = self.tokenizer.encode(prompt)
                if len(words) > context - 2:  # start and end tokens take two places
                    kept = self.tokenizer.decode(words[:context - 2]).strip()
                    warnings.warn(f"the prompt {prompt!r} is {len(words)} tokens long; the text encoder reads "
                                  f"only {context - 2}, so it sees {kept!r} (said once)", stacklevel=3)
                    self._warned_cut = True
                    break
        return self.tokenizer(prompts)

    def tokenize(self, prompts) -> torch.Tensor:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ValueError("prompts must be non-empty strings")
        return self.token_ids(prompts).to(self.device)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        images = images.to(self.device).float()
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return (images - self.mean[:, None, None]) / self.std[:, None, None]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings, with gradients (for training)."""
        return F.normalize(self.model.encode_image(self._prepare(images)).float(), dim=-1)

    def encode_texts(self, prompts) -> torch.Tensor:
        """Unit-length text embeddings, with gradients (for training)."""
        return F.normalize(self.model.encode_text(self.tokenize(prompts)).float(), dim=-1)

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        images = images[None] if images.ndim == 3 else images
        return torch.cat([self.encode_images(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])

    @torch.no_grad()
    def text_embeddings(self, prompts, batch_size: int = 256) -> torch.Tensor:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return torch.cat([self.encode_texts(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)])

    # --- StyleDrop's scores ---------------------------------------------------------------------
    def text_score(self, images: torch.Tensor, prompts) -> torch.Tensor:
        """Cosine between each image and its prompt (one prompt for all, or one per image)."""
        img = self.image_embeddings(images)
        txt = self.text_embeddings(prompts)
        if len(txt) not in (1, len(img)):
            raise ValueError(f"got {len(txt)} prompts for {len(img)} images; give one, or one per image")
        return (img * txt).sum(-1).cpu()

    def style_score(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Cosine between each image and the style reference image (3, H, W)."""
        ref = self.image_embeddings(reference)
        if len(ref) != 1:
            raise ValueError(f"expected one reference image, got {len(ref)}")
        return (self.image_embeddings(images) @ ref[0]).cpu()

    @torch.no_grad()
    def zero_shot(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """Probabilities over `prompts` for each image (softmax of the scaled cosines)."""
        return self.zero_shot_embeddings(self.image_embeddings(images), prompts)

    @torch.no_grad()
    def zero_shot_embeddings(self, embeddings: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """`zero_shot` from image embeddings (B, D) already made (or edited: InstantStyle's subtraction)."""
        logits = embeddings.to(self.device) @ self.text_embeddings(prompts).T
        return (logits * self.model.logit_scale.exp().clamp(max=100)).softmax(-1).cpu()

    def save(self, path, info=None, dtype=None):
        if self.config is None:
            raise ValueError("only a mini CLIP built from ClipConfig can be saved in our format")
        return save_model(self, path, KIND, info, dtype)

    @staticmethod
    def load(path, device="cpu") -> "MiniClip":
        return load_model(MiniClip, ClipConfig, path, KIND, device)


# ----------------------------------------------------------------------------------------------
# Zero-shot prompts and training captions
# ----------------------------------------------------------------------------------------------
def content_prompt(content: str) -> str:
    return world.with_articles(f"a {content}")  # "a star", "an arrow"


def style_prompt(style: str) -> str:
    return f"a picture in {world.STYLES[style]} style"


def colour_prompt(colour: str) -> str:
    return f"something {colour}"


@torch.no_grad()
def read_attributes(clip: "MiniClip", images: torch.Tensor) -> list[dict[str, tuple[str, float]]]:
    """What each image (B, 3, H, W) shows, by zero-shot over the world's contents, colours and named
    styles: [{"content": (label, probability), "colour": ..., "style": ...}] per image."""
    values = {"content": list(world.CONTENTS), "colour": list(world.COLOURS), "style": list(world.STYLES)}
    prompt = {"content": content_prompt, "colour": colour_prompt, "style": style_prompt}
    embeddings = clip.image_embeddings(images)
    best = {k: clip.zero_shot_embeddings(embeddings, [prompt[k](v) for v in names]).max(-1)
            for k, names in values.items()}
    return [{k: (values[k][int(best[k].indices[i])], float(best[k].values[i])) for k in values}
            for i in range(len(images))]


def attribute_prompt(primitive: str, value: str) -> str:
    """A prompt for one style primitive's value: "a picture on a dark background", "a picture with no
    outline". Captions leave the plain values unsaid; CLIP is taught words for them too."""
    return f"a picture {world.PHRASES[primitive][value] or UNSAID[primitive][value]}"


UNSAID = {"outline": {"none": "with no outline"}, "effect": {"none": "with clean edges"},
          "palette": {"as is": "in plain colours"}}


def training_caption(content: str, colour: str, look: Look, caption: str, rng: np.random.Generator) -> str:
    """Half the time the image's own caption (its style said fully, partly or not at all), else a
    partial description: the content, the colour, content and colour, the named style, or one primitive.

    Real image-text data describes images partially; training on partial captions too is what lets
    CLIP classify content alone ("a star"), style alone ("a picture in watercolor painting style") or
    one attribute alone ("a picture with a glowing outline").
    """
    if rng.random() < 0.5:
        return caption
    name = world.look_name(look)
    primitive = list(PRIMITIVES)[rng.integers(len(PRIMITIVES))]
    partial = [content_prompt(content), colour_prompt(colour), world.with_articles(f"a {colour} {content}"),
               style_prompt(name) if name else content_prompt(content), attribute_prompt(primitive, getattr(look, primitive))]
    # Content alone is asked for most: 40 contents are harder to tell apart than 8 colours or a primitive's values.
    return partial[int(rng.choice(len(partial), p=[0.3, 0.1, 0.1, 0.15, 0.35]))]


def clip_loss_fn():
    loss = open_clip.ClipLoss()

    def clip_loss(model: MiniClip, batch: dict):
        g = np.random.default_rng(int(batch["content_id"].sum()) * 7919 + len(batch["text"]))
        looks = [Look(*(values[i] for values, i in zip(PRIMITIVES.values(), ids)))
                 for ids in zip(*(batch[f"{name}_id"].tolist() for name in PRIMITIVES))]
        texts = [training_caption(world.CONTENTS[c], list(world.COLOURS)[k], look, caption, g)
                 for c, k, look, caption in zip(batch["content_id"].tolist(), batch["colour_id"].tolist(), looks,
                                                batch["text"])]
        img = model.encode_images(batch["image"])
        txt = model.encode_texts(texts)
        scale = model.model.logit_scale.exp().clamp(max=100)
        value = loss(img, txt, scale)
        acc = float(((img @ txt.T).argmax(-1) == torch.arange(len(img), device=img.device)).float().mean())
        return value, {"batch_acc": acc, "scale": float(scale.detach())}

    return clip_loss
