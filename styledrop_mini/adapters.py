"""Adapters: StyleDrop's parameter-efficient tuning of the frozen base transformer.

StyleDrop adds a Houlsby-style bottleneck in every transformer layer, two per layer (after the
cross-attention block and after the MLP block), and trains only those:

    h  ->  h + W_up · GELU(W_down · h)          W_up = 0 at the start, W_down ~ trunc normal (0.02)

Because W_up starts at zero, the adapted model Ĝ starts as exactly the base model G. The adapters
go into the blocks' named places (`after_cross`, `after_mlp`), so transformer.py never changes.
LoRA on the attention projections is the alternative (`kind="lora"`), and full fine-tuning of every
weight (`kind="full"`) the costly baseline, both for comparison.

Adapter guidance (paper Eq. 4) needs Ĝ and G on the same tokens. Every adapter takes a per-example
*gate* (1 = adapted, 0 = base), so Ĝ(v, t), G(v, t) and G(v, n) run as one batch of three.

Chapter 04: tutorials/04_adapters.ipynb.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import prompts
from .checkpoints import (CheckpointError, check_tensors, config_from_dict, find_checkpoint, fingerprint,
                          read_checkpoint, save_checkpoint)
from .datasets import StyleReference, TokenBank
from .prompts import TEMPLATE
from .training import TrainSettings, fit
from .transformer import prompt_loss_fn

KIND = "adapter"

# Defaults, from sweeps on the three held-out references (benchmarks/style_sweep.py; results in
# benchmarks/results/): with the bundled base model, lr 1e-3 for 300 steps learns more style than 3e-4
# at the same content; lambda_B keeps content, lambda_A strengthens style. Content still suffers (issue 5).
@dataclass(frozen=True)
class TuningSettings:
    steps: int = 300
    batch_size: int = 8  # copies of the reference per step, each masked differently
    lr: float = 1e-3


TUNING = TuningSettings()


@dataclass
class AdapterConfig:
    kind: str = "bottleneck"  # "bottleneck" (StyleDrop), "lora", or "full" (every weight trains: a baseline)
    d_prj: int = 4  # bottleneck width (paper: 4 in round 1, 32 in round 2)
    shared: bool = False  # one W_down, W_up for all layers (per place), each layer keeps its own biases as offsets
    places: tuple = ("after_cross", "after_mlp")  # where bottlenecks go in each block
    lora_rank: int = 4
    lora_alpha: float = 4.0
    lora_targets: tuple = ("attn.qkv", "attn.out", "cross.q", "cross.kv", "cross.out")

    def check(self) -> "AdapterConfig":
        if self.kind not in ("bottleneck", "lora", "full"):
            raise ValueError(f"unknown adapter kind {self.kind!r}; use 'bottleneck', 'lora' or 'full'")
        if self.kind == "bottleneck" and not 1 <= self.d_prj <= 1024:
            raise ValueError(f"d_prj must lie in [1, 1024], got {self.d_prj}")
        if self.kind == "lora" and not 1 <= self.lora_rank <= 1024:
            raise ValueError(f"lora_rank must lie in [1, 1024], got {self.lora_rank}")
        self.places, self.lora_targets = tuple(self.places), tuple(self.lora_targets)
        return self


class _Gated(nn.Module):
    """Shared by both adapter kinds: the delta is multiplied by a per-example gate (None = on)."""
    gate: torch.Tensor | None = None

    def gated(self, delta: torch.Tensor) -> torch.Tensor:
        return delta if self.gate is None else delta * self.gate.view(-1, *([1] * (delta.ndim - 1)))


class Bottleneck(_Gated):
    def __init__(self, width: int, d_prj: int):
        super().__init__()
        self.down = nn.Linear(width, d_prj)
        self.up = nn.Linear(d_prj, width)
        nn.init.trunc_normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)  # zero: the adapted model starts as the base model exactly
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.gated(self.up(F.gelu(self.down(h))))


class LoRALinear(_Gated):
    """y = W x + (alpha / r) B A x, with B = 0 at the start and W frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_a = nn.Linear(base.in_features, rank, bias=False)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False)
        nn.init.trunc_normal_(self.lora_a.weight, std=0.02)
        nn.init.zeros_(self.lora_b.weight)
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + self.gated(self.scale * self.lora_b(self.lora_a(x)))


def attach(model, config: AdapterConfig) -> list[nn.Parameter]:
    """Freeze `model` and put adapters into it; returns the adapters' (trainable) parameters.
    (kind "full" attaches nothing and leaves every weight trainable.)"""
    config.check()
    if adapters_of(model) or model.adapter_config is not None:
        raise ValueError("this model already has adapters; load a fresh base model to attach new ones")
    model.requires_grad_(config.kind == "full")
    model.adapter_config = config
    if config.kind == "full":
        return list(model.parameters())
    width = model.config.width
    lead = {}  # place -> the first layer's bottleneck, whose matrices the others share when `shared`
    for block in model.blocks:
        if config.kind == "bottleneck":
            for place in config.places:
                if place not in block.ADAPTER_PLACES:
                    raise ValueError(f"unknown adapter place {place!r}; choose from {block.ADAPTER_PLACES}")
                adapter = Bottleneck(width, config.d_prj)
                if config.shared and place in lead:
                    adapter.down.weight, adapter.up.weight = lead[place].down.weight, lead[place].up.weight
                lead.setdefault(place, adapter)
                setattr(block, place, adapter)
        else:
            for target in config.lora_targets:
                parent_name, leaf = target.split(".")
                parent = getattr(block, parent_name)
                setattr(parent, leaf, LoRALinear(getattr(parent, leaf), config.lora_rank, config.lora_alpha))
    params = {id(p): p for m in adapters_of(model) for n, p in m.named_parameters() if not n.startswith("base.")}
    return list(params.values())  # a shared matrix once


def adapters_of(model) -> list[_Gated]:
    return [m for m in model.modules() if isinstance(m, _Gated)]


def adapter_state(model) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors (what a style file holds); a matrix shared across layers appears once,
    under the first layer's name (loading it there sets it for every layer)."""
    state, seen = {}, set()
    for k, v in model.state_dict().items():
        if any(part in k for part in ("after_cross.", "after_mlp.", "after_attn.", "lora_a", "lora_b")):
            if v.data_ptr() not in seen:
                seen.add(v.data_ptr())
                state[k] = v
    return state


def count(model) -> tuple[int, int]:
    """(adapter parameters, base parameters)."""
    adapter = sum(v.numel() for v in adapter_state(model).values())
    return adapter, sum(p.numel() for p in model.parameters()) - adapter


@contextlib.contextmanager
def gate(model, values: torch.Tensor | float | None):
    """Within the block, adapters are scaled per example by `values` (B,) — 1 adapted, 0 base."""
    modules = adapters_of(model)
    for m in modules:
        m.gate = None if values is None else torch.as_tensor(values, dtype=torch.float32,
                                                                device=next(model.parameters()).device)
    try:
        yield
    finally:
        for m in modules:
            m.gate = None


@dataclass
class AdapterInfo:
    """What an adapter file records beside its weights: the base it was tuned on, what its prompts must
    say, and how it was tuned (stored as the file's JSON info)."""
    base_fingerprint: str | None = None  # checkpoints.fingerprint of the base transformer file
    role: str = "style"  # "style" (StyleDrop, rounds 1 and 2) or "content" (a DreamBooth subject)
    caption: str = ""  # what it was tuned on: the reference's caption, or the subject's prompt
    descriptor: str = ""  # style: the words its prompts carry, e.g. "stained glass"
    template: str = TEMPLATE  # style: how a prompt gets the descriptor (prompts.styled)
    reference: str = ""  # style: the reference image file
    style: str = ""  # style: its name
    identifier: str = ""  # content: the rare word, e.g. "sks"
    class_noun: str = ""  # content: e.g. "star"
    tuning: dict = field(default_factory=dict)  # steps, lr, seed, train_seconds, final_loss, command, ...

    @staticmethod
    def from_dict(info: dict) -> "AdapterInfo":
        """From a file's JSON info; files written before this record kept the caption as
        "reference_caption" (style) or "prompt" (content), and their settings beside the rest."""
        fields = {f.name for f in dataclasses.fields(AdapterInfo)}
        record = {k: v for k, v in info.items() if k in fields and k != "tuning"}
        record.setdefault("caption", info.get("reference_caption") or info.get("prompt") or "")
        extra = {k: v for k, v in info.items() if k not in fields | {"reference_caption", "prompt"}}
        return AdapterInfo(**record, tuning={**extra, **info.get("tuning", {})})

    def prompt(self, content: str) -> str:
        """A style adapter's prompt for new content (its own template and descriptor)."""
        return prompts.styled(content, self.descriptor, self.template)


def save_adapter(model, path, info: AdapterInfo) -> None:
    """A small safetensors file: the adapters' tensors, their config, and `info` (base fingerprint,
    descriptor, template, settings)."""
    if model.adapter_config.kind == "full":
        raise ValueError("a fully fine-tuned transformer is a whole new model, not an adapter; "
                         "save it with model.save(path)")
    save_checkpoint(path, adapter_state(model), KIND, asdict(model.adapter_config), asdict(info))


def load_adapter(model, path, base_fingerprint: str | None = None):
    """Attach the adapters stored in `path` to a fresh base `model`; check it is the right base
    (`base_fingerprint`: checkpoints.fingerprint of the loaded base file) and that its weights are finite."""
    path = find_checkpoint(path)
    tensors, config, info = read_checkpoint(path, KIND)
    info = AdapterInfo.from_dict(info)
    expected = info.base_fingerprint
    if base_fingerprint and expected and expected != base_fingerprint:
        raise CheckpointError(f"{path}: this adapter was tuned on base model {expected}, "
                              f"not on the one loaded ({base_fingerprint}); use the base it was tuned on")
    if base_fingerprint and not expected:
        warnings.warn(f"{path} does not record which base model it was tuned on, so nothing checks that it fits "
                      f"the one loaded ({base_fingerprint}). If it was tuned on that base, record it once with "
                      f"styledrop_mini.adapters.record_base({str(path)!r}, BASE_FILE); if not, tune it again "
                      "(style-tune records the base)", stacklevel=2)
    attach(model, config_from_dict(AdapterConfig, config, path))
    check_tensors(adapter_state(model), tensors, path, "the adapters of this base model")
    model.load_state_dict(tensors, strict=False)
    model.adapter_info = info
    return model


def read_info(path) -> AdapterInfo:
    """Read an adapter file's info (descriptor, template, base fingerprint, ...) and check it whole —
    readable, an adapter, finite, a config we know — without a base model: what commands do before any slow work."""
    path = find_checkpoint(path)
    _, config, info = read_checkpoint(path, KIND)
    config_from_dict(AdapterConfig, config, path)
    return AdapterInfo.from_dict(info)


def record_base(path, base_file) -> str:
    """Write the fingerprint of `base_file` into an adapter file that lacks one (older files); returns it."""
    path = find_checkpoint(path)
    tensors, config, info = read_checkpoint(path, KIND)
    info["base_fingerprint"] = fingerprint(base_file)
    save_checkpoint(path, tensors, KIND, config, info)
    return info["base_fingerprint"]


def tune(pipe, images: torch.Tensor, prompts: list[str], config: AdapterConfig | None = None,
         steps: int = TUNING.steps, batch_size: int = TUNING.batch_size, lr: float = TUNING.lr,
         seed: int = 0, device=None, precision: str = "auto", loss_fn=None):
    """Train fresh adapters on (image, prompt) pairs — one reference image, or a feedback selection —
    with the base model frozen. Returns (adapted copy of the base model, training history), on
    `device` (default: the pipeline's, where its text encoder already runs).
    `loss_fn(model, batch)` replaces the masked-token loss (DreamBooth adds a prior term to it).
    `precision` "auto" is bf16 only where it is native (devices.py); Ctrl-C raises training.TrainingInterrupted."""

    images = images[None] if images.ndim == 3 else images
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images and {len(prompts)} prompts; give one prompt per image")
    if steps < 1 or batch_size < 1 or not 0 < lr < math.inf:
        raise ValueError(f"steps, batch size and learning rate must be positive, got {steps}, {batch_size}, {lr}")
    model = copy.deepcopy(pipe.transformer).cpu()
    torch.manual_seed(seed)  # the adapters' initial W_down: same seed, same adapter
    attach(model, config or AdapterConfig())
    tokens = pipe.tokenizer.encode(images.to(pipe.device)).flatten(1).cpu().short()
    zeros = torch.zeros(len(prompts), dtype=torch.long)
    bank = TokenBank(tokens=tokens, texts=list(prompts), content_ids=zeros, colour_ids=zeros, style_ids=zeros)
    settings = TrainSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup=min(20, steps // 5 + 1),
                             weight_decay=0.0, log_every=max(1, steps // 30), save_every=10**9, precision=precision)
    device = pipe.device if device is None else torch.device(device)
    history = fit(model, loss_fn or prompt_loss_fn(pipe.text_encoder), bank, settings, device,
                  desc="adapter tuning")
    return model.eval(), history


def tune_style(pipe, reference: StyleReference, config: AdapterConfig | None = None, steps: int = TUNING.steps,
               batch_size: int = TUNING.batch_size, lr: float = TUNING.lr, seed: int = 0, device=None,
               precision: str = "auto", say: Callable[[str], None] = print) -> tuple[nn.Module, AdapterInfo]:
    """StyleDrop round 1 from one reference (datasets.StyleReference.from_file): tune fresh adapters on
    its caption (the mini CLIP proposes the content when the reference has none, and `say` tells it)
    and return (adapted model, the info to save with it: base fingerprint, descriptor, template,
    caption, reference file, settings)."""
    if not reference.content:
        content, confidence = prompts.propose_content(pipe.clip, reference.image)
        say(f"no content given: the mini CLIP proposes {content!r} (confidence {confidence:.0%}); "
            "give the content to choose it yourself")
        reference = dataclasses.replace(reference, content=content)
    start = time.perf_counter()
    model, history = tune(pipe, reference.image, [reference.caption], config, steps=steps, batch_size=batch_size,
                          lr=lr, seed=seed, device=device, precision=precision)
    info = AdapterInfo(pipe.base_fingerprint, "style", reference.caption, reference.descriptor, reference.template,
                       reference.file_name, reference.style,
                       tuning={"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                               "train_seconds": round(time.perf_counter() - start, 1),
                               "final_loss": history[-1]["loss"] if history else None})
    return model, info
