"""The text encoder T: prompts -> per-token features that the masked transformer attends to.

Muse and aMUSEd condition on a frozen pretrained text encoder (T5-XXL, CLIP). We use the text tower of
our mini CLIP, frozen. The seam is small, so any encoder that returns the same three things fits:

    encoder(prompts) -> TextFeatures(tokens (B, T, width), mask (B, T) bool, pooled (B, width'))

`ClipTextEncoder` wraps the mini CLIP (or any open_clip model); `HFTextEncoder` wraps a transformers
text model (`CLIPTextModel`, `T5EncoderModel`) with its tokenizer, loaded from a local path.
The empty prompt "" is allowed here: it is the unconditional prompt n of classifier-free guidance.

Chapter 03: tutorials/03_masked_transformer.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from open_clip.transformer import text_global_pool


@dataclass
class TextFeatures:
    tokens: torch.Tensor  # (B, T, width): one feature per prompt token
    mask: torch.Tensor  # (B, T) bool: True for real tokens, False for padding
    pooled: torch.Tensor  # (B, width'): one vector per prompt

    def to(self, device) -> "TextFeatures":
        return TextFeatures(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def __getitem__(self, index) -> "TextFeatures":
        return TextFeatures(self.tokens[index], self.mask[index], self.pooled[index])

    def __len__(self) -> int:
        return len(self.tokens)

    @staticmethod
    def cat(parts: list["TextFeatures"]) -> "TextFeatures":
        return TextFeatures(*(torch.cat([getattr(p, k) for p in parts]) for k in ("tokens", "mask", "pooled")))


def _prompts(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a non-empty list of strings")
    return prompts


class ClipTextEncoder(nn.Module):
    """The frozen text tower of an open_clip CLIP (ours by default): features after the final norm.

    `words=True` appends each prompt token's own input embedding (with its position, as the tower reads
    it) after the tower's contextual features: (B, 2T, width). Why: a contrastive text tower keeps only
    the words its image tower could tell apart; at the places where "with no fill" and "with polka dots"
    differ, ours gives near copies (tests/test_clip.py). Muse reads a language model's features (T5),
    which keep every word; a word's own embedding is our cheap stand-in. It did not make the bundled
    base read fill words within 600 more steps (benchmarks/text_words_ablation.py); what the generator
    reads is measured by `diagnostics.word_reading`."""

    def __init__(self, clip, words: bool = False):
        super().__init__()
        self.words = words
        self.clip = clip.eval().requires_grad_(False)
        self.model = clip.model
        self.width = self.model.transformer.width
        self.context_length = self.model.context_length

    @torch.no_grad()
    def forward(self, prompts) -> TextFeatures:
        return self.encode(prompts)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> their input embeddings (B, T, width); textual inversion swaps in a learnt one."""
        return self.model.token_embedding(ids)

    def encode(self, prompts) -> TextFeatures:
        """`forward`, with gradients where something upstream learns (textual_inversion.py)."""
        prompts = _prompts(prompts)
        ids = self.clip.token_ids(prompts).to(self.model.token_embedding.weight.device)
        m = self.model
        inputs = self.embed(ids) + m.positional_embedding
        x = m.ln_final(m.transformer(inputs, attn_mask=m.attn_mask))
        # The CLIP text embedding, pooled and projected as open_clip's encode_text does, from the same pass
        # (calling encode_text would run the tower twice); tests assert it equals encode_text.
        pooled = text_global_pool(x, ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        projection = m.text_projection
        if projection is not None:
            pooled = projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection
        mask = ids != 0  # open_clip pads with id 0
        if self.words:  # normalised like the tower's outputs, so neither half drowns the other
            x = torch.cat([x, nn.functional.layer_norm(inputs, inputs.shape[-1:])], 1)
            mask = torch.cat([mask, mask], 1)
        return TextFeatures(x.float(), mask, pooled.float())


class HFTextEncoder(nn.Module):
    """A transformers text model and its tokenizer, e.g.
    `HFTextEncoder(CLIPTextModel.from_pretrained(path), CLIPTokenizer.from_pretrained(path))`."""

    def __init__(self, model, tokenizer, max_length: int = 32):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.width = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.d_model

    @torch.no_grad()
    def forward(self, prompts) -> TextFeatures:
        prompts = _prompts(prompts)
        enc = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        device = next(self.model.parameters()).device
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device).bool()
        out = self.model(input_ids=ids, attention_mask=mask.long())
        tokens = out.last_hidden_state.float()
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:  # T5 has no pooled output: average the real tokens
            pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return TextFeatures(tokens, mask, pooled.float())
