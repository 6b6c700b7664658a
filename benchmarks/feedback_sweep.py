"""Round 1 against round 2 with CLIP feedback, random selection and simulated human feedback, on
every held-out style (issue 6's acceptance table).

    python benchmarks/feedback_sweep.py            # 12 prompts x 8 pool images, 12 test contents x 8 seeds

Per style: tune round 1 on the one reference (library defaults), draw the pool into
runs/feedback_sweep/STYLE, select (CF; CF among the images whose CLIP style score is at least the
pool's median; Random; simulated HF), train round 2 on each, and score every
model on the 12 evaluation contents (none of them in the pool). Results go to
benchmarks/results/feedback_sweep.json and a table on stdout.

Every model is scored at several adapter-guidance strengths lambda_A (lambda_B fixed at the library's):
raising lambda_A trades content for style, so each model traces a curve, and round 2 helps only if
its curve lies above round 1's, i.e. more content at the same style, not just a different point on
the same curve. lambda_A = 1 is the library default (issue 6's table).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from styledrop_mini import adapters, feedback, metrics, prompts, world
from styledrop_mini.clip import MiniClip
from styledrop_mini.datasets import style_references
from styledrop_mini.judges import Judges
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import GUIDANCE, AdapterGuidance


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", nargs="+", default=list(world.HELD_OUT_STYLES))
    parser.add_argument("--per-prompt", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=8, help="test images per content")
    parser.add_argument("--lambda-a", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0],
                        help="adapter-guidance strengths to score every model at")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    judges, clip = Judges.load(pipe.folder / "judges.safetensors"), MiniClip.load(pipe.folder / "clip.safetensors")
    refs, results = style_references(), []
    for style in args.styles:
        ref = refs[style]
        round1, _ = adapters.tune(pipe, ref.image, [prompts.styled(ref.content, ref.descriptor)])
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
                models[f"R2 {name}"] = feedback.train_round(pipe, run, name, reference=ref.image)[0]
        test_images = len(metrics.style_eval_contents()) * args.seeds
        for lambda_a in args.lambda_a:
            guidance = AdapterGuidance(lambda_a, GUIDANCE.lambda_b)
            for name, report in feedback.compare(pipe, judges, clip, ref, models, seeds=args.seeds, seed=1000,
                                                 guidance=guidance).items():
                selected = selections.get(name.removeprefix("R2 "), [])
                results.append({"style": style, "model": name, "lambda_a": lambda_a, "selected": len(selected),
                                "test_images": test_images,
                                "style_floor": floor if name == "R2 CF_style_floor" else None, **report})
                print(f"{style:14s} {name:18s} lambda_A {lambda_a:3.1f}  content {report['judge_content']:4.0%}  "
                      f"style {report['judge_style']:4.0%}  CLIP text {report['clip_text']:.3f}  "
                      f"CLIP style {report['clip_style']:.3f}", flush=True)
    out = Path("benchmarks/results/feedback_sweep.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tuning": asdict(adapters.TUNING), "guidance": asdict(GUIDANCE), "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
