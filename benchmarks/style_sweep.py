"""Sweeps behind StyleDrop's defaults (adapters.TUNING and sampling.GUIDANCE), on the held-out styles.

    python benchmarks/style_sweep.py tuning      # steps x learning rate, d_prj 4
    python benchmarks/style_sweep.py guidance    # lambda_A x lambda_B at the default tuning
    python benchmarks/style_sweep.py adapter     # d_prj 4 / 4 shared / 16 / 32, and LoRA rank 4, at the default tuning
    python benchmarks/style_sweep.py accept      # the acceptance table: 12 new contents x 4 seeds per style

Every adapter is tuned on the style's ONE bundled reference image (data/styles/), then draws contents
the reference does not show; the judges and the mini CLIP score the results (metrics.style_report).
Results go to benchmarks/results/style_sweep_{what}.json and a table on stdout.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from styledrop_mini import adapters, metrics, prompts, world
from styledrop_mini.datasets import style_references
from styledrop_mini.clip import MiniClip
from styledrop_mini.judges import Judges
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import GUIDANCE


def evaluate(pipe, judges, clip, ref, model, seeds, lambdas):
    return metrics.style_transfer_report(pipe, judges, clip, ref, model, seeds, lambdas)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["tuning", "guidance", "adapter", "accept"])
    parser.add_argument("--styles", nargs="+", default=list(world.HELD_OUT_STYLES))
    parser.add_argument("--seeds", type=int, default=2, help="images per content (accept: 4)")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    judges, clip = Judges.load(pipe.folder / "judges.safetensors"), MiniClip.load(pipe.folder / "clip.safetensors")
    refs = style_references()
    results = []

    def tuned(ref, **settings):
        caption = prompts.styled(ref.content, ref.descriptor)
        start = time.perf_counter()
        model, history = adapters.tune(pipe, ref.image, [caption], **settings)
        return model, time.perf_counter() - start

    for style in args.styles:
        ref = refs[style]
        if args.what == "tuning":
            for steps, lr in itertools.product((100, 300, 600), (3e-4, 1e-3, 3e-3)):
                model, seconds = tuned(ref, steps=steps, lr=lr)
                r = evaluate(pipe, judges, clip, ref, model, args.seeds, GUIDANCE)
                results.append({"style": style, "steps": steps, "lr": lr, "tune_seconds": round(seconds, 1), **r})
                print(results[-1], flush=True)
        elif args.what == "guidance":
            model, _ = tuned(ref)
            for la, lb in itertools.product((0.0, 1.0, 2.0), (0.0, 1.0, 3.0, 5.0)):
                r = evaluate(pipe, judges, clip, ref, model, args.seeds, (la, lb))
                results.append({"style": style, "lambda_a": la, "lambda_b": lb, **r})
                print(results[-1], flush=True)
        elif args.what == "adapter":
            for name, config in (("d_prj 4", adapters.AdapterConfig()),
                                 ("d_prj 4 shared", adapters.AdapterConfig(shared=True)),
                                 ("d_prj 16", adapters.AdapterConfig(d_prj=16)),
                                 ("d_prj 32", adapters.AdapterConfig(d_prj=32)),
                                 ("LoRA rank 4", adapters.AdapterConfig(kind="lora"))):
                model, seconds = tuned(ref, config=config)
                r = evaluate(pipe, judges, clip, ref, model, args.seeds, GUIDANCE)
                results.append({"style": style, "adapter": name, "parameters": adapters.count(model)[0],
                                "tune_seconds": round(seconds, 1), **r})
                print(results[-1], flush=True)
        else:
            model, seconds = tuned(ref)
            n_adapter, n_base = adapters.count(model)
            for name, m in (("StyleDrop", model), ("base model", None)):
                r = evaluate(pipe, judges, clip, ref, m, 4, GUIDANCE)
                results.append({"style": style, "model": name, "tune_seconds": round(seconds, 1),
                                "adapter_parameters": n_adapter, "base_parameters": n_base, **r})
                print(results[-1], flush=True)
    out = Path(f"benchmarks/results/style_sweep_{args.what}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tuning": asdict(adapters.TUNING), "guidance": asdict(GUIDANCE), "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
