"""What precision `auto` picks on this machine, and what it costs: the demo's wall time and a tuning step in
fp32 and in bf16.

    python benchmarks/precision_speed.py                  # this CPU as it is
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/precision_speed.py
                                                          # the same CPU without its AVX-512 / bf16 (a laptop)

Prints, and writes as JSON to benchmarks/results/precision_speed_<cpu>.json:
  - the CPU, its bf16 support (AVX-512 BF16, AMX) and any oneDNN ISA cap, and the precision "auto" picks;
  - seconds per adapter-tuning step (the demo's settings: batch 8 of the bundled base model) in fp32 and bf16;
  - the wall time of `styledrop-mini demo`, run as a user runs it (a fresh process, imports included).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from styledrop_mini import adapters, devices, prompts
from styledrop_mini.datasets import style_references
from styledrop_mini.pipeline import MusePipeline


def seconds_per_step(pipe, ref, precision: str, steps: int) -> float:
    caption = prompts.styled(ref.content, ref.descriptor)
    adapters.tune(pipe, ref.image, [caption], steps=2, precision=precision)  # warm-up (kernels, allocator)
    start = time.perf_counter()
    adapters.tune(pipe, ref.image, [caption], steps=steps, precision=precision)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed tuning steps per precision (default: 20)")
    parser.add_argument("--bf16-steps", type=int, default=5,
                        help="timed steps for bf16, which can be ~30x slower where it is emulated (default: 5)")
    parser.add_argument("--no-demo", action="store_true", help="skip timing the demo")
    parser.add_argument("--out", help="JSON to write (default: benchmarks/results/precision_speed_<cpu>.json)")
    args = parser.parse_args()

    support = devices.cpu_bf16_support()
    auto = devices.resolve_precision("auto", "cpu")
    result = {"cpu": devices.cpu_name(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16_support": support,
              "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"), "auto_precision": auto}
    print(f"CPU: {result['cpu']}, {result['torch_threads']} threads, torch {torch.__version__} "
          f"(vector code: {result['cpu_capability']})")
    print(f"native bf16: {'yes' if support['native'] else 'no'} (AVX-512 BF16 {support['avx512_bf16']}, AMX "
          f"{support['amx_bf16']}, oneDNN cap {support['onednn_cap']}) -> precision 'auto' = {auto}")

    pipe = MusePipeline.load()
    ref = style_references()["stained glass"]
    result["tuning_seconds_per_step"] = {}
    for precision, steps in (("fp32", args.steps), ("bf16", args.bf16_steps)):
        with warnings.catch_warnings():  # bf16 where it is emulated warns; here that is the point
            warnings.simplefilter("ignore")
            seconds = seconds_per_step(pipe, ref, precision, steps)
        result["tuning_seconds_per_step"][precision] = round(seconds, 4)
        print(f"adapter tuning, batch 8, {precision}: {seconds:.3f} s/step ({steps} steps timed)")
    result["bf16_slowdown"] = round(result["tuning_seconds_per_step"]["bf16"] / result["tuning_seconds_per_step"]["fp32"], 2)

    if not args.no_demo:
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "styledrop_mini", "demo", "-o", str(Path(scratch) / "demo.png")],
                                  capture_output=True, text=True)
            result["demo_seconds"] = round(time.perf_counter() - start, 1)
        if done.returncode != 0:
            raise SystemExit(f"the demo failed:\n{done.stderr[-2000:]}")
        result["demo_output"] = [line for line in done.stdout.splitlines() if line.strip()]
        print(f"styledrop-mini demo (precision auto = {auto}): {result['demo_seconds']} s wall time")

    tag = "cpu-bf16" if support["native"] else "cpu-no-bf16"
    out = Path(args.out or f"benchmarks/results/precision_speed_{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
