"""What every training command shares: devices, a bank of pre-rendered images, and a resumable loop.

The loop is deliberately plain (nanoGPT-style): draw a batch, compute a loss, step, log. Batches are
a pure function of (seed, step), so a run resumed from its last saved state sees exactly the batches
it would have seen without the interruption.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import world
from .checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from .datasets import PRIMITIVE_KEYS, LookWorld
from .devices import autocast, describe, pick_device, resolve_precision
from .files import check_output, checkpoint_file, save_or_rescue
from .styles import all_looks
from .tokenizer import reconstruct


# ----------------------------------------------------------------------------------------------
# A bank of pre-rendered images: render once (in parallel), sample batches from memory
# ----------------------------------------------------------------------------------------------
@dataclass
class ImageBank:
    """N rendered images as uint8 (N, 3, H, W) plus their captions and label ids (the look's primitives
    in `primitive_ids`, one (N,) tensor per primitive; empty for data sets that do not know them)."""
    images: torch.Tensor
    texts: list[str]
    content_ids: torch.Tensor
    colour_ids: torch.Tensor
    style_ids: torch.Tensor
    primitive_ids: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @staticmethod
    def render(dataset, workers: int | None = None, desc: str = "rendering") -> "ImageBank":
        workers = min(os.cpu_count() or 1, 16) if workers is None else workers
        loader = DataLoader(dataset, batch_size=256, num_workers=workers, shuffle=False)
        images, texts = [], []
        ids = {key: [] for key in ("content_id", "colour_id", "style_id", *PRIMITIVE_KEYS.values())}
        for batch in tqdm(loader, desc=f"{desc} {len(dataset)} images", leave=False):
            images.append((batch["image"] * 255 + 0.5).to(torch.uint8))
            texts.extend(batch["text"])
            for key in ids:
                ids[key].append(batch[key])
        ids = {key: torch.cat(parts) for key, parts in ids.items()}
        return ImageBank(torch.cat(images), texts, ids["content_id"], ids["colour_id"], ids["style_id"],
                         {name: ids[key] for name, key in PRIMITIVE_KEYS.items()})

    @torch.no_grad()
    def with_reconstructions(self, tokenizer, batch_size: int = 500) -> "ImageBank":
        """This bank twice: the renders, then their tokenizer reconstructions with the same labels (the
        kind of image a generator makes, which the judges must read as well as a render)."""
        decoded, _ = reconstruct(tokenizer, self.images.float() / 255.0, batch_size)
        twice = lambda ids: torch.cat([ids, ids])  # noqa: E731
        return ImageBank(torch.cat([self.images, (decoded * 255 + 0.5).to(torch.uint8)]), self.texts * 2,
                         twice(self.content_ids), twice(self.colour_ids), twice(self.style_ids),
                         {name: twice(ids) for name, ids in self.primitive_ids.items()})

    def batch(self, index: torch.Tensor, device="cpu") -> dict:
        return {"image": self.images[index].to(device).float() / 255.0,
                "text": [self.texts[i] for i in index.tolist()], **_label_ids(self, index, device)}


@dataclass
class TokenBank:
    """The same images as token grids (N, h*w), for training the generator: encode once, reuse."""
    tokens: torch.Tensor
    texts: list[str]
    content_ids: torch.Tensor
    colour_ids: torch.Tensor
    style_ids: torch.Tensor
    primitive_ids: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @staticmethod
    @torch.no_grad()
    def encode(bank: ImageBank, tokenizer, batch_size: int = 500) -> "TokenBank":
        device = tokenizer.quantizer.codebook.device
        tokens = [tokenizer.encode(bank.images[i:i + batch_size].to(device).float() / 255.0).flatten(1).cpu()
                  for i in tqdm(range(0, len(bank), batch_size), desc="tokenizing", leave=False)]
        return TokenBank(torch.cat(tokens).short(), bank.texts, bank.content_ids, bank.colour_ids, bank.style_ids,
                         bank.primitive_ids)

    def batch(self, index: torch.Tensor, device="cpu") -> dict:
        return {"tokens": self.tokens[index].to(device).long(), "text": [self.texts[i] for i in index.tolist()],
                **_label_ids(self, index)}


def _label_ids(bank: ImageBank | TokenBank, index: torch.Tensor, device="cpu") -> dict:
    """A batch's label ids, as a data set's items name them ("content_id", ..., "background_id", ...)."""
    labels = {"content_id": bank.content_ids[index].to(device), "colour_id": bank.colour_ids[index].to(device),
              "style_id": bank.style_ids[index].to(device)}
    labels.update({PRIMITIVE_KEYS[name]: ids[index].to(device) for name, ids in bank.primitive_ids.items()})
    return labels


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The indices of step `step`'s batch: a pure function of (seed, step), so resuming is exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n, (batch_size,), generator=g)


# ----------------------------------------------------------------------------------------------
# Resumable training state
# ----------------------------------------------------------------------------------------------
def _flatten_optimizer(optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars["state"].setdefault(str(pid), {})[key] = value
    return tensors, scalars


def _unflatten_optimizer(tensors: dict, scalars: dict) -> dict:
    state: dict = {int(pid): dict(v) for pid, v in scalars["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_train_state(path, model, optimizer, step: int, history: list, config: dict) -> None:
    optim_tensors, optim_scalars = _flatten_optimizer(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | optim_tensors
    save_checkpoint(path, tensors, "train_state", config,
                    {"step": step, "optimizer": optim_scalars, "history": history})


def load_train_state(path, model, optimizer, config: dict) -> tuple[int, list]:
    tensors, saved_config, info = read_checkpoint(path, "train_state")
    if saved_config != config:
        changed = sorted(k for k in set(config) | set(saved_config) if config.get(k) != saved_config.get(k))
        raise CheckpointError(f"{path}: was saved with other settings ({', '.join(changed)}); "
                              "resume with the same settings or start a new run folder")
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, info["optimizer"]))
    return info["step"], info["history"]


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    save_every: int = 1000
    log_every: int = 50
    precision: str = "auto"  # "auto" | "bf16" | "fp32": see devices.py for the rule
    attention: str = "auto"  # see `attention_kernel`
    extra: dict = field(default_factory=dict)  # model-specific settings, checked on resume


def attention_kernel(choice: str):
    """The context in which training runs attention: "auto" lets PyTorch pick its SDPA kernel; "math"
    forces plain batched matmuls + softmax. On the CPU the flash kernel is slow for our 64-position
    sequences — its backward took a third of a base-model step — and "math" trains about 1.3x faster
    (python benchmarks/transformer_speed.py measures both)."""
    if choice == "auto":
        return contextlib.nullcontext()
    if choice == "math":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel([SDPBackend.MATH])
    raise ValueError(f"attention must be 'auto' or 'math', got {choice!r}")


def warmup_cosine(step: int, settings: TrainSettings) -> float:
    """Learning-rate factor: linear warmup, then cosine decay to 10 % (as in most small-model recipes)."""
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `fit`: the loop stopped between two steps and, with a run folder, saved its state."""

    def __init__(self, step: int, total: int, state_path=None, desc: str = "training"):
        self.step, self.total, self.state_path = step, total, state_path
        saved = f"; state saved in {state_path}: continue with --resume" if state_path else "; nothing was saved"
        super().__init__(f"{desc} interrupted after step {step} of {total}{saved}")


@contextlib.contextmanager
def stop_requests():
    """While training, the first Ctrl-C (SIGINT) asks the loop to stop after the step it is in, so the
    saved state is a whole step; a second Ctrl-C stops at once. Yields a dict whose "stop" turns True."""
    request = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield request  # signals reach the main thread only; elsewhere Ctrl-C behaves as usual
        return

    def on_interrupt(signum, frame):
        if request["stop"]:
            raise KeyboardInterrupt
        request["stop"] = True

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(model, loss_fn, bank: ImageBank, settings: TrainSettings, device: torch.device,
        run_dir=None, resume: bool = False, desc: str = "training", stop_at: int | None = None) -> list[dict]:
    """Train `model` on batches of `bank`; `loss_fn(model, batch) -> (loss, {metric: value})`.

    With `run_dir`, the state is saved every `save_every` steps and at the end; `resume=True`
    continues from it. `stop_at` ends the run early, as an interruption would (the schedule still
    spans `settings.steps`). Ctrl-C stops after the current step, saves the state (with `run_dir`) and
    raises `TrainingInterrupted`. Returns the logged history (one dict every `log_every` steps).
    """
    device = torch.device(device)
    precision = resolve_precision(settings.precision, device)  # once, not at every step
    torch.manual_seed(settings.seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay, betas=(0.9, 0.95))
    state_path = Path(run_dir) / "state.safetensors" if run_dir else None
    resume_config = {k: v for k, v in settings.__dict__.items() if k not in ("save_every", "log_every")}
    start, history = 0, []
    if resume:
        if state_path is None or not state_path.exists():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        start, history = load_train_state(state_path, model, optimizer, resume_config)
        print(f"resumed from {state_path} at step {start}")
    started = time.perf_counter()
    bar = tqdm(range(start, settings.steps), desc=desc, initial=start, total=settings.steps)
    running = {}
    with stop_requests() as request:
        for step in bar:
            torch.manual_seed(settings.seed * 1_000_003 + step)  # dropout, noise, restarts: a function of the step
            for group in optimizer.param_groups:  # the schedule, set by hand as nanoGPT does
                group["lr"] = settings.lr * warmup_cosine(step, settings)
            batch = bank.batch(batch_indices(len(bank), settings.batch_size, settings.seed, step), device)
            with attention_kernel(settings.attention):
                with autocast(device, precision):
                    loss, metrics = loss_fn(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
            for key, value in {"loss": loss.item(), **metrics}.items():
                running[key] = running.get(key, 0.0) + float(value)
            if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
                n = (step % settings.log_every) + 1
                entry = {"step": step + 1, **{k: v / n for k, v in running.items()}}
                history.append(entry)
                running = {}
                bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k != "step"})
            last = step + 1 == settings.steps or step + 1 == stop_at
            if state_path and ((step + 1) % settings.save_every == 0 or last or request["stop"]):
                save_train_state(state_path, model, optimizer, step + 1, history, resume_config)
            if last:
                break
            if request["stop"]:  # Ctrl-C: stopped between two steps, with a whole step's state on disk
                bar.close()
                raise TrainingInterrupted(step + 1, settings.steps, state_path, desc)
    model.eval()
    model.train_seconds = time.perf_counter() - started
    if run_dir:
        (Path(run_dir) / "history.json").write_text(json.dumps(history))
    return history


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ----------------------------------------------------------------------------------------------
# Recipes: the settings each bundled checkpoint was trained with (`styledrop-mini train NAME`)
# ----------------------------------------------------------------------------------------------
RECIPES = {
    # Sized to train on 2 CPU cores in tens of minutes (see data/checkpoints/README.md for the times).
    "tokenizer": dict(steps=5000, batch_size=64, lr=2e-3, warmup=100, weight_decay=0.0, bank=40000),
    "judges": dict(steps=3000, batch_size=128, lr=3e-3, warmup=100, weight_decay=1e-4, bank=40000),
    "clip": dict(steps=4000, batch_size=128, lr=1e-3, warmup=100, weight_decay=0.1, bank=40000),
    # The generator never sees the held-out looks: they are what StyleDrop must learn (TRAINING_WORLDS).
    # Precision follows devices.resolve_precision ("auto"): bf16 where it is native, fp32 elsewhere.
    "base": dict(steps=3000, batch_size=128, lr=1.4e-3, warmup=200, weight_decay=0.05, bank=30000, world="seen",
                 attention="math"),
}

# The base generator's sizes: one architecture, three presets (`train base --preset NAME`). Each sets
# the transformer's shape (TransformerConfig fields) and any recipe settings it changes. The token grid
# and codebook always come from the tokenizer; a 16x16 grid is read as 2x2 patches (64 positions).
BASE_PRESETS = {
    "tiny": dict(transformer=dict(width=64, layers=2, heads=2), steps=200, batch_size=32, bank=2000),  # tests
    "cpu": dict(transformer=dict(width=256, layers=4, heads=4), steps=6000, bank=60000),  # the bundled one
    "gpu": dict(transformer=dict(width=512, layers=8, heads=8), steps=12000, batch_size=256, bank=200000,
                lr=1e-3),
}


# What the models train on: renders of the style space (datasets.LookWorld), a quarter of them in a
# named style so that the names mean something. The measuring models (tokenizer, CLIP, judges) see the
# whole space, held-out looks included: they stand for models trained on broad data. The generator sees
# the training looks only (world.training_looks) and the seen named styles.
TRAINING_WORLDS = {"all": dict(looks="all", named="all"), "seen": dict(looks="training", named="seen")}
NAMED_SHARE = 0.25


def training_world(which: str, n: int, seed: int = 0, split: str = "train") -> LookWorld:
    """The LookWorld of TRAINING_WORLDS[which] ("all" or "seen"), `n` images."""
    if which not in TRAINING_WORLDS:
        raise ValueError(f"unknown training world {which!r}; choose one of {', '.join(TRAINING_WORLDS)}")
    spec = TRAINING_WORLDS[which]
    looks = all_looks() if spec["looks"] == "all" else world.training_looks()
    return LookWorld(n, split=split, looks=looks, named=spec["named"], named_share=NAMED_SHARE, seed=seed)


def build(name: str, preset: str = "cpu"):
    """The fresh model and its loss function for a recipe name (and, for "base", a BASE_PRESETS name)."""
    if name == "tokenizer":
        from .tokenizer import VQTokenizer, tokenizer_loss
        return VQTokenizer(), tokenizer_loss
    if name == "judges":
        from .judges import Judges, judges_loss
        return Judges(), judges_loss
    if name == "clip":
        from .clip import MiniClip, clip_loss_fn
        return MiniClip(), clip_loss_fn()
    if name == "base":
        from .clip import MiniClip
        from .settings import CHECKPOINT_DIR
        from .text_encoder import ClipTextEncoder
        from .transformer import MaskedTransformer, TransformerConfig, base_loss_fn
        from .tokenizer import VQTokenizer
        text_encoder = ClipTextEncoder(MiniClip.load(CHECKPOINT_DIR / "clip.safetensors"))
        tokens = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors").config
        pooled_width = text_encoder([""]).pooled.shape[-1]  # the prompt vector that modulates every block
        config = TransformerConfig(text_width=text_encoder.width, grid=tokens.grid, patch=max(1, tokens.grid // 8),
                                   codebook_size=tokens.codebook_size, pooled_width=pooled_width,
                                   **BASE_PRESETS[preset]["transformer"])
        return MaskedTransformer(config), base_loss_fn(text_encoder, config.cond_dropout)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")


# Which bundled checkpoints were trained with which: replacing one makes those listed stale.
TRAINED_WITH = {"base": ("tokenizer", "clip"), "judges": ("tokenizer",), "subject_judge": ("tokenizer",)}


def training_output(name: str, out=None, overwrite: bool = False, run_dir=None) -> Path:
    """Where `train NAME` writes: `out` when given; the bundled file only with `overwrite`; else
    RUN_DIR/NAME.safetensors, beside the run's state, so the bundled checkpoints never change unasked."""
    from .settings import CHECKPOINT_DIR

    if out is not None:
        return checkpoint_file(out)
    if overwrite:
        return CHECKPOINT_DIR / f"{name}.safetensors"
    return Path(run_dir or Path("runs") / name) / f"{name}.safetensors"


def invalidated_by(out) -> list[str]:
    """What replacing the checkpoint file `out` makes stale, among the checkpoints beside it."""
    from .settings import CHECKPOINT_DIR

    out = Path(out)
    if not out.exists():
        return []
    name, stale = out.stem, []
    for dependent, parts in TRAINED_WITH.items():
        if name in parts and (out.parent / f"{dependent}.safetensors").exists():
            stale.append(f"{out.parent / dependent}.safetensors (trained with this {name}: retrain it)")
    if name == "base":
        stale.append("every adapter tuned on it (style-tune, dreambooth, feedback train refuse to mix them: tune again)")
    if out.resolve().parent == CHECKPOINT_DIR.resolve():
        stale.append("the notebooks' committed outputs and benchmarks/results/, made with the bundled set")
    return stale


def train(name: str, out=None, steps=None, batch_size=None, lr=None, bank_size=None, seed: int = 0,
          device: str = "cpu", run_dir=None, resume: bool = False, workers=None, command: str = "",
          save_dtype=None, precision=None, attention=None, overwrite: bool = False, preset: str | None = None):
    """Train a recipe's model on the mini world (the measuring models on all of it, the base generator
    on its training looks: TRAINING_WORLDS) and save it to `out` (default: see `training_output`).
    `preset` (base only) picks a size from BASE_PRESETS; "cpu" by default."""
    recipe = dict(RECIPES[name]) if name in RECIPES else None
    if recipe is None:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")
    if preset is not None and name != "base":
        raise ValueError(f"--preset sizes the base generator only, not {name!r}")
    if name == "base":
        preset = preset or "cpu"
        if preset not in BASE_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(BASE_PRESETS)}")
        recipe.update({k: v for k, v in BASE_PRESETS[preset].items() if k != "transformer"})
    for key, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr), ("bank", bank_size)):
        if value is not None:
            if not 0 < value < math.inf:
                raise ValueError(f"{key} must be positive, got {value}")
            recipe[key] = value
    dev = pick_device(device)
    out = check_output(training_output(name, out, overwrite, run_dir), "checkpoint")
    for stale in invalidated_by(out):
        print(f"note: writing {out} will make stale: {stale}")
    print(f"training {name} on {describe(dev, precision or recipe.get('precision', 'auto'))}")
    seed_everything(seed)
    started = time.perf_counter()
    which = recipe.get("world", "all")
    bank = ImageBank.render(training_world(which, recipe["bank"], seed), workers)
    render_seconds = time.perf_counter() - started
    model, loss_fn = build(name, preset or "cpu")
    if name in ("base", "judges"):
        from .settings import CHECKPOINT_DIR
        from .tokenizer import VQTokenizer
        tokenizer = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors", dev)
        # The generator learns the tokenizer's tokens; the judges read renders and their reconstructions.
        bank = TokenBank.encode(bank, tokenizer) if name == "base" else bank.with_reconstructions(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n_params / 1e6:.2f} M parameters, {len(bank)} training images "
          f"(rendered in {render_seconds:.0f} s), {recipe['steps']} steps of {recipe['batch_size']} on {dev}")
    settings = TrainSettings(steps=recipe["steps"], batch_size=recipe["batch_size"], lr=recipe["lr"], seed=seed,
                             warmup=min(recipe["warmup"], recipe["steps"] // 5 + 1),
                             weight_decay=recipe["weight_decay"], save_every=max(100, recipe["steps"] // 10),
                             precision=precision or recipe.get("precision", "auto"),
                             attention=attention or recipe.get("attention", "auto"),
                             extra={"model": name, "bank": recipe["bank"], "world": which, "preset": preset})
    history = fit(model, loss_fn, bank, settings, dev, run_dir=run_dir, resume=resume, desc=f"train {name}")
    info = {"command": command, "device": str(dev), "device_name": torch.cuda.get_device_name(dev)
            if dev.type == "cuda" else "cpu", "torch_threads": torch.get_num_threads(),
            "wall_seconds": round(time.perf_counter() - started, 1), "render_seconds": round(render_seconds, 1),
            "train_seconds": round(model.train_seconds, 1), "steps": settings.steps, "batch_size": settings.batch_size,
            "lr": settings.lr, "precision": resolve_precision(settings.precision, dev), "attention": settings.attention,
            "seed": seed, "preset": preset,
            "images": len(bank), "parameters": n_params,
            "final": history[-1] if history else {}}
    if name in TRAINED_WITH:  # which bundled checkpoints its tokens, features or reconstructions came from
        from .checkpoints import fingerprint
        from .settings import CHECKPOINT_DIR
        info.update({f"{part}_fingerprint": fingerprint(CHECKPOINT_DIR / f"{part}.safetensors")
                     for part in TRAINED_WITH[name]})
    out = save_or_rescue(lambda path: model.to("cpu").save(path, info=info, dtype=save_dtype), out, "trained model")
    print(f"wrote {out} ({Path(out).stat().st_size / 2**20:.1f} MB) after {info['wall_seconds']:.0f} s")
    return model, history
