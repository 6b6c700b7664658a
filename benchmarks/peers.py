"""Our masked transformer beside two peers, at equal size, in one run.

    pip install -e ".[peers]"          # lucidrains' muse-maskgit-pytorch and Hugging Face diffusers
    python benchmarks/peers.py         # about 10 minutes on 2 CPU cores; --runs 1 for half

The peers:
  - `muse_maskgit_pytorch.MaskGitTransformer` (lucidrains): Muse's transformer, one position per
    token (256 positions for our 16 x 16 grid), T5 text features through cross-attention;
  - `diffusers.UVit2DModel` (aMUSEd's transformer, Hugging Face): convolutional blocks that halve the
    token grid to 8 x 8, a transformer over the 64 positions, blocks that double it again; the pooled
    text embedding (with micro-conditions) modulates its norms, as in ours.

Each is built at our base model's size (within 20 % of its parameters), with our codebook and grid,
and reads the same precomputed text features (the bundled CLIP text tower's per-token features and
pooled vector; nothing is downloaded: the peer's T5 is never loaded). A thin wrapper gives each the
call of ours, `model(tokens, text, text_mask, pooled) -> logits (B, N, K)`, so that the very same
MaskGIT loss (transformer.masked_loss), guidance (sampling.guided_logits) and decoding loop
(sampling.decode) time all three. Measured, per precision (bf16 autocast where the CPU has it
natively, and fp32):
  - training images/s at batch 128 (forward + backward + AdamW step), median of `--repeats`;
  - sampling images/s, 12 steps with classifier-free guidance (both passes in one batch of 2 x 32),
    and one such pass alone (the model's share of sampling, without the decoding loop);
  - model FLOPs per training step, counted by torch.utils.flop_counter on one fp32 step, and model
    FLOPs utilisation (MFU) against the measured matmul peak of the precision in use.
The whole measurement runs `--runs` times (models interleaved) to show how much the figures move.
Writes benchmarks/results/peers_cpu.json and a markdown table beside it (peers_cpu.md).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode
from transformer_speed import matmul_peak, sync

from styledrop_mini import world
from styledrop_mini.devices import autocast, cpu_name, pick_device, resolve_precision
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import SamplerSettings, decode, guided_logits
from styledrop_mini.text_encoder import TextFeatures
from styledrop_mini.transformer import MaskedTransformer, masked_loss, random_mask

try:  # the peers are an optional extra: pip install -e ".[peers]"
    import muse_maskgit_pytorch.t5 as muse_t5
    from diffusers import UVit2DModel
    from muse_maskgit_pytorch import MaskGitTransformer
except ImportError as exc:
    raise SystemExit(f"benchmarks/peers.py needs the peers: pip install -e \".[peers]\" ({exc})")

OURS_TEXT = "styledrop_mini_text"  # the name our text features go by in muse-maskgit-pytorch's T5 registry


class MuseMaskGit(nn.Module):
    """lucidrains' MaskGitTransformer behind our call. Its cross-attention masks padding by looking for
    all-zero text features, so padded positions are zeroed; it has no use for the pooled vector.
    flash=False: its einsum attention. On a CPU its default path is memory_efficient_attention_pytorch's
    blockwise attention written in Python, which also fails under bf16 autocast (its mask fill value)."""

    def __init__(self, config, width: int, layers: int, heads: int):
        super().__init__()
        self.config = config
        # Tell its T5 registry the width of our features, so that it never loads a T5 to ask for it.
        muse_t5.T5_CONFIGS[OURS_TEXT] = {"config": SimpleNamespace(d_model=config.text_width)}
        self.net = MaskGitTransformer(num_tokens=config.codebook_size, seq_len=config.n_tokens, dim=width,
                                      depth=layers, heads=heads, dim_head=width // heads, ff_mult=4,
                                      t5_name=OURS_TEXT, flash=False)
        assert self.net.mask_id == config.mask_id  # both put [MASK] right after the codebook

    def forward(self, tokens, text, text_mask, pooled=None):
        return self.net(tokens, text_embeds=text * text_mask[..., None])  # (B, N, K)


class AmusedUVit(nn.Module):
    """diffusers' UVit2DModel behind our call: tokens as a (B, 16, 16) grid, micro-conditions (aMUSEd's
    original size, crop and aesthetic score) held at zero, logits back as (B, N, K)."""

    def __init__(self, config, width: int, layers: int, heads: int, intermediate: int, conv_width: int):
        super().__init__()
        self.config = config
        self.net = UVit2DModel(hidden_size=width, use_bias=True, cond_embed_dim=config.pooled_width,
                               micro_cond_encode_dim=16, micro_cond_embed_dim=5 * 16,
                               encoder_hidden_size=config.text_width, vocab_size=config.codebook_size + 1,
                               codebook_size=config.codebook_size, in_channels=64, block_out_channels=conv_width,
                               num_res_blocks=1, downsample=True, upsample=True, block_num_heads=2,
                               num_hidden_layers=layers, num_attention_heads=heads,
                               intermediate_size=intermediate, sample_size=config.grid)

    def forward(self, tokens, text, text_mask, pooled):
        B, g = len(tokens), self.config.grid
        micro = torch.zeros(B, 5, device=tokens.device)
        logits = self.net(tokens.view(B, g, g), text * text_mask[..., None], pooled, micro)  # (B, K, g, g)
        return logits.flatten(2).transpose(1, 2)  # (B, N, K)


def median_seconds(fn, device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prompts_features(pipe: MusePipeline, n: int, device) -> TextFeatures:
    """The bundled text tower's features of n captions of the world (precomputed once, for every model)."""
    captions = [world.caption(world.CONTENTS[i % len(world.CONTENTS)], list(world.COLOURS)[i % len(world.COLOURS)],
                              list(world.SEEN_STYLES)[i % len(world.SEEN_STYLES)]) for i in range(n)]
    with torch.no_grad():
        return pipe.text_encoder(captions).to(device)


def measure(model: nn.Module, text: TextFeatures, empty: TextFeatures, args, device,
            precision: str) -> dict:
    cfg = model.config
    B, S = args.batch_size, args.sample_batch
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.codebook_size, (B, cfg.n_tokens), generator=gen).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        with autocast(device, precision):
            loss, _ = masked_loss(model, tokens, text.tokens, text.mask,
                                  random_mask(B, cfg.n_tokens, gen, device=device), text.pooled)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_s = median_seconds(train_step, device, args.repeats)
    model.eval()
    fn = guided_logits(model, text[:S], empty[:S], 2.0)

    @torch.no_grad()
    def sample():
        with autocast(device, precision):
            decode(fn, list(range(S)), cfg.n_tokens, cfg.mask_id, SamplerSettings(steps=12), device)

    sample_s = median_seconds(sample, device, args.repeats)
    both = torch.cat([tokens[:S], tokens[:S]]), TextFeatures.cat([text[:S], empty[:S]])

    @torch.no_grad()
    def forward():  # one guided step's pass alone: what sampling costs without the decoding loop
        with autocast(device, precision):
            model(both[0], both[1].tokens, both[1].mask, both[1].pooled)

    forward_s = median_seconds(forward, device, 2 * args.repeats)
    return {"train_step_seconds": round(train_s, 4), "train_images_per_s": round(B / train_s, 2),
            "sample_seconds": round(sample_s, 3), "sample_images_per_s": round(S / sample_s, 2),
            "guided_forward_seconds": round(forward_s, 4)}


def training_flops(model: nn.Module, text: TextFeatures, batch: int) -> float:
    """FLOPs of one fp32 training step's forward and backward, as torch's flop counter counts them."""
    cfg = model.config
    tokens = torch.randint(0, cfg.codebook_size, (batch, cfg.n_tokens))
    with FlopCounterMode(display=False) as counter:
        loss, _ = masked_loss(model, tokens, text.tokens[:batch].cpu(), text.mask[:batch].cpu(),
                              random_mask(batch, cfg.n_tokens), text.pooled[:batch].cpu())
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def markdown(result: dict) -> str:
    names = list(result["models"])
    lines = [f"Peers at equal size on {result['device']} ({result['torch_threads']} threads), torch {result['torch']}: "
             f"training at batch {result['batch_size']}, sampling {result['sample_batch']} images with 12 guided steps, "
             f"median of {result['repeats']} repeats; each run is one line (`python benchmarks/peers.py`).", "",
             "| model | parameters | positions | training GFLOP per step |", "|---|---|---|---|"]
    for name in names:
        m = result["models"][name]
        lines.append(f"| {name} | {m['parameters'] / 1e6:.2f} M ({m['parameters'] / result['models']['ours']['parameters']:.2f}x) "
                     f"| {m['positions']} | {m['train_gflop_per_step']:.0f} |")
    lines += ["", "| precision | run | model | training images/s | MFU | sampling images/s | one guided pass, ms | "
              "ours / peer, training | ours / peer, sampling |", "|---|---|---|---|---|---|---|---|---|"]
    for precision, runs in result["runs"].items():
        for k, run in enumerate(runs):
            for name in names:
                r, o = run[name], run["ours"]
                ratio = ("" if name == "ours" else f"{o['train_images_per_s'] / r['train_images_per_s']:.2f}x",
                         "" if name == "ours" else f"{o['sample_images_per_s'] / r['sample_images_per_s']:.2f}x")
                lines.append(f"| {precision} | {k + 1} | {name} | {r['train_images_per_s']:.1f} | {100 * r['mfu']:.1f} % "
                             f"| {r['sample_images_per_s']:.1f} | {1000 * r['guided_forward_seconds']:.0f} "
                             f"| {ratio[0]} | {ratio[1]} |")
    lines.append("")
    lines.append(f"Matmul peak (2048 x 2048): fp32 {result['matmul_peak_gflops']['fp32']} GFLOP/s, "
                 f"bf16 {result['matmul_peak_gflops']['bf16']} GFLOP/s.")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch")
    parser.add_argument("--sample-batch", type=int, default=32, help="images sampled at once")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each measurement (median)")
    parser.add_argument("--runs", type=int, default=2, help="times the whole measurement is made")
    parser.add_argument("--out", default="benchmarks/results/peers_{device}.json")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    pipe = MusePipeline.load()
    cfg = pipe.transformer.config  # the bundled base model's size, grid and codebook
    models = {"ours": MaskedTransformer(cfg),  # the call the peers are wrapped to
              "muse-maskgit-pytorch": MuseMaskGit(cfg, width=256, layers=4, heads=4),
              "diffusers UVit2DModel": AmusedUVit(cfg, width=256, layers=4, heads=4, intermediate=512, conv_width=128)}
    text = prompts_features(pipe, args.batch_size, device)
    empty = pipe.text_encoder([""] * args.sample_batch).to(device)
    precisions = (["bf16"] if resolve_precision("auto", device) == "bf16" else []) + ["fp32"]  # bf16 where native
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": args.batch_size,
              "sample_batch": args.sample_batch, "repeats": args.repeats,
              "matmul_peak_gflops": {"fp32": round(matmul_peak(device, torch.float32), 1),
                                     "bf16": round(matmul_peak(device, torch.bfloat16), 1)},
              "models": {}, "runs": {p: [] for p in precisions}}
    for name, model in models.items():
        size = sum(p.numel() for p in model.parameters())
        positions = cfg.n_positions if name != "muse-maskgit-pytorch" else cfg.n_tokens
        flops = training_flops(model, text, args.batch_size)
        result["models"][name] = {"parameters": size, "positions": positions, "train_gflop_per_step": flops / 1e9}
        print(f"{name}: {size / 1e6:.2f} M parameters, {positions} positions, {flops / 1e9:.0f} GFLOP per training step")
        model.to(device)
    for run in range(args.runs):
        for precision in precisions:
            figures = {}
            for name, model in models.items():
                figures[name] = measure(model, text, empty, args, device, precision)
                gflops = result["models"][name]["train_gflop_per_step"] / figures[name]["train_step_seconds"]
                figures[name]["mfu"] = round(gflops / result["matmul_peak_gflops"][precision], 4)
                print(f"run {run + 1}, {precision}, {name}: {figures[name]}", flush=True)
            result["runs"][precision].append(figures)
    out = Path(args.out.format(device=device.type))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
