"""Round 1 against round 2 with CLIP feedback, random selection and simulated human feedback, on
every held-out style (issue 6's acceptance table).

    python benchmarks/feedback_sweep.py            # 12 prompts x 8 pool images, 12 test contents x 8 seeds

Per style: tune round 1 on the one reference (library defaults), draw the pool into
runs/feedback_sweep/STYLE, select (CF; CF among the images whose CLIP style score is at least the
pool's median; Random; simulated HF), train round 2 on each, and score every
model on the 12 evaluation contents (none of them in the pool). Results go to
benchmarks/results/feedback_sweep.json and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch

from styledrop_mini import adapters, feedback, metrics, prompts, world
from styledrop_mini.clip import MiniClip
from styledrop_mini.datasets import style_references
from styledrop_mini.judges import Judges
from styledrop_mini.pipeline import MusePipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", nargs="+", default=list(world.HELD_OUT_STYLES))
    parser.add_argument("--per-prompt", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=8, help="test images per content")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    judges, clip = Judges.load(pipe.folder / "judges.safetensors"), MiniClip.load(pipe.folder / "clip.safetensors")
    refs, results = style_references(), []
    for style in args.styles:
        ref = refs[style]
        round1, _ = adapters.tune(pipe, ref["image"], [prompts.styled(ref["reference_content"], ref["descriptor"])])
        folder = Path("runs/feedback_sweep") / style.replace(" ", "_")
        shutil.rmtree(folder, ignore_errors=True)
        run = feedback.make_pool(pipe, round1, ref, folder, clip,
                                 feedback.FeedbackSettings(per_prompt=args.per_prompt, n_prompts=args.prompts))
        verdicts = judges.judge(run.images())
        floor = statistics.median(item["clip_style"] for item in run.pool)  # keep the better-styled half
        selections = {"CF": feedback.select_clip(run.pool), "CF_style_floor": feedback.select_clip(run.pool, floor),
                      "Random": feedback.select_random(run.pool),
                      "simulated_HF": feedback.select_judged(run.pool, verdicts, style)}
        models = {"Round 1": round1}
        for name, ids in selections.items():
            run.select(name, ids)
            if ids:
                models[f"R2 {name}"] = feedback.train_round(pipe, run, name, reference=ref["image"])[0]
        for name, report in feedback.compare(pipe, judges, clip, ref, models, seeds=args.seeds, seed=1000).items():
            selected = selections.get(name.removeprefix("R2 "), [])
            test_images = len(metrics.style_eval_contents()) * args.seeds
            results.append({"style": style, "model": name, "selected": len(selected), "test_images": test_images,
                            "style_floor": floor if name == "R2 CF_style_floor" else None, **report})
            print(f"{style:14s} {name:16s} content {report['judge_content']:4.0%}  style {report['judge_style']:4.0%}  "
                  f"CLIP text {report['clip_text']:.3f}  CLIP style {report['clip_style']:.3f}", flush=True)
    out = Path("benchmarks/results/feedback_sweep.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tuning": adapters.TUNING, "guidance": adapters.GUIDANCE, "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
