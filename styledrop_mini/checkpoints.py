"""Checkpoint files: safetensors tensors + a small JSON config in the file's own metadata.

One file per model, never pickle. The metadata says what the file is (`kind`), how to rebuild the
model (`config`), and where it came from (`info`: the command that made it, its wall time, ...).
Every way a file can be wrong — missing, corrupt, another kind of model, a config or tensor shapes
that do not match, weights that are NaN or infinite — is a `CheckpointError` that names the file and
the mismatch. A checkpoint may be named with or without its `.safetensors` suffix.

Chapter 01: tutorials/01_image_tokenizer.ipynb.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .files import CHECKPOINT_SUFFIX, checkpoint_file
from .settings import missing_data_hint

FORMAT = "styledrop_mini/1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


def save_checkpoint(path, tensors: dict[str, torch.Tensor], kind: str, config: dict, info: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write `tensors` (optionally cast to `dtype`) with kind, config and info as JSON metadata.

    Written to a temporary file and renamed, so a crash never leaves half a checkpoint behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, t in tensors.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.contiguous()
    metadata = {"format": FORMAT, "kind": kind, "config": json.dumps(config), "info": json.dumps(info or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def find_checkpoint(path) -> Path:
    """The checkpoint file that `path` names: as given, or with `.safetensors` added ("my_style").
    A folder, or nothing there, is a CheckpointError that says what to give instead."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        inside = sorted(p.name for p in path.glob(f"*{CHECKPOINT_SUFFIX}"))[:5]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; give the .safetensors file{hint}")
    with_suffix = checkpoint_file(path)
    if with_suffix.is_file():
        return with_suffix
    tried = f" (nor {with_suffix.name})" if with_suffix != path else ""
    raise CheckpointError(f"{path}: no such checkpoint file{tried}{missing_data_hint(path)}")


def read_checkpoint(path, kind: str) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read a checkpoint of the given kind: (tensors, config, info); its weights must be finite."""
    path = find_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        size = path.stat().st_size
        raise CheckpointError(f"{path}: not a readable safetensors file ({size:,} bytes; truncated or not a "
                              f"checkpoint: {exc})") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a styledrop_mini checkpoint (metadata format "
                              f"{metadata.get('format')!r}, expected {FORMAT!r})")
    if metadata.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {metadata.get('kind')!r} model, expected {kind!r}")
    try:
        config, info = json.loads(metadata["config"]), json.loads(metadata.get("info", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: its JSON config is missing or broken ({exc})") from exc
    check_finite(tensors, path)
    return tensors, config, info


def fingerprint(path) -> str:
    """The first 16 hex digits of a file's SHA-256: names exactly which checkpoint something was built on."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def config_from_dict(config_cls, config: dict, path):
    """Rebuild a dataclass config, naming unknown or missing fields."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise CheckpointError(f"{path}: config has fields {unknown} that {config_cls.__name__} does not know; "
                              "was it written by a newer styledrop_mini?")
    try:
        return config_cls(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: config does not fit {config_cls.__name__} ({exc})") from exc


def check_finite(tensors: dict[str, torch.Tensor], path) -> None:
    """Refuse weights that are NaN or infinite: they load silently and then draw flat grey images."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: tensor {name!r} holds {bad} NaN or infinite values of {tensor.numel()}; "
                                  "the training that wrote it diverged: retrain it (a lower learning rate helps)")


def check_tensors(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], path, owner: str) -> None:
    """Raise a CheckpointError naming any missing, unexpected or mis-shaped tensor."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match {owner}: "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                                  f"{owner} expects {tuple(expected[name].shape)}")


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path) -> torch.nn.Module:
    """Load tensors into `model`, naming any missing, unexpected or mis-shaped tensor."""
    own = model.state_dict()
    check_tensors(own, tensors, path, f"the {type(model).__name__} model")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    return model


def save_model(model: torch.nn.Module, path, kind: str, info: dict | None = None, dtype=None) -> Path:
    """Save a model that has a dataclass `config` attribute."""
    return save_checkpoint(path, model.state_dict(), kind, dataclasses.asdict(model.config), info, dtype)


def load_model(model_cls, config_cls, path, kind: str, device="cpu"):
    """Rebuild `model_cls(config)` from a checkpoint file and load its weights (in eval mode)."""
    tensors, config, info = read_checkpoint(path, kind)
    model = model_cls(config_from_dict(config_cls, config, path))
    load_state(model, tensors, path)
    model.info = info
    return model.to(device).eval()
