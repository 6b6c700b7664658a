"""The whole generator, I = D(S(G, T(t))): text encoder, masked transformer, sampler, VQ decoder.

    pipe = MusePipeline.load()                         # the bundled checkpoints
    images = pipe.generate(["a red star in pencil sketch style"] * 4, seed=0)   # (4, 3, 64, 64)
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, fingerprint
from .sampling import SamplerSettings, decode, guided_logits
from .text_encoder import TextFeatures


class MusePipeline:
    def __init__(self, tokenizer, text_encoder, transformer):
        self.tokenizer, self.text_encoder, self.transformer = tokenizer, text_encoder, transformer

    @classmethod
    def load(cls, checkpoints=None, device="cpu", transformer: str = "base.safetensors") -> "MusePipeline":
        """The bundled tokenizer, mini CLIP text tower and base transformer (from `checkpoints`)."""
        from .clip import MiniClip
        from .settings import CHECKPOINT_DIR, missing_data_hint
        from .text_encoder import ClipTextEncoder
        from .tokenizer import VQTokenizer
        from .transformer import MaskedTransformer

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
        pipe = cls(tokenizer, ClipTextEncoder(clip), model)
        pipe.folder, pipe.transformer_file = folder, folder / transformer
        return pipe

    def with_adapter(self, path):
        """A copy of the base transformer with the adapters of `path` attached, and the adapter's info
        (descriptor, template, ...). An adapter tuned on another base model is refused."""
        import copy

        from .adapters import load_adapter

        base_file = getattr(self, "transformer_file", None)
        model = copy.deepcopy(self.transformer)
        load_adapter(model, path, fingerprint(base_file) if base_file else None)
        return model.eval(), model.adapter_info

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

    def adapter_guided(self, adapted, lambda_a: float, lambda_b: float):
        """`logits_fn_for` of `generate` for an adapted model: StyleDrop's Eq. 4 with the empty prompt as n."""
        from .sampling import adapter_guided_logits

        full = getattr(getattr(adapted, "adapter_config", None), "kind", None) == "full"
        return lambda prompts: adapter_guided_logits(adapted, self.text(prompts), self.text([""] * len(prompts)),
                                                     lambda_a, lambda_b, base=self.transformer if full else None)

    def mixed(self, style_model, content_model, content_prompt: str, lambda_a: float, lambda_b: float, gamma: float):
        """`logits_fn_for` of `generate` that mixes a style adapter (seeing the styled prompts) with a
        content adapter (seeing `content_prompt`; the paper's is the prompt without the style
        descriptor, ours the content adapter's own caption, see notebook 08): StyleDrop Sec. 3.4."""
        from .sampling import mixed_logits

        return lambda prompts: mixed_logits(style_model, content_model, self.text(prompts),
                                            self.text([content_prompt] * len(prompts)), self.text([""] * len(prompts)),
                                            lambda_a, lambda_b, gamma)

    @torch.no_grad()
    def generate(self, prompts, seed: int = 0, settings: SamplerSettings | None = None, batch_size: int = 64,
                 logits_fn_for=None, progress: bool = True, keep_steps: bool = False):
        """One image per prompt; image i uses seed `seed + i`. Returns images (B, 3, H, W) in [0, 1]
        (and, with `keep_steps`, the decoded image after every step: (steps, B, 3, H, W)).

        `logits_fn_for(prompts) -> logits function` replaces plain guidance (adapters use it)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts given")
        empty = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
        if empty:
            raise ValueError(f"prompt {empty[0]} is empty; for unconditional samples use guidance 0 "
                             "with any prompt")
        settings = (settings or SamplerSettings()).check()
        make = logits_fn_for or (lambda chunk: self.guided(chunk, settings.guidance))
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
