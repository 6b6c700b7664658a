"""The masked transformer G: Muse's bidirectional generator over a grid of image tokens.

Muse synthesises an image as I = D(S(G, T(t))). Here G sees the 16x16 token grid of an image, some
of whose tokens are replaced by a [MASK] token, and predicts the codebook logits of every token,
conditioned on the text features T(t). Each 2x2 block of tokens shares one position (`patch`), so
attention runs over 8x8 = 64 positions:

    tokens (B, 256) --embed 2x2 patches + position--> x (B, 64, d)
        --> L x Block: x += SelfAttention(LN' x);  [after_attn]
                       x += CrossAttention(LN' x, text);  [after_cross]
                       x += MLP(LN' x);  [after_mlp]
        --> LN --> head: 4 tokens' logits per position --> logits (B, 256, codebook)

    LN' x = LN(x) * (1 + scale) + shift,   (scale, shift) = Linear(SiLU(pooled prompt embedding))

The text reaches the image twice. Cross-attention lets each position read the prompt's words, as in
Muse. The pooled embedding (CLIP's one vector per prompt) also sets every LayerNorm's scale and shift,
as DiT's adaLN and aMUSEd's U-ViT do. Cross-attention alone learnt the look of an image long before
its content: after 1000 steps, 7 % content at guidance 4, against 27 % with the modulation
(benchmarks/conditioning_ablation.py). The modulation starts at zero, so an untrained G begins as the
plain model; `pooled_width = 0` turns it off (the first world's base).

The 16x16 grid carries far more detail than 8x8 (notebook 01), but a transformer's cost grows with
its sequence. With `patch` = 2, each position holds a 2x2 patch of tokens, as aMUSEd's U-ViT
downsamples its token grid before its transformer: the four tokens' embeddings are concatenated into
one vector of `width`, and the head predicts the four tokens' logits from that position. Attention
and MLPs then cost what they cost at 64 positions; masking and the loss stay per token.

Every block has three named places, `after_attn`, `after_cross` and `after_mlp`, that are identity
modules in the base model. StyleDrop's adapters (adapters.py) replace them; nothing here changes.

Training is MaskGIT's: draw r ~ U(0, 1), mask ceil(cos(pi r / 2) N) tokens, and take the
cross-entropy on the masked positions only. For ~10 % of examples the prompt is replaced by the
empty prompt, so the same model also gives the unconditional logits that guidance needs.

Chapter 03: tutorials/03_masked_transformer.ipynb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import world
from .checkpoints import load_model, save_model
from .text_encoder import TextFeatures

KIND = "transformer"


@dataclass
class TransformerConfig:
    codebook_size: int = 512  # the tokenizer's codebook; id `codebook_size` is [MASK]
    grid: int = 8  # tokens per side (the bundled tokenizer's grid is 16: recipes.build reads it)
    patch: int = 1  # tokens per side of one position: 2 makes a 16x16 grid 64 positions of 2x2 tokens
    width: int = 256
    layers: int = 4
    heads: int = 4
    text_width: int = 128  # width of the text encoder's per-token features
    mlp_ratio: int = 4
    cond_dropout: float = 0.1  # share of training prompts replaced by the empty prompt
    pooled_width: int = 0  # width of the prompt's pooled embedding that modulates the norms (0: none)
    text_words: bool = False  # the prompt features carry each word's own embedding too (ClipTextEncoder words)

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    @property
    def n_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def n_positions(self) -> int:
        return (self.grid // self.patch) ** 2


class SelfAttention(nn.Module):
    """Bidirectional attention over the image tokens: every token sees every other (no causal mask)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    """Image tokens (queries) attend to the prompt's tokens (keys and values); padding is masked out."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.width, cfg.width)
        self.kv = nn.Linear(cfg.text_width, 2 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)

    def forward(self, x, text, text_mask):
        B, N, C = x.shape
        T = text.shape[1]
        q = self.q(x).view(B, N, self.heads, C // self.heads).transpose(1, 2)
        k, v = self.kv(text).view(B, T, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=text_mask[:, None, None, :])
        return self.out(y.transpose(1, 2).reshape(B, N, C))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.up = nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width)
        self.down = nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm block: self-attention, cross-attention to the text, MLP; each adds to the residual."""

    ADAPTER_PLACES = ("after_attn", "after_cross", "after_mlp")

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_attn, self.attn = nn.LayerNorm(cfg.width), SelfAttention(cfg)
        self.norm_cross, self.cross = nn.LayerNorm(cfg.width), CrossAttention(cfg)
        self.norm_mlp, self.mlp = nn.LayerNorm(cfg.width), MLP(cfg)
        # Where adapters attach: identities in the base model, replaced by adapters.py.
        self.after_attn, self.after_cross, self.after_mlp = nn.Identity(), nn.Identity(), nn.Identity()

    def forward(self, x, text, text_mask, modulation=None):
        """modulation: six (B, 1, width) tensors, scale and shift of each of the three norms; or None."""
        m = modulation if modulation is not None else (0,) * 6
        x = self.after_attn(x + self.attn(self.norm_attn(x) * (1 + m[0]) + m[1]))
        x = self.after_cross(x + self.cross(self.norm_cross(x) * (1 + m[2]) + m[3], text, text_mask))
        return self.after_mlp(x + self.mlp(self.norm_mlp(x) * (1 + m[4]) + m[5]))


class MaskedTransformer(nn.Module):
    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = cfg = config or TransformerConfig()
        self.adapter_config = None  # set by adapters.attach (and adapters.load_adapter)
        self.adapter_info = None  # the loaded adapter file's adapters.AdapterInfo (adapters.load_adapter)
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} must be a multiple of heads {cfg.heads}")
        per_patch = cfg.patch ** 2
        if cfg.grid % cfg.patch or cfg.width % per_patch:
            raise ValueError(f"patch {cfg.patch} must divide grid {cfg.grid}, and its {per_patch} tokens the width "
                             f"{cfg.width}")
        # +1: the [MASK] token. A patch's tokens share the width: their embeddings are concatenated.
        self.token_embedding = nn.Embedding(cfg.codebook_size + 1, cfg.width // per_patch)
        self.position_embedding = nn.Parameter(torch.zeros(1, cfg.n_positions, cfg.width))
        self.text_norm = nn.LayerNorm(cfg.text_width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, per_patch * cfg.codebook_size)  # never predicts [MASK]
        self.apply(self._init)
        nn.init.normal_(self.position_embedding, std=0.02)
        # Six vectors per block (scale and shift of its three norms) from the pooled prompt embedding,
        # zero at the start: the untrained model is the plain one (made last, so the other weights
        # start as they do without it).
        self.modulation = None
        if cfg.pooled_width:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.pooled_width, cfg.layers * 6 * cfg.width))
            nn.init.zeros_(self.modulation[1].weight)
            nn.init.zeros_(self.modulation[1].bias)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, N) with [MASK] where unknown; text (B, T, text_width); text_mask (B, T) bool
        (True = a real token); pooled (B, pooled_width), when the config has one -> logits (B, N, codebook_size)."""
        cfg = self.config
        if tokens.ndim != 2 or tokens.shape[1] != cfg.n_tokens:
            raise ValueError(f"expected tokens of shape (B, {cfg.n_tokens}), got {tuple(tokens.shape)}")
        if cfg.pooled_width and (pooled is None or pooled.shape[-1] != cfg.pooled_width):
            got = "none" if pooled is None else f"width {pooled.shape[-1]}"
            raise ValueError(f"this transformer needs the prompt's pooled embedding (width {cfg.pooled_width}), got {got}")
        B, g, p = len(tokens), cfg.grid, cfg.patch
        x = self.token_embedding(to_patches(tokens, g, p)).flatten(2)  # (B, P, p*p, width/p^2) -> (B, P, width)
        x = x + self.position_embedding
        text = self.text_norm(text)
        # (B, layers, 6, 1, width): per block, scale and shift of its three norms, the same at every position
        mods = self.modulation(pooled).view(B, cfg.layers, 6, 1, cfg.width) if self.modulation is not None else None
        for i, block in enumerate(self.blocks):
            x = block(x, text, text_mask, None if mods is None else mods[:, i].unbind(1))
        logits = self.head(self.norm(x)).view(B, -1, p * p, cfg.codebook_size)  # (B, P, p*p, K)
        return from_patches(logits, g, p)  # (B, N, K)

    def save(self, path, info=None, dtype=None):
        return save_model(self, path, KIND, info, dtype)

    @staticmethod
    def load(path, device="cpu") -> "MaskedTransformer":
        return load_model(MaskedTransformer, TransformerConfig, path, KIND, device)


def to_patches(tokens: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """(B, grid*grid) row-major tokens -> (B, positions, patch*patch): each row one patch's tokens."""
    B, side = len(tokens), grid // patch
    return tokens.view(B, side, patch, side, patch).transpose(2, 3).reshape(B, side * side, patch * patch)


def from_patches(x: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """The inverse of to_patches, for anything with trailing features: (B, P, p*p, ...) -> (B, N, ...)."""
    B, side, rest = len(x), grid // patch, x.shape[3:]
    return x.reshape(B, side, side, patch, patch, *rest).transpose(2, 3).reshape(B, grid * grid, *rest)


# ----------------------------------------------------------------------------------------------
# The MaskGIT training objective
# ----------------------------------------------------------------------------------------------
def mask_ratio(r: torch.Tensor) -> torch.Tensor:
    """The cosine schedule: the share of tokens masked at progress r in [0, 1] (1 at r=0, 0 at r=1)."""
    return torch.cos(math.pi / 2 * r)


def random_mask(batch: int, n_tokens: int, generator: torch.Generator | None = None,
                device="cpu") -> torch.Tensor:
    """A bool mask (B, N) with ceil(cos(pi r / 2) N) masked tokens per row, r ~ U(0, 1) per row."""
    r = torch.rand(batch, generator=generator, device=device)
    n_masked = torch.ceil(mask_ratio(r) * n_tokens).clamp(1, n_tokens)
    # Rank random scores: the n_masked lowest of each row are masked (a uniform random subset).
    ranks = torch.rand(batch, n_tokens, generator=generator, device=device).argsort(-1).argsort(-1)
    return ranks < n_masked[:, None]


def masked_loss(model: MaskedTransformer, tokens: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                mask: torch.Tensor, pooled: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the masked positions only. Returns (loss, logits)."""
    inputs = tokens.masked_fill(mask, model.config.mask_id)
    logits = model(inputs, text, text_mask, pooled)
    return F.cross_entropy(logits[mask].float(), tokens[mask]), logits


# ----------------------------------------------------------------------------------------------
# Training the base model: prompts as people will write them, and the loss that `fit` calls
# ----------------------------------------------------------------------------------------------
def training_prompt(caption: str, colour: str, u: float) -> str:
    """The image's caption most of the time; a third of the time without its colour word, because
    StyleDrop prompts name content and style only ("a letter A in watercolor painting style")."""

    return caption if u < 2 / 3 else world.without_colour(caption, colour)


def base_loss_fn(text_encoder, cond_dropout: float = 0.1):
    """MaskGIT loss for `training.fit` on a TokenBank of captioned token grids. Random choices use
    torch's global generator, which `fit` seeds at every step, so a resumed run draws the same masks
    and prompts."""

    colours = list(world.COLOURS)

    def loss_fn(model: MaskedTransformer, batch: dict):
        tokens = batch["tokens"]
        B, device = len(tokens), tokens.device
        choice, drop = torch.rand(B).tolist(), (torch.rand(B) < cond_dropout).tolist()
        prompts = ["" if d else training_prompt(caption, colours[k], u)
                   for caption, k, u, d in zip(batch["text"], batch["colour_id"].tolist(), choice, drop)]
        text_encoder.to(device)  # the frozen text tower runs where the model trains (a no-op after the first step)
        text = text_encoder(prompts).to(device)
        mask = random_mask(B, model.config.n_tokens, device=device)
        loss, logits = masked_loss(model, tokens, text.tokens, text.mask, mask, text.pooled)
        acc = (logits[mask].argmax(-1) == tokens[mask]).float().mean()
        return loss, {"masked_acc": float(acc)}

    return loss_fn


def prompt_loss_fn(text_encoder):
    """MaskGIT loss on token grids that come with their own prompts (`batch["text"]`): what tuning an
    adapter on a reference image, or on images picked by feedback, uses."""
    cache: dict[str, object] = {}

    def loss_fn(model: MaskedTransformer, batch: dict):
        tokens = batch["tokens"]
        missing = [p for p in dict.fromkeys(batch["text"]) if p not in cache]
        if missing:  # a handful of distinct prompts: encode each once
            feats = text_encoder(missing)
            cache.update({p: feats[i:i + 1] for i, p in enumerate(missing)})
        text = TextFeatures.cat([cache[p] for p in batch["text"]]).to(tokens.device)
        mask = random_mask(len(tokens), model.config.n_tokens, device=tokens.device)
        loss, logits = masked_loss(model, tokens, text.tokens, text.mask, mask, text.pooled)
        return loss, {"masked_acc": float((logits[mask].argmax(-1) == tokens[mask]).float().mean())}

    return loss_fn
