"""Which image tower learns the mini world's contents faster: ViT or ResNet? (data/checkpoints/README.md)

    python benchmarks/clip_towers.py                       # ViT, ResNet width 16 and 32, 400 steps each
    python benchmarks/clip_towers.py --steps 1000 --towers resnet16

Each tower trains with the CLIP recipe's loss and learning rate on 8,000 renders (batch 128), then
classifies the content of 400 fresh test renders zero-shot. About 3 (ViT), 2.5 (ResNet 16) and
7 (ResNet 32) minutes on 2 CPU cores for 400 steps. Run one job at a time: two torch processes on
the same cores slow each other down many times over.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from styledrop_mini import world
from styledrop_mini.clip import ClipConfig, MiniClip, clip_loss_fn, content_prompt
from styledrop_mini.datasets import MiniWorld
from styledrop_mini.metrics import test_bank
from styledrop_mini.datasets import ImageBank
from styledrop_mini.training import TrainSettings, fit

TOWERS = {"vit": ClipConfig(vision="vit"), "resnet16": ClipConfig(resnet_width=16),
          "resnet32": ClipConfig(resnet_width=32)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--towers", nargs="+", default=list(TOWERS), choices=list(TOWERS))
    parser.add_argument("--out", default="benchmarks/results/clip_towers.json")
    args = parser.parse_args()
    bank = ImageBank.render(MiniWorld(n=8000, split="train", styles="all", seed=0))
    test = test_bank(400, seed=3)
    prompts = [content_prompt(c) for c in world.CONTENTS]
    results = {}
    for name in args.towers:
        torch.manual_seed(0)
        model = MiniClip(TOWERS[name])
        settings = TrainSettings(steps=args.steps, batch_size=128, lr=1e-3, warmup=50, weight_decay=0.1,
                                 save_every=10**9, seed=0)
        start = time.perf_counter()
        fit(model, clip_loss_fn(), bank, settings, torch.device("cpu"), desc=name)
        seconds = time.perf_counter() - start
        predicted = model.zero_shot(test.images.float() / 255, prompts).argmax(-1)
        results[name] = {"zero_shot_content": round(float((predicted == test.content_ids).float().mean()), 4),
                         "train_seconds": round(seconds), "seconds_per_step": round(seconds / args.steps, 3),
                         "vision_parameters": sum(p.numel() for p in model.model.visual.parameters())}
        print(name, results[name], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": args.steps, "results": results}, indent=2))


if __name__ == "__main__":
    main()
