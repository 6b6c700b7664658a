"""The whole generator, I = D(S(G, T(t))): text encoder, masked transformer, sampler, VQ decoder.

    pipe = MusePipeline.load()                         # the bundled checkpoints
    images = pipe.generate(["a red star in pencil sketch style"] * 4, seed=0)   # (4, 3, 64, 64)

Chapter 03: tutorials/03_masked_transformer.ipynb.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .adapters import load_adapter
from .checkpoints import CheckpointError, fingerprint
from .clip import MiniClip
from .judges import Judges
from .sampling import (GUIDANCE, AdapterGuidance, SamplerSettings, adapter_guided_logits, check_gamma, decode,
                       guided_logits, mixed_logits)
from .settings import CHECKPOINT_DIR, missing_data_hint
from .text_encoder import ClipTextEncoder, TextFeatures
from .tokenizer import VQTokenizer
from .transformer import MaskedTransformer


def check_prompts(prompts, allow_empty: bool = False) -> list[str]:
    """A prompt or a list of them, each with words in it (checked before any model runs); with
    `allow_empty`, "" is a prompt too (a picture prompt alone: instantstyle.py)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("no prompts given")
    empty = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not (p.strip() or allow_empty)]
    if empty:
        raise ValueError(f"prompt {empty[0] + 1} is empty; describe what to draw, e.g. \"a red star in flat style\" "
                         "(for unconditional samples use guidance_scale 0 with any prompt)")
    return prompts


class MusePipeline:
    """The generator's parts, and (when loaded from a folder) where they came from: `folder`, the
    base transformer's file and its fingerprint, which every adapter tuned on it records."""

    def __init__(self, tokenizer, text_encoder, transformer, folder=None, transformer_file=None):
        self.tokenizer, self.text_encoder, self.transformer = tokenizer, text_encoder, transformer
        self.folder = Path(folder) if folder else None
        self.transformer_file = Path(transformer_file) if transformer_file else None
        self.base_fingerprint = fingerprint(self.transformer_file) if self.transformer_file else None
        self._judges = None

    @classmethod
    def load(cls, checkpoints=None, device="cpu", transformer: str = "base.safetensors") -> "MusePipeline":
        """The bundled tokenizer, mini CLIP text tower and base transformer (from `checkpoints`)."""
        folder = Path(checkpoints) if checkpoints else CHECKPOINT_DIR
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: no such checkpoints folder{missing_data_hint(folder)}")
        # Each part loads first, so a broken file is named as broken, not as "another tokenizer".
        model = MaskedTransformer.load(folder / transformer, device)
        tokenizer = VQTokenizer.load(folder / "tokenizer.safetensors", device)
        clip = MiniClip.load(folder / "clip.safetensors", device)
        for part in ("tokenizer", "clip"):  # the generator only makes sense with the parts it was trained on
            expected = model.info.get(f"{part}_fingerprint")
            if expected and expected != fingerprint(folder / f"{part}.safetensors"):
                raise CheckpointError(f"{folder / transformer} was trained with another {part} "
                                      f"(fingerprint {expected}) than {folder / f'{part}.safetensors'}; "
                                      f"retrain it, or use the {part} it was trained with")
        return cls(tokenizer, ClipTextEncoder(clip, words=model.config.text_words), model, folder, folder / transformer)

    @property
    def clip(self) -> MiniClip:
        """The mini CLIP whose text tower conditions this generator (its image tower scores images)."""
        return self.text_encoder.clip

    def judges(self) -> Judges:
        """The ground-truth judges of this pipeline's folder (loaded once)."""
        if self._judges is None:
            if self.folder is None:
                raise ValueError("this pipeline was not loaded from a folder: load the judges with Judges.load")
            self._judges = Judges.load(self.folder / "judges.safetensors", self.device)
        return self._judges

    def with_adapter(self, path):
        """A copy of the base transformer with the adapters of `path` attached, and the adapter's info
        (descriptor, template, ...). An adapter tuned on another base model is refused."""
        model = copy.deepcopy(self.transformer)
        load_adapter(model, path, self.base_fingerprint)
        return model.eval(), model.adapter_info

    def with_text_encoder(self, text_encoder) -> "MusePipeline":
        """The same generator reading prompts through another text encoder (a learnt word: textual
        inversion); the folder, base fingerprint and judges stay this pipeline's."""
        other = copy.copy(self)
        other.text_encoder = text_encoder
        return other

    @property
    def device(self) -> torch.device:
        return self.transformer.head.weight.device

    @property
    def grid(self) -> int:
        return self.transformer.config.grid

    def text(self, prompts) -> TextFeatures:
        return self.text_encoder(prompts).to(self.device)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token rows (B, N) -> images (B, 3, 64, 64)."""
        return self.tokenizer.decode(tokens.view(-1, self.grid, self.grid)).cpu()

    def guided(self, prompts, guidance: float, negative: str = ""):
        """The logits function of classifier-free guidance for these prompts (one per image)."""
        cond = self.text(prompts)
        return guided_logits(self.transformer, cond, self.text([negative] * len(cond)), guidance)

    def adapter_guided(self, adapted, guidance: AdapterGuidance = GUIDANCE):
        """`logits_fn_for` of `generate` for an adapted model: StyleDrop's Eq. 4 with the empty prompt as n."""
        full = adapted.adapter_config is not None and adapted.adapter_config.kind == "full"
        return lambda prompts: adapter_guided_logits(adapted, self.text(prompts), self.text([""] * len(prompts)),
                                                     guidance, base=self.transformer if full else None)

    def mixed(self, style_model, content_model, content_prompt: str, guidance: AdapterGuidance, gamma: float):
        """`logits_fn_for` of `generate` that mixes a style adapter (seeing the styled prompts) with a
        content adapter (seeing `content_prompt`; the paper's is the prompt without the style
        descriptor, ours the content adapter's own caption, see notebook 08): StyleDrop Sec. 3.4."""
        return lambda prompts: mixed_logits(style_model, content_model, self.text(prompts),
                                            self.text([content_prompt] * len(prompts)), self.text([""] * len(prompts)),
                                            guidance, gamma)

    @torch.no_grad()
    def generate(self, prompts, seed: int = 0, settings: SamplerSettings | None = None, batch_size: int = 64,
                 logits_fn_for=None, progress: bool = True, keep_steps: bool = False, allow_empty: bool = False):
        """One image per prompt; image i uses seed `seed + i`. Returns images (B, 3, H, W) in [0, 1]
        (and, with `keep_steps`, the decoded image after every step: (steps, B, 3, H, W)).

        `logits_fn_for(prompts) -> logits function` replaces plain guidance (adapters use it);
        `allow_empty` lets "" through, for a logits function that has another prompt (a picture)."""
        prompts = check_prompts(prompts, allow_empty)
        settings = (settings or SamplerSettings()).check()
        make = logits_fn_for or (lambda chunk: self.guided(chunk, settings.guidance_scale))
        cfg = self.transformer.config
        images, steps = [], []
        for start in tqdm(range(0, len(prompts), batch_size), desc="sampling", leave=False, disable=not progress):
            chunk = prompts[start:start + batch_size]
            seeds = [seed + start + i for i in range(len(chunk))]
            out = decode(make(chunk), seeds, cfg.n_tokens, cfg.mask_id, settings, self.device, keep_steps)
            if keep_steps:
                out, history = out
                steps.append(torch.stack([self.decode_partial(h) for h in history]))
            images.append(self.decode_tokens(out))
        images = torch.cat(images)
        return (images, torch.cat(steps, dim=1)) if keep_steps else images

    def draw(self, prompts, n: int = 8, seed: int = 0, settings: SamplerSettings | None = None, style_adapter=None,
             content_adapter=None, guidance: AdapterGuidance = GUIDANCE, gamma: float = 0.6, use_template: bool = True,
             say: Callable[[str], None] = print) -> tuple[torch.Tensor, list[str]]:
        """`n` images per prompt (`generate`): with the base model alone, or with a style adapter file
        (Eq. 4 `guidance`; its descriptor added to each prompt by its own template unless
        `use_template=False`), and optionally a content adapter file mixed in with weight `gamma`
        (Sec. 3.4). Returns (images (len(prompts) * n, 3, H, W), the prompts as drawn)."""
        if content_adapter and not style_adapter:
            raise ValueError("a content adapter mixes with a style adapter: give a style adapter too")
        check_gamma(gamma)
        prompts, make = check_prompts(prompts), None
        if style_adapter:
            adapted, info = self.with_adapter(style_adapter)
            if use_template:
                prompts = [info.prompt(p) for p in prompts]
            say(f"adapter {style_adapter}: prompts {prompts}, lambda_A {guidance.lambda_a}, lambda_B {guidance.lambda_b}")
            make = self.adapter_guided(adapted, guidance)
        if content_adapter:
            content_model, content_info = self.with_adapter(content_adapter)
            # The paper gives the content adapter the prompt without the style descriptor. Our base model
            # only draws well from captions that name a style, so it gets the caption it was tuned on.
            content_prompt = content_info.caption or prompts[0]
            say(f"content adapter {content_adapter}: prompt {content_prompt!r}, gamma {gamma}")
            make = self.mixed(adapted, content_model, content_prompt, guidance, gamma)
        images = self.generate([p for p in prompts for _ in range(n)], seed=seed, settings=settings, logits_fn_for=make)
        return images, prompts

    @torch.no_grad()
    def decode_partial(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token rows (B, N) that may hold [MASK] -> images with every still-masked patch painted grey."""
        cfg = self.transformer.config
        masked = tokens == cfg.mask_id
        images = self.decode_tokens(torch.where(masked, torch.zeros_like(tokens), tokens))
        patch = images.shape[-1] // self.grid
        pixels = masked.view(-1, 1, self.grid, self.grid).float().cpu()
        pixels = torch.nn.functional.interpolate(pixels, scale_factor=patch, mode="nearest").bool()
        return torch.where(pixels, torch.full_like(images, 0.5), images)
