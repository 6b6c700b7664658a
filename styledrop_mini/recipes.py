"""The recipes of the bundled models: what each trains on, its size and its settings, and the one
function behind `styledrop-mini train NAME` that renders its data, builds it, trains it with
training.fit and saves it (chapters 01-03 train small versions of each by hand).

Chapter 03: tutorials/03_masked_transformer.ipynb.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .checkpoints import fingerprint
from .clip import MiniClip, clip_loss_fn
from .datasets import ImageBank, TokenBank, training_world
from .devices import describe, pick_device, resolve_precision
from .files import check_output, checkpoint_file, save_or_rescue
from .instantstyle import EmbeddedTokenBank, attach, fresh_adapter, image_prompt_loss_fn
from .judges import Judges, judges_loss
from .settings import CHECKPOINT_DIR
from .text_encoder import ClipTextEncoder
from .tokenizer import VQTokenizer, tokenizer_loss
from .training import TrainSettings, fit, seed_everything
from .transformer import MaskedTransformer, TransformerConfig, base_loss_fn


@dataclass(frozen=True)
class Recipe:
    steps: int
    batch_size: int
    lr: float  # peak; warmup, then cosine decay to 10 % (training.warmup_cosine)
    warmup: int
    weight_decay: float
    bank: int  # training images, rendered once
    world: str = "all"  # datasets.TRAINING_WORLDS
    attention: str = "auto"  # training.attention_kernel
    precision: str = "auto"  # devices.resolve_precision: bf16 where it is native, fp32 elsewhere


RECIPES = {
    # Sized to train on 2 CPU cores in tens of minutes (see data/checkpoints/README.md for the times).
    "tokenizer": Recipe(steps=5000, batch_size=64, lr=2e-3, warmup=100, weight_decay=0.0, bank=40000),
    "judges": Recipe(steps=3000, batch_size=128, lr=3e-3, warmup=100, weight_decay=1e-4, bank=40000),
    "clip": Recipe(steps=4000, batch_size=128, lr=1e-3, warmup=100, weight_decay=0.1, bank=40000),
    # The generator never sees the held-out looks: they are what StyleDrop must learn (TRAINING_WORLDS).
    "base": Recipe(steps=3000, batch_size=128, lr=1.4e-3, warmup=200, weight_decay=0.05, bank=30000, world="seen",
                   attention="math"),
    # InstantStyle's image-prompt adapter (instantstyle.py): trained once with the bundled base frozen,
    # on the looks the base saw, so the held-out styles stay new to both.
    "image_prompt": Recipe(steps=1500, batch_size=64, lr=1e-3, warmup=100, weight_decay=0.0, bank=20000,
                           world="seen", attention="math"),
}


@dataclass(frozen=True)
class BasePreset:
    """A size of the base generator: the transformer's shape, and the recipe settings it changes. The
    token grid and codebook come from the tokenizer; a 16x16 grid is read as 2x2 patches (64 positions)."""
    width: int
    layers: int
    heads: int
    changes: dict = field(default_factory=dict)  # Recipe fields


BASE_PRESETS = {  # `train base --preset NAME`
    "tiny": BasePreset(64, 2, 2, dict(steps=200, batch_size=32, bank=2000)),  # tests
    "cpu": BasePreset(256, 4, 4, dict(steps=6000, bank=60000)),  # the bundled one
    "gpu": BasePreset(512, 8, 8, dict(steps=12000, batch_size=256, bank=200000, lr=1e-3)),
}


def recipe_for(name: str, preset: str | None = None, **changes) -> Recipe:
    """The recipe of model `name` (for "base", sized by `preset`, "cpu" by default) with `changes`
    (steps, batch_size, lr, bank; None keeps the recipe's)."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")
    if preset is not None and name != "base":
        raise ValueError(f"--preset sizes the base generator only, not {name!r}")
    recipe = RECIPES[name]
    if name == "base":
        if (preset or "cpu") not in BASE_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(BASE_PRESETS)}")
        recipe = replace(recipe, **BASE_PRESETS[preset or "cpu"].changes)
    changes = {key: value for key, value in changes.items() if value is not None}
    for key, value in changes.items():
        if not 0 < value < math.inf:
            raise ValueError(f"{key} must be positive, got {value}")
    return replace(recipe, **changes)


SAVE_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # None: as trained (fp32)


def build(name: str, preset: str = "cpu", text_words: bool = False):
    """The fresh model and its loss function for a recipe name (and, for "base", a BASE_PRESETS name;
    `text_words`: the generator reads each prompt word's own embedding too, text_encoder.ClipTextEncoder)."""
    if name == "tokenizer":
        return VQTokenizer(), tokenizer_loss
    if name == "judges":
        return Judges(), judges_loss
    if name == "clip":
        return MiniClip(), clip_loss_fn()
    if name == "base":
        text_encoder = ClipTextEncoder(MiniClip.load(CHECKPOINT_DIR / "clip.safetensors"), words=text_words)
        tokens = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors").config
        pooled_width = text_encoder([""]).pooled.shape[-1]  # the prompt vector that modulates every block
        config = TransformerConfig(text_width=text_encoder.width, grid=tokens.grid, patch=max(1, tokens.grid // 8),
                                   codebook_size=tokens.codebook_size, pooled_width=pooled_width,
                                   width=BASE_PRESETS[preset].width, layers=BASE_PRESETS[preset].layers,
                                   heads=BASE_PRESETS[preset].heads, text_words=text_words)
        return MaskedTransformer(config), base_loss_fn(text_encoder, config.cond_dropout)
    if name == "image_prompt":  # the bundled base, frozen, with a fresh adapter reading the bundled CLIP's images
        model = MaskedTransformer.load(CHECKPOINT_DIR / "base.safetensors")
        clip = MiniClip.load(CHECKPOINT_DIR / "clip.safetensors")
        attach(model, fresh_adapter(model, clip.config.embed_dim))
        return model, image_prompt_loss_fn(ClipTextEncoder(clip, words=model.config.text_words))
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(RECIPES)}")


def warm_start(model: MaskedTransformer, path) -> None:
    """Start `model` from a trained generator's weights (`train base --init-from FILE`): more training
    for a bundled base, one session at a time, or the same base taught to read the prompt's words too
    (its text_words may differ: the weights have the same shapes). Any other difference is refused."""
    start = MaskedTransformer.load(path)
    mine, theirs = asdict(model.config), asdict(start.config)
    differ = [f"{key} {theirs[key]} (the recipe's: {mine[key]})" for key in mine
              if key != "text_words" and mine[key] != theirs[key]]
    if differ:
        raise ValueError(f"{path} cannot start this run: its {', '.join(differ)}; pick the --preset it was "
                         "trained with")
    model.load_state_dict(start.state_dict())


# Which bundled checkpoints were trained with which: replacing one makes those listed stale.
TRAINED_WITH = {"base": ("tokenizer", "clip"), "judges": ("tokenizer",), "subject_judge": ("tokenizer",),
                "image_prompt": ("base", "clip")}


def training_output(name: str, out=None, overwrite: bool = False, run_dir=None) -> Path:
    """Where `train NAME` writes: `out` when given; the bundled file only with `overwrite`; else
    RUN_DIR/NAME.safetensors, beside the run's state, so the bundled checkpoints never change unasked."""
    if out is not None:
        return checkpoint_file(out)
    if overwrite:
        return CHECKPOINT_DIR / f"{name}.safetensors"
    return Path(run_dir or Path("runs") / name) / f"{name}.safetensors"


def invalidated_by(out) -> list[str]:
    """What replacing the checkpoint file `out` makes stale, among the checkpoints beside it."""
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
          save_dtype=None, precision=None, attention=None, overwrite: bool = False, preset: str | None = None,
          text_words: bool = False, init_from=None):
    """Train a recipe's model on the mini world (the measuring models on all of it, the base generator
    on its training looks: TRAINING_WORLDS) and save it to `out` (default: see `training_output`).
    `preset` (base only) picks a size from BASE_PRESETS; "cpu" by default. For the base only:
    `text_words` (read each prompt word's own embedding too) and `init_from` (start from that
    generator's weights, `warm_start`)."""
    if name != "base" and (text_words or init_from):
        raise ValueError(f"--text-words and --init-from are for the base generator, not {name!r}")
    recipe = recipe_for(name, preset, steps=steps, batch_size=batch_size, lr=lr, bank=bank_size)
    preset = (preset or "cpu") if name == "base" else None
    if init_from:  # before minutes of rendering: the file exists and fits this preset
        if not Path(init_from).is_file():
            raise FileNotFoundError(f"--init-from {init_from}: no such checkpoint")
        warm_start(build(name, preset, text_words)[0], init_from)
    if save_dtype is not None and save_dtype not in SAVE_DTYPES:
        raise ValueError(f"save_dtype must be one of {', '.join(SAVE_DTYPES)}, got {save_dtype!r}")
    dev = pick_device(device)
    if resume and not (run_dir and (Path(run_dir) / "state.safetensors").exists()):  # before minutes of rendering
        raise FileNotFoundError(f"nothing to resume: no {Path(run_dir or '.') / 'state.safetensors'} "
                                "(give the --run-dir of the interrupted run)")
    out = check_output(training_output(name, out, overwrite, run_dir), "checkpoint")
    for stale in invalidated_by(out):
        print(f"note: writing {out} will make stale: {stale}")
    print(f"training {name} on {describe(dev, precision or recipe.precision)}")
    seed_everything(seed)
    started = time.perf_counter()
    which = recipe.world
    tokenizer_file = CHECKPOINT_DIR / "tokenizer.safetensors"
    # A run folder keeps the generator's token bank: a resumed run (a new session), or another run given
    # the same folder's bank, skips making it again (load checks that it was made from the same source).
    kept = Path(run_dir) / "token_bank.safetensors" if run_dir and name == "base" else None
    if kept:
        source = {"world": which, "images": recipe.bank, "seed": seed, "tokenizer": fingerprint(tokenizer_file)}
    bank = TokenBank.load(kept, source) if kept else None
    made = bank is None
    if made:
        bank = ImageBank.render(training_world(which, recipe.bank, seed), workers)
    render_seconds = time.perf_counter() - started
    model, loss_fn = build(name, preset or "cpu", text_words)  # after rendering, whose loader draws a seed: as bundled
    if init_from:
        warm_start(model, init_from)
    if made and name in ("base", "judges", "image_prompt"):
        tokenizer = VQTokenizer.load(tokenizer_file, dev)
        # The generator learns the tokenizer's tokens; the judges read renders and their reconstructions;
        # the image-prompt adapter learns tokens from the renders' CLIP embeddings.
        if name == "image_prompt":
            bank = EmbeddedTokenBank.encode(bank, tokenizer, MiniClip.load(CHECKPOINT_DIR / "clip.safetensors", dev))
        else:
            bank = TokenBank.encode(bank, tokenizer) if name == "base" else bank.with_reconstructions(tokenizer)
    if made and kept:
        bank.save(kept, source)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{name}: {n_params / 1e6:.2f} M parameters, {len(bank)} training images "
          f"({'rendered' if made else 'kept from the run folder'}, {render_seconds:.0f} s), {recipe.steps} steps of {recipe.batch_size} on {dev}")
    settings = TrainSettings(steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
                             warmup=min(recipe.warmup, recipe.steps // 5 + 1), weight_decay=recipe.weight_decay,
                             save_every=min(500, max(100, recipe.steps // 10)),  # little CPU work lost to a kill
                             save_minutes=10,  # nor to a kill in a long CPU run (batch 512: ~6 s a step)
                             precision=precision or recipe.precision, attention=attention or recipe.attention,
                             extra={"model": name, "bank": recipe.bank, "world": which, "preset": preset,
                                    **({"text_words": True} if text_words else {})})  # resume must read prompts alike
    fit_started = time.perf_counter()
    history = fit(model, loss_fn, bank, settings, dev, run_dir=run_dir, resume=resume, desc=f"train {name}")
    train_seconds = time.perf_counter() - fit_started
    info = {"command": command, "device": str(dev), "device_name": torch.cuda.get_device_name(dev)
            if dev.type == "cuda" else "cpu", "torch_threads": torch.get_num_threads(),
            "wall_seconds": round(time.perf_counter() - started, 1), "render_seconds": round(render_seconds, 1),
            "train_seconds": round(train_seconds, 1), "steps": settings.steps, "batch_size": settings.batch_size,
            "lr": settings.lr, "precision": resolve_precision(settings.precision, dev), "attention": settings.attention,
            "seed": seed, "preset": preset, **({"init_from": fingerprint(init_from)} if init_from else {}),
            "images": len(bank), "parameters": n_params,
            "final": history[-1] if history else {}}
    if name in TRAINED_WITH:  # which bundled checkpoints its tokens, features or reconstructions came from
        info.update({f"{part}_fingerprint": fingerprint(CHECKPOINT_DIR / f"{part}.safetensors")
                     for part in TRAINED_WITH[name]})
    dtype = SAVE_DTYPES[save_dtype or "fp32"]
    saved = model.image_prompt if name == "image_prompt" else model  # the adapter alone, not the frozen base
    out = save_or_rescue(lambda path: saved.to("cpu").save(path, info=info, dtype=dtype), out, "trained model")
    print(f"wrote {out} ({Path(out).stat().st_size / 2**20:.1f} MB) after {info['wall_seconds']:.0f} s")
    return model, history
