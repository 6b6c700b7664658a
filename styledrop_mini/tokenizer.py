"""The image tokenizer: a small convolutional VQ autoencoder (encoder E, codebook, decoder D).

Muse never generates pixels: it generates a grid of discrete tokens, and a VQ decoder turns them into
an image. Here a 64x64 image becomes a 16x16 grid of codes from a codebook of 1024 (the grid and
codebook were chosen by measurement: benchmarks/tokenizer_grid.py):

    image (3, 64, 64) --E--> vectors (d, 16, 16) --nearest code--> tokens (16, 16) --D--> image

The nearest-code lookup has no gradient, so training uses the straight-through estimator (copy the
decoder's gradient onto the encoder output), a commitment loss that keeps the encoder close to its
codes, and exponential-moving-average (EMA) codebook updates with restarts of dead codes (codes no
image uses are moved onto random encoder outputs, so the whole codebook stays in use).

Chapter 01: tutorials/01_image_tokenizer.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoints import load_model, save_model

KIND = "tokenizer"


@dataclass
class TokenizerConfig:
    image_size: int = 64
    channels: tuple = (32, 64)  # one entry per 2x downsampling: 64 -> 32 -> 16, a 16x16 token grid
    codebook_size: int = 1024
    code_dim: int = 32
    commitment: float = 0.25  # beta in the VQ-VAE loss
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.03  # EMA usage below this (images' worth per batch) -> restart

    @property
    def grid(self) -> int:
        return self.image_size // 2 ** len(self.channels)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.block(x)


# Sized for a laptop CPU: the strided convolutions do the downsampling, and the residual blocks
# (where most of the thinking happens) run at the small resolutions, where they are cheap.
class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        layers, width = [], 3
        for c in cfg.channels:  # each level halves the resolution: 64 -> 32 -> 16 -> 8
            layers += [nn.Conv2d(width, c, 4, stride=2, padding=1), nn.SiLU()]
            width = c
        layers += [ResBlock(width), ResBlock(width), nn.GroupNorm(8, width), nn.SiLU(),
                   nn.Conv2d(width, cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images):
        return self.net(images * 2 - 1)  # [0, 1] -> [-1, 1]


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        width = cfg.channels[-1]
        layers = [nn.Conv2d(cfg.code_dim, width, 3, padding=1), ResBlock(width), ResBlock(width)]
        for c in reversed(cfg.channels[:-1]):  # 8 -> 16 -> 32 px, a residual block at each
            layers += [nn.ConvTranspose2d(width, c, 4, stride=2, padding=1), ResBlock(c)]
            width = c
        layers += [nn.GroupNorm(8, width), nn.SiLU(), nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return (self.net(z) + 1) / 2  # back to [0, 1] (not clamped: the loss sees the raw output)


class Quantizer(nn.Module):
    """Nearest-neighbour codebook with EMA updates and dead-code restarts."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("codebook", torch.randn(cfg.codebook_size, cfg.code_dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(cfg.codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean distance) for each vector of z (..., d)."""
        flat = z.reshape(-1, z.shape[-1]).float()
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T
                + self.codebook.pow(2).sum(1)[None])
        return dist.argmin(1).reshape(z.shape[:-1])

    def forward(self, z: torch.Tensor):
        """z (B, d, h, w) -> quantised z (straight-through), tokens (B, h, w), commitment loss."""
        z = z.permute(0, 2, 3, 1).float()  # (B, h, w, d)
        tokens = self.lookup(z)
        q = self.codebook[tokens]
        if self.training:
            self._ema_update(z.reshape(-1, z.shape[-1]), tokens.reshape(-1))
        commitment = self.cfg.commitment * F.mse_loss(z, q.detach())
        q = z + (q - z).detach()  # straight-through: forward uses q, backward flows into z
        return q.permute(0, 3, 1, 2), tokens, commitment

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, tokens: torch.Tensor) -> None:
        decay = self.cfg.ema_decay
        onehot = F.one_hot(tokens, self.cfg.codebook_size).type(flat.dtype)
        self.ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(onehot.T @ flat, alpha=1 - decay)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.cfg.codebook_size * 1e-5) * n  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / count[:, None])
        dead = self.ema_count < self.cfg.dead_code_threshold
        if dead.any():  # restart unused codes on random encoder outputs of this batch
            pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
            self.codebook[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0


class VQTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig | None = None):
        super().__init__()
        self.config = config or TokenizerConfig()
        self.config.channels = tuple(self.config.channels)
        self.encoder = Encoder(self.config)
        self.quantizer = Quantizer(self.config)
        self.decoder = Decoder(self.config)

    def _check(self, images):
        s = self.config.image_size
        if images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"expected images of shape (B, 3, {s}, {s}), got {tuple(images.shape)}")

    def forward(self, images):
        """images (B, 3, H, W) in [0, 1] -> reconstruction, tokens, commitment loss."""
        self._check(images)
        q, tokens, commitment = self.quantizer(self.encoder(images))
        return self.decoder(q), tokens, commitment

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1] -> LongTensor tokens (B, h, w)."""
        self._check(images)
        z = self.encoder(images.to(self.quantizer.codebook.device)).permute(0, 2, 3, 1)
        return self.quantizer.lookup(z)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """LongTensor tokens (B, h, w) -> images (B, 3, H, W) in [0, 1]."""
        if tokens.dtype != torch.long or tokens.ndim != 3:
            raise ValueError(f"expected a LongTensor of shape (B, h, w), got {tokens.dtype} {tuple(tokens.shape)}")
        if tokens.min() < 0 or tokens.max() >= self.config.codebook_size:
            raise ValueError(f"token ids must lie in [0, {self.config.codebook_size}), "
                             f"got [{int(tokens.min())}, {int(tokens.max())}]")
        q = self.quantizer.codebook[tokens.to(self.quantizer.codebook.device)].permute(0, 3, 1, 2)
        return self.decoder(q).clamp(0, 1)

    def save(self, path, info=None, dtype=None):
        return save_model(self, path, KIND, info, dtype)

    @staticmethod
    def load(path, device="cpu") -> "VQTokenizer":
        return load_model(VQTokenizer, TokenizerConfig, path, KIND, device)


def tokenizer_loss(model: VQTokenizer, batch: dict):
    """Reconstruction (MSE + L1, in pixel space) plus the commitment term."""
    images = batch["image"]
    recon, tokens, commitment = model(images)
    recon = recon.float()
    mse = F.mse_loss(recon, images)
    loss = mse + 0.1 * F.l1_loss(recon, images) + commitment
    used = tokens.unique().numel() / model.config.codebook_size
    return loss, {"psnr": float(-10 * torch.log10(mse.detach())), "codes_used": used}


@torch.no_grad()
def reconstruct(tokenizer: VQTokenizer, images: torch.Tensor, batch_size: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions, tokens) of images (B, 3, H, W) in [0, 1], in batches on the tokenizer's
    device, returned on the CPU."""
    device = tokenizer.quantizer.codebook.device
    recons, tokens = [], []
    for i in range(0, len(images), batch_size):
        t = tokenizer.encode(images[i:i + batch_size].to(device))
        tokens.append(t.cpu())
        recons.append(tokenizer.decode(t).cpu())
    return torch.cat(recons), torch.cat(tokens)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)
