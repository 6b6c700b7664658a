"""DreamBooth and mixing, measured (issue 7's acceptance figures).

    python benchmarks/dreambooth_sweep.py          # 32 images per prompt, 16 per gamma and style

1. Two content adapters on the bundled subject (data/subjects/sks_star), library defaults, with and
   without prior preservation: their wall times.
2. Language drift: the share of images the subject judge calls the subject, for the class prompt
   ("an orange star in flat style") and the instance prompt, from the base model and both adapters.
3. For each held-out style: a round-1 style adapter (library defaults), then the gamma sweep of
   mixing: subject fidelity, judge style accuracy, and seconds per image.
Fresh sampling seeds (from 1000). Results go to benchmarks/results/dreambooth_sweep.json.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from styledrop_mini import adapters, dreambooth, prompts, world
from styledrop_mini.datasets import style_references
from styledrop_mini.judges import Judges, SubjectJudge
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import GUIDANCE

GAMMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", nargs="+", default=list(world.HELD_OUT_STYLES))
    parser.add_argument("--n-drift", type=int, default=32, help="images per prompt for the drift test")
    parser.add_argument("--n", type=int, default=16, help="images per gamma and style")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dreambooth_sweep.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    judges = Judges.load(pipe.folder / "judges.safetensors")
    subject_judge = SubjectJudge.load(pipe.folder / "subject_judge.safetensors")
    images, meta = dreambooth.load_subject()
    prompt, plain = meta["prompt"], dreambooth.class_prompt(meta["prompt"], meta["identifier"])
    cache = Path("runs") / "class_images"

    dreambooth.class_tokens(pipe, plain, cache_dir=cache)  # drawn once, not timed (cached for later runs)
    content, seconds = {}, {}
    for name, weight in (("prior", dreambooth.PRIOR.weight), ("no prior", 0.0)):
        start = time.perf_counter()
        content[name], _ = dreambooth.tune_subject(pipe, images, prompt, meta["identifier"], prior_weight=weight,
                                                   cache_dir=cache)
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"content adapter, {name}: {seconds[name]} s")

    drift = {}
    for name, model in (("base", None), *content.items()):
        make = None if model is None else pipe.adapter_guided(model, GUIDANCE)
        for p in (plain, prompt):
            drawn = pipe.generate([p] * args.n_drift, seed=args.seed, logits_fn_for=make, progress=False)
            drift[f"{name}: {p}"] = {"subject": subject_judge.fidelity(drawn),
                                     **judges.accuracy(drawn, content="star", colour="orange")}
            print(f"{name:9s} {p!r}: {drift[f'{name}: {p}']}")

    subject_prompt = prompt.replace(" in flat style", "")  # styled by the template for the style adapter
    # c, the content adapter's prompt: its own caption, not the paper's style-free prompt, which our
    # content adapter rarely draws the subject from (notebook 08, section 6, measures both)
    sweeps = {}
    for style in args.styles:
        ref = style_references()[style]
        style_model, _ = adapters.tune(pipe, ref.image, [prompts.styled(ref.content, ref.descriptor)])
        rows, _ = dreambooth.mixing_report(pipe, style_model, content["prior"], subject_prompt, ref.descriptor, style,
                                           GAMMAS, judges, subject_judge, n=args.n, seed=args.seed,
                                           content_prompt=prompt)
        sweeps[style] = rows
        for row in rows:
            print(f"{style:14s} gamma {row['gamma']:.1f}: subject {row['subject']:.0%}, style {row['style']:.0%}, "
                  f"{row['seconds_per_image'] * 1000:.0f} ms/image")
    result = {"command": "python benchmarks/dreambooth_sweep.py", "prompt": prompt, "class_prompt": plain,
              "styled_prompt": subject_prompt, "content_prompt": prompt, "tuning_seconds": seconds, "settings": asdict(dreambooth.TUNING),
              "prior": asdict(dreambooth.PRIOR), "drift": drift, "gamma_sweep": sweeps, "n": args.n,
              "n_drift": args.n_drift, "seed": args.seed, "torch_threads": torch.get_num_threads()}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
