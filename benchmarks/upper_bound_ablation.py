"""Why does the upper bound fail: the adapter, the data, the sampler, or the base model's prior?

    python benchmarks/upper_bound_ablation.py            # capacity, data, sampler; the three held-out styles (~25 min, 2 cores)
    python benchmarks/upper_bound_ablation.py --variants bottleneck_d4 bottleneck_d4_temperature_0.4 \
        bottleneck_d4_cool_sampler --out benchmarks/results/upper_bound_sampler.json

`styledrop-mini evaluate style-prior`'s upper bound tunes StyleDrop's adapter (d_prj 4, 300 steps) on 8 TRUE
renders of a held-out style and asks for 12 other contents x 4 seeds (diagnostics.upper_bound). On the
bundled base it draws the style in 6-40 % of images. Each variant here changes one thing:
  capacity   a wider bottleneck (d_prj 32, 1,000 steps), LoRA rank 16, every weight (full fine-tuning);
  data       64 true renders instead of 8 (the same 8 contents, 8 colours and draws each);
  sampler    the best-fitted model, and StyleDrop's own adapter, drawn with a cooler temperature (0.4
             against 0.7) and twice the steps (24).
If more capacity or more data cannot draw new contents in the style, the adapter is not what is missing:
the base model's prior is. Judged as the diagnostics are (metrics.judged_per_image, primitive_rates), at
lambda_A 1; each variant's grid of 24 samples goes beside the results file as a JPEG.
Writes benchmarks/results/upper_bound_ablation.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from styledrop_mini import adapters, diagnostics, metrics, prompts, world
from styledrop_mini.adapters import AdapterConfig
from styledrop_mini.datasets import style_references
from styledrop_mini.images import tensor_grid
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import GUIDANCE, AdapterGuidance, SamplerSettings

# name -> (adapter, tuning, renders of each training content, sampler)
VARIANTS = {
    "bottleneck_d4": (AdapterConfig(), dict(steps=300, lr=1e-3), 1, SamplerSettings()),
    "bottleneck_d32": (AdapterConfig(d_prj=32), dict(steps=1000, lr=1e-3), 1, SamplerSettings()),
    "lora_r16": (AdapterConfig(kind="lora", lora_rank=16, lora_alpha=16.0), dict(steps=600, lr=1e-3), 1,
                 SamplerSettings()),
    "full": (AdapterConfig(kind="full"), dict(steps=300, lr=1e-4), 1, SamplerSettings()),
    "bottleneck_d4_k64": (AdapterConfig(), dict(steps=300, lr=1e-3), 8, SamplerSettings()),
    "full_k64": (AdapterConfig(kind="full"), dict(steps=600, lr=1e-4), 8, SamplerSettings()),
    "full_k64_cool_sampler": (AdapterConfig(kind="full"), dict(steps=600, lr=1e-4), 8,
                              SamplerSettings(steps=24, temperature=0.4)),
    # StyleDrop's own adapter again, drawn cooler: the sampler's defaults were chosen on the seen styles
    "bottleneck_d4_temperature_0.4": (AdapterConfig(), dict(steps=300, lr=1e-3), 1, SamplerSettings(temperature=0.4)),
    "bottleneck_d4_cool_sampler": (AdapterConfig(), dict(steps=300, lr=1e-3), 1, SamplerSettings(steps=24, temperature=0.4)),
}
DEFAULT_VARIANTS = [name for name in VARIANTS if not name.startswith("bottleneck_d4_") or name.endswith("k64")]


def run(pipe, judges, ref, name, seeds: int, n_contents: int, out_dir: Path, cache: dict) -> dict:
    config, tuning, repeats, sampler = VARIANTS[name]
    test = set(metrics.style_eval_contents(exclude=ref.content_label, n=n_contents))
    contents = [c for c in diagnostics.UPPER_BOUND_CONTENTS if c not in test and c != ref.content_label][:8]
    key = (ref.style, repr(config), repr(tuning), repeats)  # the cool-sampler row reuses full_k64's model
    if key not in cache:
        images, captions = diagnostics.true_renders(ref.style, contents * repeats)
        start = time.perf_counter()
        model, history = adapters.tune(pipe, images, captions, config=config, seed=diagnostics.DIAGNOSTIC_SEED,
                                       **tuning)
        cache.clear()  # one model held at a time
        cache[key] = (model, history, time.perf_counter() - start, len(images))
    model, history, seconds, n_train = cache[key]
    labels = metrics.test_labels(ref, seeds, n_contents)
    prompt_list = [prompts.styled(c, ref.descriptor, ref.template) for c in labels]
    samples = pipe.generate(prompt_list, seed=diagnostics.DIAGNOSTIC_SEED, settings=sampler, progress=False,
                            logits_fn_for=pipe.adapter_guided(model, AdapterGuidance(1.0, GUIDANCE.lambda_b)))
    judged = metrics.judged_per_image(judges, samples, labels, ref)
    n = len(samples)
    picture = out_dir / f"upper_bound_{ref.style.replace(' ', '_')}_{name}.jpg"
    tensor_grid(samples[::2], cols=12, tile=48).convert("RGB").save(picture, quality=80)
    trainable, total = adapters.count(model)
    if config.kind == "full":  # every weight trains; adapters.count counts adapter weights only
        trainable = total
    return {"style": diagnostics.rate(sum(judged["style"]) / n, n),
            "content": diagnostics.rate(sum(judged["content"]) / n, n),
            "primitives": metrics.primitive_rates(judges, samples, ref.style),
            "train_renders": n_train, "trainable": trainable, "of": total, "tuning": tuning,
            "sampler": asdict(sampler), "tune_seconds": round(seconds, 1), "final_loss": round(history[-1]["loss"], 3),
            "samples": picture.name}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", nargs="+", default=list(world.HELD_OUT_STYLES))
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/upper_bound_ablation.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    wall = time.perf_counter()
    pipe = MusePipeline.load()
    judges, refs = pipe.judges(), style_references()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, cache = {}, {}
    for style in args.styles:
        for name in args.variants:
            row = run(pipe, judges, refs[style], name, args.seeds, 12, out.parent, cache)
            rows.setdefault(style, {})[name] = row
            print(f"{style:14s} {name:22s} style {100 * row['style']['rate']:3.0f} ± {100 * row['style']['se']:2.0f} %  "
                  f"content {100 * row['content']['rate']:3.0f} ± {100 * row['content']['se']:2.0f} %  "
                  f"({row['train_renders']} renders, {row['trainable']:,} weights, loss {row['final_loss']}, "
                  f"{row['tune_seconds']} s)", flush=True)
    command = " ".join(["python benchmarks/upper_bound_ablation.py", *sys.argv[1:]])
    out.write_text(json.dumps({"command": command, "base": str(pipe.transformer_file),
                               "seed": diagnostics.DIAGNOSTIC_SEED, "results": rows,
                               "wall_seconds": round(time.perf_counter() - wall, 1)}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
