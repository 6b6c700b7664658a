"""The sampler S: MaskGIT's parallel iterative decoding, with classifier-free guidance.

Start from a grid where every token is [MASK]. At each of K steps:
  1. ask for the logits of every position (`logits_fn(tokens)`: any function, so guidance, adapter
     guidance and the mixing of two adapters are all just other logits functions);
  2. sample a token for every masked position (softmax with `temperature`);
  3. keep the most confident samples and mask the rest again, so that cos(pi/2 * k/K) of the grid
     is still masked after step k. Gumbel noise scaled by `choice_temperature * (1 - k/K)` is added
     to the log-confidences, so early choices explore and late ones are greedy.
After K steps no token is masked: K forward passes make the whole image, where decoding one token at
a time would take N (256 for the bundled 16x16 grid).

Classifier-free guidance mixes the logits with and without the prompt:
    l = l_uncond + s * (l_cond - l_uncond)     (s = 0: unconditional, s = 1: plain conditional)

Chapter 03: tutorials/03_masked_transformer.ipynb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .adapters import gate
from .text_encoder import TextFeatures

LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # tokens (B, N) -> logits (B, N, K)


@dataclass
class SamplerSettings:
    # Defaults from benchmarks/sampler_sweep.py (judge accuracies on 200 prompts of the seen styles):
    # guidance above 3 lowers every accuracy; 2 with temperature 0.7 is the best balance we found.
    steps: int = 12
    temperature: float = 0.7  # softmax temperature when sampling tokens
    choice_temperature: float = 2.0  # Gumbel noise on the confidences, annealed to 0
    guidance_scale: float = 2.0  # classifier-free guidance scale s (diffusers' name); for adapters see AdapterGuidance

    def check(self) -> "SamplerSettings":
        if not 1 <= self.steps <= 256:
            raise ValueError(f"steps must lie in [1, 256], got {self.steps}")
        if not 0 < self.temperature <= 100:
            raise ValueError(f"temperature must lie in (0, 100], got {self.temperature}")
        if not 0 <= self.choice_temperature <= 100:
            raise ValueError(f"choice_temperature must lie in [0, 100], got {self.choice_temperature}")
        if not -10 <= self.guidance_scale <= 50:
            raise ValueError(f"guidance_scale must lie in [-10, 50], got {self.guidance_scale}")
        return self


# A bound on absurd values (NaN, inf and 1e9 gave black grids), far outside anything measured: the paper
# uses lambda_A 0-2 and lambda_B 5, our sweeps (benchmarks/style_sweep.py, feedback_sweep.py) lambda_A <= 2
# and lambda_B <= 5.
LAMBDA_RANGE = (-10.0, 50.0)


@dataclass(frozen=True)
class AdapterGuidance:
    """StyleDrop's adapter guidance weights (paper Eq. 4): λ_A pushes along the adapter's own
    direction (adapted − base), λ_B is the base model's classifier-free term. Checked on creation:
    NaN or inf would silently give black images. Defaults from benchmarks/style_sweep.py."""
    lambda_a: float = 1.0
    lambda_b: float = 3.0

    def __post_init__(self):
        low, high = LAMBDA_RANGE
        for name, value in (("lambda_A", self.lambda_a), ("lambda_B", self.lambda_b)):
            if not (isinstance(value, (int, float)) and low <= value <= high):  # also False for NaN
                raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value}")

    @staticmethod
    def of(value) -> "AdapterGuidance":
        """An AdapterGuidance, a (λ_A, λ_B) pair (older run manifests) or a {"lambda_a", "lambda_b"}
        dict (as run manifests store it) -> an AdapterGuidance."""
        if isinstance(value, AdapterGuidance):
            return value
        if isinstance(value, dict):
            return AdapterGuidance(**value)
        return AdapterGuidance(*value)


GUIDANCE = AdapterGuidance()  # the library's default (λ_A, λ_B) = (1, 3)


def check_gamma(gamma: float) -> float:
    """The mixing weight γ of Sec. 3.4 lies in [0, 1]."""
    if not 0 <= gamma <= 1:  # also False for NaN
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    return gamma


def masked_after(step: int, steps: int, n_tokens: int) -> int:
    """How many tokens are still masked after decoding step `step` (0-based) of `steps`."""
    return math.floor(n_tokens * math.cos(math.pi / 2 * (step + 1) / steps))


def _row_generators(seeds: list[int], device) -> list[torch.Generator]:
    # One generator per image: image i with seed s comes out the same in any batch.
    return [torch.Generator(device).manual_seed(int(s)) for s in seeds]


def _gumbel(shape, generators, device) -> torch.Tensor:
    u = torch.stack([torch.rand(shape, generator=g, device=device) for g in generators])
    return -torch.log((-torch.log(u.clamp(1e-20, 1.0))).clamp_min(1e-20))


@torch.no_grad()
def decode(logits_fn: LogitsFn, seeds: list[int], n_tokens: int, mask_id: int,
           settings: SamplerSettings = SamplerSettings(), device="cpu", keep_steps: bool = False,
           initial: torch.Tensor | None = None):
    """MaskGIT decoding of len(seeds) token grids. Returns tokens (B, N), or (tokens, [tokens after
    each step]) with `keep_steps` (masked positions hold `mask_id`). `initial` (B, N) starts from a
    partly known grid (`mask_id` where unknown; an edit re-masks part of an image): known tokens stay,
    and the cosine schedule runs over the tokens masked at the start."""
    settings.check()
    device = torch.device(device)
    generators = _row_generators(seeds, device)
    tokens = torch.full((len(seeds), n_tokens), mask_id, dtype=torch.long, device=device)
    if initial is not None:
        if initial.shape != tokens.shape:
            raise ValueError(f"initial tokens must have shape {tuple(tokens.shape)}, got {tuple(initial.shape)}")
        tokens = initial.to(device).long().clone()
    to_fill = int((tokens == mask_id).sum(1).max())  # the schedule runs over what is masked at the start
    history = []
    for step in range(settings.steps):
        masked = tokens == mask_id
        logits = logits_fn(tokens).float()
        # 2. sample every position (Gumbel-max = sampling from softmax(logits / temperature))
        sampled = (logits / settings.temperature + _gumbel(logits.shape[1:], generators, device)).argmax(-1)
        sampled = torch.where(masked, sampled, tokens)
        # 3. confidence of each sample; tokens fixed earlier are never re-masked
        confidence = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]
        anneal = settings.choice_temperature * (1 - (step + 1) / settings.steps)
        confidence = confidence + anneal * _gumbel((n_tokens,), generators, device)
        confidence = confidence.masked_fill(~masked, float("inf"))
        n_keep_masked = masked_after(step, settings.steps, to_fill)
        # never leave more masked than before, and unmask at least one token per step
        n_keep_masked = max(0, min(n_keep_masked, int(masked.sum(1).min()) - 1))
        if n_keep_masked > 0:
            lowest = confidence.argsort(-1)[:, :n_keep_masked]
            sampled = sampled.scatter(1, lowest, mask_id)
        tokens = sampled
        if keep_steps:
            history.append(tokens.clone())
    return (tokens, history) if keep_steps else tokens


def conditional_logits(model, text: TextFeatures) -> LogitsFn:
    """The model's logits with one prompt's features per image."""
    return lambda tokens: model(tokens, text.tokens, text.mask, text.pooled)


def guided_logits(model, cond: TextFeatures, uncond: TextFeatures, scale: float) -> LogitsFn:
    """Classifier-free guidance: l_u + s (l_c - l_u), with both passes in one batch."""
    def logits_fn(tokens):
        both = model(torch.cat([tokens, tokens]), torch.cat([cond.tokens, uncond.tokens]),
                     torch.cat([cond.mask, uncond.mask]), torch.cat([cond.pooled, uncond.pooled]))
        l_cond, l_uncond = both.chunk(2)
        return l_uncond + scale * (l_cond - l_uncond)
    return logits_fn


@torch.no_grad()
def decode_one_at_a_time(logits_fn: LogitsFn, seeds: list[int], n_tokens: int, mask_id: int,
                         temperature: float = 1.0, device="cpu") -> torch.Tensor:
    """The slow baseline: N forward passes, each fixing the single most confident masked token."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    device = torch.device(device)
    generators = _row_generators(seeds, device)
    tokens = torch.full((len(seeds), n_tokens), mask_id, dtype=torch.long, device=device)
    for _ in range(n_tokens):
        masked = tokens == mask_id
        logits = logits_fn(tokens).float()
        sampled = (logits / temperature + _gumbel(logits.shape[1:], generators, device)).argmax(-1)
        confidence = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0].masked_fill(~masked, -float("inf"))
        best = confidence.argmax(-1, keepdim=True)
        tokens = tokens.scatter(1, best, sampled.gather(1, best))
    return tokens


def adapter_guidance(adapted: torch.Tensor, base: torch.Tensor, base_uncond: torch.Tensor,
                     guidance: AdapterGuidance = GUIDANCE) -> torch.Tensor:
    """Paper Eq. 4 on logits already computed: Ĝ(v,t) + λ_A (Ĝ(v,t) − G(v,t)) + λ_B (G(v,t) − G(v,n))."""
    return adapted + guidance.lambda_a * (adapted - base) + guidance.lambda_b * (base - base_uncond)


def mix(style_logits: torch.Tensor, content_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """Paper Sec. 3.4 on logits already computed: (1 − γ) l^s + γ l^c (γ 0 and 1 return one side exactly)."""
    check_gamma(gamma)
    if gamma == 0:
        return style_logits
    if gamma == 1:
        return content_logits
    return (1 - gamma) * style_logits + gamma * content_logits


def adapter_guided_logits(model, cond: TextFeatures, uncond: TextFeatures, guidance: AdapterGuidance = GUIDANCE,
                          base=None) -> LogitsFn:
    """StyleDrop's adapter guidance (paper Eq. 4), for a model with adapters attached:

        l = Ĝ(v,t;θ) + λ_A (Ĝ(v,t;θ) − G(v,t)) + λ_B (G(v,t) − G(v,n))

    Ĝ, G and the unconditional G run as one batch of three, the adapters gated off for the last two.
    λ_A = λ_B = 0 is the plain adapted model; λ_A = 0 keeps only the base model's guidance term.
    A fully fine-tuned copy has no adapters to gate off: pass the frozen base model as `base`."""
    def logits_fn(tokens):
        B = len(tokens)
        if base is None:
            gates = torch.cat([torch.ones(B), torch.zeros(2 * B)])
            with gate(model, gates):
                both = model(torch.cat([tokens] * 3), torch.cat([cond.tokens, cond.tokens, uncond.tokens]),
                             torch.cat([cond.mask, cond.mask, uncond.mask]),
                             torch.cat([cond.pooled, cond.pooled, uncond.pooled]))
            adapted, g, g_uncond = both.chunk(3)
        else:
            adapted = model(tokens, cond.tokens, cond.mask, cond.pooled)
            g, g_uncond = base(torch.cat([tokens] * 2), torch.cat([cond.tokens, uncond.tokens]),
                               torch.cat([cond.mask, uncond.mask]), torch.cat([cond.pooled, uncond.pooled])).chunk(2)
        return adapter_guidance(adapted, g, g_uncond, guidance)
    return logits_fn


def mixed_logits(style_model, content_model, styled: TextFeatures, content: TextFeatures, uncond: TextFeatures,
                 guidance: AdapterGuidance, gamma: float) -> LogitsFn:
    """StyleDrop's mixing of a style adapter θ_s and a content (DreamBooth) adapter θ_c (paper Sec. 3.4):

        l_k = (1 − γ) l_k^s + γ l_k^c

    each term the Eq. 4 logits of its own adapter; l^s sees the styled prompt t, l^c the prompt c
    without the style descriptor. γ = 0 is StyleDrop alone, γ = 1 DreamBooth alone."""
    check_gamma(gamma)
    style_fn = adapter_guided_logits(style_model, styled, uncond, guidance)
    content_fn = adapter_guided_logits(content_model, content, uncond, guidance)

    def logits_fn(tokens):
        if gamma in (0, 1):  # one adapter alone: skip the other's three forward passes
            return (content_fn if gamma else style_fn)(tokens)
        return mix(style_fn(tokens), content_fn(tokens), gamma)
    return logits_fn
