"""How fast the masked transformer trains and samples, against what the machine can do.

    python benchmarks/transformer_speed.py                 # CPU, the bundled base model's config
    python benchmarks/transformer_speed.py --device cuda   # GPU (bf16 autocast for training)

Reports, as JSON (and a markdown table on stdout):
  - the measured matmul peak (square 2048 matmuls, fp32 and bf16), in GFLOP/s;
  - training throughput in tokens/s with the recipe's attention kernel and the other one, and model
    FLOPs utilisation (MFU) = model FLOPs per second / measured peak, with
    model FLOPs = 6 x (non-embedding parameters) x tokens + attention;
  - sampling throughput in images/s at K = 8 and 12 steps (classifier-free guidance: 2 passes per step);
  - parallel decoding versus one-token-at-a-time decoding of the same model: forward passes and wall time.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from styledrop_mini.sampling import SamplerSettings, decode, decode_one_at_a_time, guided_logits
from styledrop_mini.settings import CHECKPOINT_DIR
from styledrop_mini.text_encoder import TextFeatures
from styledrop_mini.devices import autocast, pick_device, resolve_precision
from styledrop_mini.recipes import RECIPES
from styledrop_mini.training import attention_kernel
from styledrop_mini.transformer import MaskedTransformer, TransformerConfig, masked_loss, random_mask


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def matmul_peak(device, dtype, size: int = 2048) -> float:
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, 20 if device.type == "cuda" else 5)
    return 2 * size ** 3 / seconds / 1e9


def model_flops_per_token(cfg: TransformerConfig, text_len: int) -> float:
    """Forward + backward FLOPs per image token (the PaLM/nanoGPT estimate, plus attention scores)."""
    d, L, N = cfg.width, cfg.layers, cfg.n_tokens
    per_layer = 4 * d * d + 2 * d * d + 2 * cfg.mlp_ratio * d * d  # self qkv+out, cross q+out, MLP up+down
    kv_text = 2 * cfg.text_width * d * text_len / N  # the text's keys and values, shared by the image tokens
    params = L * (per_layer + kv_text) + d * cfg.codebook_size
    attention = L * 2 * 2 * d * (N + text_len)  # scores and weighted sums, self and cross
    return 6 * params + 3 * attention


def text_features(batch: int, length: int, cfg: TransformerConfig, device) -> TextFeatures:
    mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    mask[:, 12:] = False
    pooled = torch.randn(batch, cfg.pooled_width or cfg.text_width, device=device)
    return TextFeatures(torch.randn(batch, length, cfg.text_width, device=device), mask, pooled)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=RECIPES["base"].batch_size,
                        help="training batch (default: the base recipe's)")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                        help="training autocast, as in `styledrop-mini train base --precision` (auto: bf16 where "
                             "native, see styledrop_mini/devices.py)")
    parser.add_argument("--attention", default=RECIPES["base"].attention, choices=["auto", "math"],
                        help="SDPA kernel for training (default: the base recipe's); the other is timed too")
    parser.add_argument("--sample-batch", type=int, default=32)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT_DIR / "base.safetensors"),
                        help="model to time (its config and weights); a fresh default model if missing")
    parser.add_argument("--out", default="benchmarks/results/transformer_speed_{device}.json")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    path = Path(args.checkpoint)
    model = MaskedTransformer.load(path, device) if path.exists() else MaskedTransformer().to(device)
    cfg, text_len = model.config, 20
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "config": cfg.__dict__}

    # MFU is measured against the peak of the precision the matmuls run in (bf16 under autocast).
    bf16 = resolve_precision(args.precision, device) == "bf16"
    result["precision"] = "bf16 autocast" if bf16 else "fp32"
    result["matmul_peak_gflops_fp32"] = round(matmul_peak(device, torch.float32), 1)
    result["matmul_peak_gflops_bf16"] = round(matmul_peak(device, torch.bfloat16), 1)
    result["matmul_peak_gflops"] = result["matmul_peak_gflops_bf16" if bf16 else "matmul_peak_gflops_fp32"]

    # --- training: forward + backward + AdamW step on one batch ---
    B = args.batch_size
    tokens = torch.randint(0, cfg.codebook_size, (B, cfg.n_tokens), device=device)
    text = text_features(B, text_len, cfg, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def train_step():
        with autocast(device, args.precision):
            loss, _ = masked_loss(model, tokens, text.tokens, text.mask, random_mask(B, cfg.n_tokens, device=device),
                                  text.pooled)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    result["train"], result["train_other_attention"] = {}, {}
    other = "auto" if args.attention == "math" else "math"
    for key, kernel in (("train", args.attention), ("train_other_attention", other)):
        with attention_kernel(kernel):
            seconds = timed(train_step, device, 20)
        tokens_per_s = B * cfg.n_tokens / seconds
        flops = model_flops_per_token(cfg, text_len) * tokens_per_s / 1e9
        result[key] = {"attention": kernel, "batch_size": B, "step_seconds": round(seconds, 4),
                       "tokens_per_s": round(tokens_per_s), "images_per_s": round(B / seconds, 1),
                       "model_gflops": round(flops, 1), "mfu": round(flops / result["matmul_peak_gflops"], 3)}
    model.eval()

    # --- sampling: images/s at K = 8 and 12, with guidance (2 forward passes per step) ---
    S = args.sample_batch
    cond, uncond = text_features(S, text_len, cfg, device), text_features(S, text_len, cfg, device)
    fn = guided_logits(model, cond, uncond, 3.0)
    result["sampling"] = {}
    for steps in (8, 12):
        settings = SamplerSettings(steps=steps)
        seconds = timed(lambda: decode(fn, list(range(S)), cfg.n_tokens, cfg.mask_id, settings, device), device, 2)
        result["sampling"][f"K={steps}"] = {"images_per_s": round(S / seconds, 1), "forward_passes": steps,
                                            "seconds_per_batch": round(seconds, 3)}
    seconds = timed(lambda: decode_one_at_a_time(fn, list(range(S)), cfg.n_tokens, cfg.mask_id, device=device),
                    device, 1)
    result["sampling"]["one_token_at_a_time"] = {"images_per_s": round(S / seconds, 1),
                                                 "forward_passes": cfg.n_tokens, "seconds_per_batch": round(seconds, 3)}

    out = Path(args.out.format(device=device.type))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    s = result["sampling"]
    print(f"| device | {result['device']} ({result['torch_threads']} threads) |\n|---|---|\n"
          f"| matmul peak | fp32 {result['matmul_peak_gflops_fp32']}, bf16 {result['matmul_peak_gflops_bf16']} GFLOP/s |\n"
          + "".join(f"| training, {t['attention']} attention | {t['tokens_per_s']} tokens/s ({t['images_per_s']} images/s), "
                    f"{t['model_gflops']} GFLOP/s, MFU {100 * t['mfu']:.1f} % of the {result['precision']} peak |\n"
                    for t in (result["train"], result["train_other_attention"]))
          + "".join(f"| sampling {k} | {v['images_per_s']} images/s, {v['forward_passes']} passes |\n" for k, v in s.items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
