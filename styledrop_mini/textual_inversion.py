"""Textual inversion (Gal et al., 2022): learn one new word, nothing else.

A baseline of the paper's table (paper_table.py). The generator G and the text tower T stay frozen;
one word of the prompt, a placeholder that the tokenizer reads as a single token, gets its own input
embedding v, and only v learns, through the frozen T and G, with the same masked-token loss that tunes
an adapter:

    "a house in <sks> style" --T, with v in place of <sks>'s row--> text features --G--> logits

So everything the method can express must pass through the text conditioning G already has: a style
that G cannot draw for any prompt, no word can ask for. That is the contrast with StyleDrop's adapters,
which change G itself with a few thousand weights.

Chapter 09: tutorials/09_evaluation.ipynb.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from .datasets import TokenBank
from .text_encoder import ClipTextEncoder
from .training import TrainSettings, fit
from .transformer import masked_loss, random_mask

PLACEHOLDER = "sks"  # a rare word that the mini CLIP's tokenizer reads as one token (DreamBooth's choice too)


@dataclass(frozen=True)
class InversionSettings:
    steps: int = 300
    batch_size: int = 8  # copies of the reference per step, each masked differently
    lr: float = 5e-3  # one vector: a larger step than an adapter's (Gal et al. use 5e-3 x batch size)


INVERSION = InversionSettings()


class InvertedTextEncoder(ClipTextEncoder):
    """The bundled text tower with one learnt word: wherever the placeholder's token id occurs, its
    input embedding is `vector` (a parameter; every other weight stays frozen)."""

    def __init__(self, clip, word: str = PLACEHOLDER, init_words: str = "style", words: bool = False):
        super().__init__(clip, words=words)
        ids = self.word_ids(word)
        if len(ids) != 1:
            raise ValueError(f"the placeholder {word!r} is {len(ids)} tokens for the mini CLIP's tokenizer; "
                             "choose a word it reads as one token")
        self.word, self.word_id = word, ids[0]
        with torch.no_grad():  # start from the mean embedding of a coarse description (Gal et al.)
            start = self.model.token_embedding(torch.tensor(self.word_ids(init_words))).mean(0)
        self.vector = nn.Parameter(start.clone())

    def word_ids(self, text: str) -> list[int]:
        """The tokenizer's ids of `text`, without the start and end tokens."""
        ids = self.clip.token_ids([text])[0]
        return [int(i) for i in ids[1:int((ids != 0).sum()) - 1]]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.model.token_embedding(ids)  # (B, T, width)
        return torch.where((ids == self.word_id)[..., None], self.vector.to(x.dtype), x)


class _Inversion(nn.Module):
    """What `training.fit` trains: the frozen generator and the text tower with its one learnt vector."""

    def __init__(self, transformer, encoder: InvertedTextEncoder):
        super().__init__()
        self.transformer = copy.deepcopy(transformer).requires_grad_(False)  # the pipeline's own stays as it is
        self.encoder = encoder


def _loss(wrapper: _Inversion, batch: dict):
    tokens = batch["tokens"]
    text = wrapper.encoder.encode(batch["text"])  # with gradients, for the vector
    mask = random_mask(len(tokens), wrapper.transformer.config.n_tokens, device=tokens.device)
    loss, logits = masked_loss(wrapper.transformer, tokens, text.tokens, text.mask, mask, text.pooled)
    return loss, {"masked_acc": float((logits[mask].argmax(-1) == tokens[mask]).float().mean())}


def invert(pipe, image: torch.Tensor, caption: str, settings: InversionSettings = INVERSION, seed: int = 0,
           init_words: str = "style", device="cpu", precision: str = "auto") -> tuple[InvertedTextEncoder, dict]:
    """Learn the placeholder word from one image (3, H, W) and its caption, which must contain the
    placeholder ("a house in sks style"). Returns (the text encoder with the word, info: steps,
    seconds, final loss). Draw with it through `pipe.with_text_encoder(encoder)`."""
    encoder = InvertedTextEncoder(pipe.text_encoder.clip, init_words=init_words,
                                  words=getattr(pipe.text_encoder, "words", False))
    if encoder.word_id not in encoder.word_ids(caption):
        raise ValueError(f"the caption {caption!r} must contain the placeholder word {encoder.word!r}")
    tokens = pipe.tokenizer.encode(image[None].to(pipe.device)).flatten(1).cpu().short()
    zero = torch.zeros(1, dtype=torch.long)
    bank = TokenBank(tokens=tokens, texts=[caption], content_ids=zero, colour_ids=zero, style_ids=zero)
    train = TrainSettings(steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, seed=seed,
                          warmup=min(20, settings.steps // 5 + 1), weight_decay=0.0,
                          log_every=max(1, settings.steps // 30), save_every=10**9, precision=precision)
    start = time.perf_counter()
    history = fit(_Inversion(pipe.transformer, encoder), _loss, bank, train, torch.device(device),
                  desc="textual inversion")
    encoder.eval()
    return encoder, {"steps": settings.steps, "lr": settings.lr, "seed": seed, "trainable": encoder.vector.numel(),
                     "train_seconds": round(time.perf_counter() - start, 1),
                     "final_loss": history[-1]["loss"] if history else None}
