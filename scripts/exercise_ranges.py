"""The expected ranges quoted by the open exercises that depend only on the bundled tokenizer and CLIP
(notebook 01 Exercise 4, notebook 02 Exercise 3, the text half of notebook 03 Exercise 3), measured
the way a student would, on fresh renders.

    python scripts/exercise_ranges.py            # about 2 minutes on 2 CPU cores
    -> benchmarks/results/exercise_ranges.json
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from styledrop_mini import metrics, world
from styledrop_mini.clip import MiniClip, attribute_prompt
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.styles import PRIMITIVES
from styledrop_mini.tokenizer import VQTokenizer, psnr

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
SHIFTS = (0, 1, 2, 4, 8)  # pixels; a token is 4 x 4 pixels


def token_shifts(tokenizer, seeds=(3, 4), n: int = 64) -> dict:
    """01 Exercise 4: the share of interior tokens kept by a shift (moved by the whole tokens it spans)
    and the reconstruction PSNR, per shift, on `n` renders for each seed."""
    patch = tokenizer.config.image_size // tokenizer.config.grid
    out = {}
    for seed in seeds:
        images = metrics.look_test_bank(n=n, seed=seed, workers=0).images.float() / 255
        before = tokenizer.encode(images)
        rows = {}
        for px in SHIFTS:
            shifted = torch.roll(images, px, dims=-1)
            after = tokenizer.encode(shifted)
            k = px // patch if px % patch == 0 else 0  # whole tokens moved (part-token shifts: compare in place)
            kept = after[:, 1:-1, 1 + k:-1] == torch.roll(before, k, dims=-1)[:, 1:-1, 1 + k:-1]
            rows[px] = {"tokens_kept": round(kept.float().mean().item(), 3),
                        "psnr_db": round(psnr(tokenizer.decode(after), shifted).mean().item(), 2)}
        out[f"seed {seed}"] = rows
    return out


def shift_loss_by_value(tokenizer, n: int = 256, seed: int = 3, px: int = 2) -> dict:
    """01 Exercise 4, second part: PSNR lost to a `px`-pixel shift, by background and by fill value."""
    bank = metrics.look_test_bank(n=n, seed=seed, workers=0)
    images = bank.images.float() / 255
    shifted = torch.roll(images, px, dims=-1)
    loss = psnr(tokenizer.decode(tokenizer.encode(images)), images) - psnr(tokenizer.decode(tokenizer.encode(shifted)), shifted)
    return {name: {value: round(loss[bank.primitive_ids[name] == i].mean().item(), 2)
                   for i, value in enumerate(PRIMITIVES[name]) if (bank.primitive_ids[name] == i).any()}
            for name in ("background", "fill")}


def clip_blind_spot(clip, n_train: int = 600, n_test: int = 300, steps: int = 500) -> dict:
    """02 Exercise 3: per primitive, zero-shot accuracy against a linear probe on the image embeddings
    (same test renders), and the text cosines of two fills and of two backgrounds."""
    train = metrics.look_test_bank(n=n_train, seed=11, workers=0)
    test = metrics.look_test_bank(n=n_test, seed=12, workers=0)
    with torch.no_grad():
        features_train = clip.image_embeddings(train.images.float() / 255)
        features_test = clip.image_embeddings(test.images.float() / 255)
    out = {}
    for name, values in PRIMITIVES.items():
        zero_shot = clip.zero_shot(test.images.float() / 255, [attribute_prompt(name, v) for v in values]).argmax(-1)
        torch.manual_seed(0)
        probe = torch.nn.Linear(features_train.shape[1], len(values))
        optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(steps):  # unit-length features, scaled up so the probe's logits can grow
            optimizer.zero_grad()
            F.cross_entropy(probe(10 * features_train), train.primitive_ids[name]).backward()
            optimizer.step()
        with torch.no_grad():
            probed = probe(10 * features_test).argmax(-1)
        truth = test.primitive_ids[name]
        out[name] = {"zero_shot": metrics.mean_se((zero_shot == truth).float()),
                     "linear_probe": metrics.mean_se((probed == truth).float()), "chance": round(1 / len(values), 3)}
    pairs = {"fills": ("a red star with no fill", "a red star with polka dots"),
             "backgrounds": ("a red star on white", "a red star on a dark background"),
             "colours": ("a red star", "a blue star")}
    cosines = {}
    for label, (a, b) in pairs.items():
        e = clip.text_embeddings([a, b])
        cosines[label] = {"texts": [a, b], "cosine": round(float(e[0] @ e[1]), 3)}
    return {"test_renders": n_test, "probe_renders": n_train, "probe_steps": steps, "primitives": out,
            "text_cosines": cosines}


def nearest_seen_names(clip) -> dict:
    """03 Exercise 3, text half: per held-out style, the cosine of "a red star in {its name} style"
    to the same prompt in each seen style, nearest first."""
    out = {}
    for held in world.HELD_OUT_STYLES:
        e = clip.text_embeddings([world.caption("star", "red", held)] + [world.caption("star", "red", s) for s in world.SEEN_STYLES])
        cosines = {s: round(float(c), 3) for s, c in zip(world.SEEN_STYLES, e[1:] @ e[0])}
        out[held] = dict(sorted(cosines.items(), key=lambda kv: -kv[1]))
    return out


def main():
    torch.manual_seed(0)
    tokenizer = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors")
    clip = MiniClip.load(CHECKPOINT_DIR / "clip.safetensors")
    report = {"command": "python scripts/exercise_ranges.py",
              "01_exercise_4": {"shifts": token_shifts(tokenizer), "psnr_lost_to_2px_by_value": shift_loss_by_value(tokenizer)},
              "02_exercise_3": clip_blind_spot(clip), "03_exercise_3_text": nearest_seen_names(clip)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "exercise_ranges.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
