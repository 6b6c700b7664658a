"""The training loop every model shares (chapter 01 builds it; every later chapter reuses it).

The loop is deliberately plain (nanoGPT-style): draw a batch, compute a loss, step, log. Batches are
a pure function of (seed, step), so a run resumed from its last saved state sees exactly the batches
it would have seen without the interruption. What each bundled model trains on, and with which
settings, is in recipes.py; the banks it draws batches from are in datasets.py.

Chapter 01: tutorials/01_image_tokenizer.ipynb.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from .devices import autocast, resolve_precision


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


def _changed_settings(now: dict, then: dict, prefix: str = "") -> list[str]:
    """The names of the settings that differ, nested ones dotted: ["lr", "extra.text_words"]."""
    names = []
    for key in sorted(set(now) | set(then)):
        a, b = now.get(key), then.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changed_settings(a, b, f"{prefix}{key}.")
        else:
            names.append(prefix + key)
    return names


def load_train_state(path, model, optimizer, config: dict) -> tuple[int, list]:
    tensors, saved_config, info = read_checkpoint(path, "train_state")
    if saved_config != config:
        changed = _changed_settings(config, saved_config)
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
    save_minutes: float | None = None  # also save when this much wall time passed since the last save
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
    """While training, the first Ctrl-C (SIGINT) or `kill` (SIGTERM, as when a session's machine shuts
    down) asks the loop to stop after the step it is in, so the saved state is a whole step; a second
    one stops at once. Yields a dict whose "stop" turns True."""
    request = {"stop": False}
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield request  # signals reach the main thread only; elsewhere Ctrl-C behaves as usual
        return

    def on_interrupt(signum, frame):
        if request["stop"]:
            raise KeyboardInterrupt
        request["stop"] = True

    for number in signals:
        signal.signal(number, on_interrupt)
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def fit(model, loss_fn, bank, settings: TrainSettings, device: torch.device,
        run_dir=None, resume: bool = False, desc: str = "training", stop_at: int | None = None) -> list[dict]:
    """Train `model` on batches of `bank` (a datasets.ImageBank or TokenBank);
    `loss_fn(model, batch) -> (loss, {metric: value})`.

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
    resume_config = {k: v for k, v in settings.__dict__.items() if k not in ("save_every", "save_minutes", "log_every")}
    start, history = 0, []
    if resume:
        if state_path is None or not state_path.exists():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        start, history = load_train_state(state_path, model, optimizer, resume_config)
        print(f"resumed from {state_path} at step {start}")
    bar = tqdm(range(start, settings.steps), desc=desc, initial=start, total=settings.steps)
    running, in_window, last_save = {}, 0, time.monotonic()  # in_window: steps summed in `running`
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
            in_window += 1
            if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
                # a resumed run's first window is short: average over the steps it holds, not log_every
                entry = {"step": step + 1, **{k: v / in_window for k, v in running.items()}}
                history.append(entry)
                running, in_window = {}, 0
                bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k != "step"})
            last = step + 1 == settings.steps or step + 1 == stop_at
            overdue = settings.save_minutes is not None and time.monotonic() - last_save > 60 * settings.save_minutes
            if state_path and ((step + 1) % settings.save_every == 0 or last or request["stop"] or overdue):
                save_train_state(state_path, model, optimizer, step + 1, history, resume_config)
                last_save = time.monotonic()
            if last:
                break
            if request["stop"]:  # Ctrl-C: stopped between two steps, with a whole step's state on disk
                bar.close()
                raise TrainingInterrupted(step + 1, settings.steps, state_path, desc)
    model.eval()
    if run_dir:
        (Path(run_dir) / "history.json").write_text(json.dumps(history))
    return history


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
