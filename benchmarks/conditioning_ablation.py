"""Does the base generator need the pooled prompt embedding? A same-compute ablation.

The first broad-world base (cross-attention only, as in Muse) learnt the looks of its images long
before their contents. This trains the `cpu` preset's transformer twice from the same seed on the same
token bank, for the same steps: once plain (`pooled_width = 0`) and once with the prompt's pooled
embedding modulating every norm (adaLN, transformer.py), and judges both on fresh seen-style prompts:

    python benchmarks/conditioning_ablation.py                  # 1000 steps each, ~25 min each on 2 cores
    python benchmarks/conditioning_ablation.py --steps 200 --bank 2000 --json /tmp/quick.json

Per variant: the training loss, the loss on fully masked test grids with and without the prompt (what
the text is worth, in nats per token), and judge accuracies (± standard error) of one-shot argmax
images and of sampled images at guidance 2 and 4. Writes JSON (default
benchmarks/results/conditioning_ablation.json).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from styledrop_mini.clip import MiniClip
from styledrop_mini.diagnostics import rate
from styledrop_mini.judges import Judges
from styledrop_mini.metrics import test_bank
from styledrop_mini.sampling import SamplerSettings, decode, guided_logits
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.text_encoder import ClipTextEncoder
from styledrop_mini.tokenizer import VQTokenizer
from styledrop_mini.datasets import ImageBank, TokenBank, training_world
from styledrop_mini.recipes import BASE_PRESETS, RECIPES
from styledrop_mini.training import TrainSettings, fit, seed_everything
from styledrop_mini.transformer import MaskedTransformer, TransformerConfig, base_loss_fn

VARIANTS = ("adaln", "plain")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--bank", type=int, default=30000, help="training images (seen world)")
    parser.add_argument("-n", type=int, default=96, help="fresh seen-style test prompts")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/conditioning_ablation.json"))
    args = parser.parse_args()

    tokenizer = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors")
    text_encoder = ClipTextEncoder(MiniClip.load(CHECKPOINT_DIR / "clip.safetensors"))
    judges = Judges.load(CHECKPOINT_DIR / "judges.safetensors")
    seed_everything(0)
    bank = TokenBank.encode(ImageBank.render(training_world("seen", args.bank, 0), args.workers), tokenizer)
    seen = test_bank(args.n, seed=5, styles="seen", workers=0)
    real = tokenizer.encode(seen.images.float() / 255).flatten(1)  # (n, 256)
    cond, uncond = text_encoder(seen.texts), text_encoder([""] * args.n)
    recipe = RECIPES["base"]

    def judge(tokens):
        images = tokenizer.decode(tokens.view(len(tokens), tokenizer.config.grid, tokenizer.config.grid))
        judged = judges.accuracy(images, content=seen.content_ids, colour=seen.colour_ids, style=seen.style_ids)
        return {k: rate(v, args.n) for k, v in judged.items()}

    report = {"command": f"python benchmarks/conditioning_ablation.py --steps {args.steps} --bank {args.bank} -n {args.n}",
              "steps": args.steps, "bank": args.bank, "prompts": args.n, "variants": {}}
    for variant in args.variants:
        config = TransformerConfig(text_width=text_encoder.width, grid=tokenizer.config.grid, patch=2,
                                   codebook_size=tokenizer.config.codebook_size,
                                   pooled_width=cond.pooled.shape[-1] if variant == "adaln" else 0,
                                   width=BASE_PRESETS["cpu"].width, layers=BASE_PRESETS["cpu"].layers,
                                   heads=BASE_PRESETS["cpu"].heads)
        seed_everything(0)
        model = MaskedTransformer(config)
        settings = TrainSettings(steps=args.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                                 warmup=recipe.warmup, weight_decay=recipe.weight_decay,
                                 attention=recipe.attention)
        started = time.perf_counter()
        history = fit(model, base_loss_fn(text_encoder), bank, settings, torch.device("cpu"), desc=variant)
        row = {"parameters": sum(p.numel() for p in model.parameters()),
               "train_seconds": round(time.perf_counter() - started), "final": history[-1]}
        with torch.no_grad():
            hidden = torch.full_like(real, config.mask_id)
            l_cond = model(hidden, cond.tokens, cond.mask, cond.pooled)
            l_uncond = model(hidden, uncond.tokens, uncond.mask, uncond.pooled)
            row["full_mask_nats"] = {name: round(F.cross_entropy(l.flatten(0, 1), real.flatten()).item(), 3)
                                     for name, l in (("with prompt", l_cond), ("empty prompt", l_uncond))}
            row["one_shot_argmax_g2"] = judge(guided_logits(model, cond, uncond, 2.0)(hidden).argmax(-1))
            for scale in (2.0, 4.0):
                fn = guided_logits(model, cond, uncond, scale)
                tokens = decode(fn, list(range(args.n)), config.n_tokens, config.mask_id, SamplerSettings(guidance_scale=scale))
                row[f"sampled_g{scale:g}"] = judge(tokens)
        report["variants"][variant] = row
        print(variant, json.dumps(row), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
