"""InstantStyle on the bundled models: which blocks carry style, and the three variants per reference.

    python benchmarks/instantstyle_ablation.py            # ~10 min on 2 cores
    python benchmarks/instantstyle_ablation.py --quick    # a smoke run

1. The block ablation (instantstyle.block_ablation): the picture read in one generator block at a time,
   in all, in none, pooled over the held-out references and renders of seen named styles (the control:
   looks the base can draw), seeds 100+ (kept apart from step 2's).
2. Per reference (the three held-out styles, the hard one, seen-style controls and the two drawn outside
   the world), with seeds 0+: StyleDrop round 1 (tuned on the reference, its templated prompts; not for
   the seen controls), the base model given the content alone (no picture), IP-Adapter alone
   (every block), + content subtraction, + style blocks only (InstantStyle). Judges' content, style
   (every primitive as the recipe; world styles only), style similarity (the share of primitives
   alike, any picture), leak of the reference's content; seconds per image.
Writes benchmarks/results/instantstyle.json.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from styledrop_mini import adapters, instantstyle, prompts, world
from styledrop_mini.datasets import rendered_reference
from styledrop_mini.instantstyle import InstantStyleSettings
from styledrop_mini.metrics import judged_per_image, mean_se, test_labels
from styledrop_mini.paper_table import table_references
from styledrop_mini.pipeline import MusePipeline

SEEN_CONTROLS = ("sketch", "polka dot", "pixel art", "blueprint")  # seen named styles: the base can draw them


def kind_of(name: str, controls: dict) -> str:
    return ("held out" if name in world.HELD_OUT_STYLES else "hard" if name == world.HARD_STYLE
            else "seen (control)" if name in controls else "outside the world")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed per content, 6 contents")
    parser.add_argument("--subtract", type=float, default=1.0, help="the content subtraction of rows 3 and 4")
    parser.add_argument("--adapter", default=str(instantstyle.DEFAULT_FILE), help="the image-prompt adapter file")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "instantstyle.json"))
    args = parser.parse_args()
    seeds, n_contents = (1, 6) if args.quick else (4, 12)
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    judges = pipe.judges()
    model = instantstyle.generator(pipe, args.adapter)
    held_out, _ = table_references()
    controls = {style: rendered_reference(style) for style in SEEN_CONTROLS}
    started = time.perf_counter()

    ablation_refs = {**{s: held_out[s] for s in world.HELD_OUT_STYLES}, **controls}
    ablation = instantstyle.block_ablation(pipe, model, judges, ablation_refs, seeds=max(1, seeds // 2),
                                           n_contents=n_contents, seed=100)
    for row in ablation:
        print(f"{row['blocks']:8s}", {k: f"{v['mean']:.2f}±{v['se']:.2f}" for k, v in row.items() if k != "blocks"})
    # The style blocks: those that alone raise style similarity most above "none", while keeping content
    # within 5 points of "none"; the two best such blocks (InstantStyle injects in two of SDXL's).
    none = next(r for r in ablation if r["blocks"] == "none")
    singles = [r for r in ablation if r["blocks"].startswith("block ")]
    keeps = [r for r in singles if r["content"]["mean"] >= none["content"]["mean"] - 0.05] or singles
    best = sorted(keeps, key=lambda r: -r["similarity"]["mean"])[:2]
    style_blocks = tuple(sorted(int(r["blocks"].split()[1]) for r in best))
    print("style blocks:", style_blocks)

    variants = {
        "base model, content only (no picture)": InstantStyleSettings(scale=0.0),
        "IP-Adapter (every block)": InstantStyleSettings(),
        "+ content subtraction": InstantStyleSettings(subtract=args.subtract),
        "+ style blocks only (InstantStyle)": InstantStyleSettings(subtract=args.subtract, blocks=style_blocks),
    }
    rows = []
    for name, ref in held_out.items():  # StyleDrop round 1 beside it: a 300-step tuning run per reference
        start = time.perf_counter()
        tuned, _ = adapters.tune_style(pipe, ref, say=lambda _: None)
        tune_seconds = time.perf_counter() - start
        labels = test_labels(ref, seeds, n_contents)
        start = time.perf_counter()
        images = pipe.generate([prompts.styled(c, ref.descriptor, ref.template) for c in labels],
                               logits_fn_for=pipe.adapter_guided(tuned), progress=False)
        rows.append({"reference": name, "kind": kind_of(name, controls), "variant": "StyleDrop round 1 (tuned)",
                     "tune_seconds": round(tune_seconds, 1),
                     "seconds_per_image": round((time.perf_counter() - start) / len(images), 3),
                     **{k: mean_se(v) for k, v in judged_per_image(judges, images, labels, ref).items()}})
    for name, ref in {**held_out, **controls}.items():
        for variant, settings in variants.items():
            start = time.perf_counter()
            outcomes, images, _ = instantstyle.transfer_outcomes(pipe, model, judges, ref, settings, seeds, n_contents)
            seconds = (time.perf_counter() - start) / len(images)
            row = {"reference": name, "kind": kind_of(name, controls), "variant": variant,
                   "seconds_per_image": round(seconds, 3),
                   **{key: mean_se(values) for key, values in outcomes.items()}}
            rows.append(row)
            print(f"{name:14s} {variant:40s}", {k: f"{v['mean']:.2f}" for k, v in row.items() if isinstance(v, dict)})
    result = {"command": "python benchmarks/instantstyle_ablation.py" + " --quick" * args.quick,
              "adapter": Path(args.adapter).name, "adapter_info": model.image_prompt.info,
              "seeds": seeds, "contents": n_contents, "ablation_seed": 100, "style_blocks": list(style_blocks),
              "settings": {k: asdict(v) for k, v in variants.items()}, "ablation": ablation, "rows": rows,
              "wall_seconds": round(time.perf_counter() - started, 1)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out} in {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
