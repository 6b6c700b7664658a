"""Where the package computes, and in what precision: one rule for every command and notebook.

bf16 autocast makes matmuls cheaper only where the hardware does bf16 natively: CUDA GPUs, and
CPUs with AVX-512 BF16 or AMX. Anywhere else, oneDNN emulates bf16, and a tuning step of the base
transformer takes 2.16 s instead of 0.067 s in fp32 (32x slower: benchmarks/results/precision_speed_cpu-no-bf16.json;
`python benchmarks/precision_speed.py` measures it on your machine). So `precision="auto"`, the default everywhere, means:

    CUDA device with bf16          -> bf16
    CPU with AVX-512 BF16 or AMX   -> bf16
    anything else                  -> fp32

`ONEDNN_MAX_CPU_ISA` (oneDNN's own switch) is respected: capping oneDNN below its bf16 instruction
sets makes bf16 emulated again, so `auto` picks fp32. Setting `ONEDNN_MAX_CPU_ISA=AVX2` (with
`ATEN_CPU_CAPABILITY=avx2`) on a CPU with bf16 reproduces a typical laptop's speeds.

Chapter 01: tutorials/01_image_tokenizer.ipynb.
"""
from __future__ import annotations

import contextlib
import os
import platform
import warnings
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(name: str = "cpu") -> torch.device:
    """'cpu', 'cuda' (or 'cuda:N') or 'auto' (cuda when there is one). A missing GPU is an error."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use 'cpu', 'cuda' or 'auto'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def _cpu_flags() -> set[str]:
    """The CPU's feature flags, from torch when it can tell (torch >= 2.8), else from /proc/cpuinfo."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        return {name for name, value in get().items() if value is True}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which bf16 is still native
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL",
              "DEFAULT")


def cpu_bf16_support() -> dict:
    """What this CPU does in bf16: {"avx512_bf16": bool, "amx_bf16": bool, "arm_bf16": bool,
    "onednn_cap": the ONEDNN_MAX_CPU_ISA setting or None, "native": bool}."""
    flags = _cpu_flags()
    support = {"avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
               "arm_bf16": platform.machine().lower() in ("arm64", "aarch64") and ("bf16" in flags or "sve_bf16" in flags)}
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    support["onednn_cap"] = cap
    native = support["avx512_bf16"] or support["amx_bf16"] or support["arm_bf16"]
    if cap and cap.strip().upper() not in _BF16_ISAS:
        native = False  # oneDNN is told not to use its bf16 instructions: bf16 is emulated
    support["native"] = native
    return support


def cpu_has_native_bf16() -> bool:
    return cpu_bf16_support()["native"]


def resolve_precision(precision: str, device) -> str:
    """'auto' | 'bf16' | 'fp32' -> the precision that will run: 'bf16' or 'fp32' (see the module's rule).
    Asking for bf16 on a CPU that emulates it is allowed, with a warning: it is ~30x slower."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use 'auto', 'bf16' or 'fp32'")
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        native = cpu_has_native_bf16()
    else:
        native = False
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        warnings.warn(f"bf16 was asked for on {device.type}, which has no native bf16: it is emulated and "
                      "about 30x slower than fp32 here; use --precision auto (or fp32)", stacklevel=2)
    return precision


def autocast(device, precision: str = "auto"):
    """The forward pass's mixed-precision context: bf16 autocast where `resolve_precision` says so."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_name() -> str:
    """The CPU's model name, e.g. 'AMD EPYC' (best effort)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device, precision: str = "auto") -> str:
    """One line for logs: where it runs and in what precision, e.g. 'cpu (AMD EPYC, 2 threads), fp32
    (auto: no native bf16)'."""
    device = torch.device(device)
    chosen = resolve_precision(precision, device)
    if device.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        where = f"cpu ({cpu_name()}, {torch.get_num_threads()} threads)"
    if precision == "auto":
        why = "native bf16" if chosen == "bf16" else "no native bf16"
        return f"{where}, {chosen} (auto: {why})"
    return f"{where}, {chosen}"
