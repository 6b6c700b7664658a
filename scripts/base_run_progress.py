"""How far along is a base-model run? Build the generator from a run's last saved state (it is saved
every tenth of the run, at most 500 steps, and every 10 minutes) and measure fresh seen-style prompts with the bundled judges, while the run
goes on. Nothing in data/checkpoints changes.

    python scripts/base_run_progress.py runs/base            # the run dir given to `train base --run-dir`
    python scripts/base_run_progress.py /tmp/runs/base -n 96 --out /tmp/base_at_step.safetensors
    python scripts/base_run_progress.py runs/base --guidance-scale 2 4   # one line per guidance scale
"""
import argparse
import tempfile
from pathlib import Path

import torch

from styledrop_mini.checkpoints import fingerprint, read_checkpoint
from styledrop_mini.judges import Judges
from styledrop_mini.metrics import test_bank
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import SamplerSettings
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.recipes import build


def model_from_run(run_dir: Path):
    """The base transformer at the run's last saved step, and that step."""
    tensors, config, info = read_checkpoint(run_dir / "state.safetensors", "train_state")
    preset = config.get("extra", {}).get("preset") or "cpu"
    model, _ = build("base", preset, text_words=config.get("extra", {}).get("text_words", False))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    return model, info["step"], config["steps"], preset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the --run-dir of a `styledrop-mini train base` run")
    parser.add_argument("-n", type=int, default=36, help="fresh seen-style prompts to judge (default: 36)")
    parser.add_argument("--out", type=Path, help="also keep the model as a checkpoint here (default: not kept)")
    parser.add_argument("--guidance-scale", type=float, nargs="+", default=[SamplerSettings.guidance_scale],
                        help=f"classifier-free guidance scales to sample at (default: {SamplerSettings.guidance_scale:g})")
    args = parser.parse_args()
    if not (args.run_dir / "state.safetensors").exists():
        parser.error(f"{args.run_dir} holds no state.safetensors: give the --run-dir of a base run")
    model, step, steps, preset = model_from_run(args.run_dir)
    info = {"command": f"scripts/base_run_progress.py {args.run_dir} (step {step} of {steps}, unfinished)",
            "steps": step, "preset": preset,
            "tokenizer_fingerprint": fingerprint(CHECKPOINT_DIR / "tokenizer.safetensors"),
            "clip_fingerprint": fingerprint(CHECKPOINT_DIR / "clip.safetensors")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("tokenizer", "clip"):  # the pipeline reads its parts from one folder
            (folder / f"{name}.safetensors").symlink_to(CHECKPOINT_DIR / f"{name}.safetensors")
        model.save(args.out or folder / "base.safetensors", info=info, dtype=torch.float16)
        if args.out:
            (folder / "base.safetensors").symlink_to(args.out.resolve())
        pipe = MusePipeline.load(folder)
        judges = Judges.load(CHECKPOINT_DIR / "judges.safetensors")
        seen = test_bank(args.n, seed=5, styles="seen", workers=0)
        for guidance in args.guidance_scale:
            images = pipe.generate(seen.texts, seed=0, progress=False, settings=SamplerSettings(guidance_scale=guidance))
            accuracy = judges.accuracy(images, content=seen.content_ids, colour=seen.colour_ids, style=seen.style_ids)
            print(f"step {step} of {steps} ({preset}), guidance {guidance:g}: on {args.n} seen-style prompts, judged "
                  + ", ".join(f"{k} {v:.0%} ± {(v * (1 - v) / args.n) ** 0.5:.0%}" for k, v in accuracy.items()))


if __name__ == "__main__":
    main()
