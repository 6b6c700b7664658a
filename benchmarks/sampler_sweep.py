"""The sweep behind the sampler's defaults (sampling.SamplerSettings): guidance scale, temperature and
choice temperature, judged on prompts over the seen styles.

    python benchmarks/sampler_sweep.py            # 200 prompts (test split, seed 2: not the evaluation's seed 1)
    python benchmarks/sampler_sweep.py --guidance 1.5 2 --temperature 0.7 0.5 --choice 1 2

Adds one row per setting to benchmarks/results/sampler_sweep.json (replacing rows of the same setting)
and prints it.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from styledrop_mini.clip import MiniClip
from styledrop_mini.judges import Judges
from styledrop_mini.metrics import generator_report
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import SamplerSettings


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--guidance", type=float, nargs="+", default=[3.0, 5.0, 8.0])
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0, 0.7])
    parser.add_argument("--choice", type=float, nargs="+", default=[2.0, 4.5], help="choice temperatures")
    args = parser.parse_args()
    pipe = MusePipeline.load()
    judges, clip = Judges.load(pipe.folder / "judges.safetensors"), MiniClip.load(pipe.folder / "clip.safetensors")
    out = Path("benchmarks/results/sampler_sweep.json")
    results = json.loads(out.read_text()) if out.exists() else []
    for guidance, temperature, choice in itertools.product(args.guidance, args.temperature, args.choice):
        settings = SamplerSettings(steps=12, temperature=temperature, choice_temperature=choice,
                                   guidance_scale=guidance)
        r = generator_report(pipe, judges, clip, n=args.prompts, seed=args.seed, styles="seen", settings=settings)
        row = {"guidance": guidance, "temperature": temperature, "choice_temperature": choice, **r["judges"],
               "clip_text_ratio": round(r["clip_text_score_ratio"], 4)}
        key = ("guidance", "temperature", "choice_temperature")
        results = [r for r in results if any(r[k] != row[k] for k in key)] + [row]
        print(row, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
