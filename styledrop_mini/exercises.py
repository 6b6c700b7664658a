"""Checkers for the notebooks' exercises: `check("00.count_seen_combinations", answer)`.

A checker explains what is wrong in words (the most likely mistake first), so a student learns
from a wrong answer instead of staring at `False`. Each notebook's exercises register here under
"NN.name"; `check` raises `ExerciseError` for a wrong answer and prints a line for a right one.

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from . import metrics, paper_table, world
from .adapters import AdapterConfig, attach, count
from .clip import MiniClip
from .datasets import ImageFolder, MiniWorld
from .feedback import select_clip, write_json
from .instantstyle import attach as attach_image_prompt, fresh_adapter, injected
from .prompts import styled
from .sampling import AdapterGuidance, adapter_guidance, masked_after, mix
from .settings import CHECKPOINT_DIR
from .styles import PRIMITIVES, all_looks
from .tokenizer import TokenizerConfig, psnr
from .text_encoder import TextFeatures
from .transformer import MaskedTransformer, TransformerConfig, masked_loss

CHECKS = {}


class ExerciseError(AssertionError):
    """A wrong answer; the message says what is wrong and how to look for the mistake."""


def exercise(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def check(name: str, answer) -> str:
    """Check `answer` to exercise `name`; raise ExerciseError explaining a wrong answer."""
    if name not in CHECKS:
        raise KeyError(f"no exercise called {name!r}; known: {', '.join(sorted(CHECKS))}")
    if answer is NotImplemented or answer is None:
        raise ExerciseError(f"{name}: no answer yet; fill in the cell above and run it")
    try:
        message = CHECKS[name](answer)
    except NotImplementedError:  # a student copy's stub (assignments.py), not yet replaced
        raise ExerciseError(f"{name}: not written yet: your function still raises NotImplementedError. Replace "
                            "`raise NotImplementedError()` in the cell above with your code, run that cell, "
                            "then this one") from None
    print(f"✓ {name}: {message}")
    return message


# ---------------------------------------------------------------------------------------------
# 00_mini_world
# ---------------------------------------------------------------------------------------------
@exercise("00.count_seen_combinations")
def _count_seen(answer) -> str:
    n_c, n_k = len(world.CONTENTS), len(world.COLOURS)
    seen, every = len(world.training_looks()), len(all_looks())
    if not isinstance(answer, int):
        raise ExerciseError(f"expected a whole number, got {type(answer).__name__} {answer!r}")
    right = n_c * n_k * seen
    if answer == right:
        return f"{right:,} = {n_c} contents x {n_k} colours x {seen:,} training looks"
    product = 1
    for values in PRIMITIVES.values():
        product *= len(values)
    hints = {
        n_c * n_k * every: "you counted the held-out looks too: the base generator never sees them "
                           "(world.training_looks())",
        n_c * n_k * product: "not every combination of values is a look: some hide the content or its colour "
                             "(styles.is_visible), and the held-out ones leave training (world.training_looks())",
        n_c * n_k * len(world.SEEN_STYLES): "that counts only the named seen styles; the generator trains on "
                                            "every training look, named or not",
        n_c * seen: "you left out the colours: each content comes in every colour",
        n_k * seen: "you left out the contents",
        len(world.SHAPES) * n_k * seen: "you left out the 26 letters: they are contents too",
        n_c + n_k + seen: "combinations multiply: each content goes with each colour and each look",
    }
    raise ExerciseError(hints.get(answer, f"{answer} is not it; multiply the number of choices for each "
                                          "label, using only the looks the base generator sees"))


@exercise("00.caption_to_labels")
def _caption_to_labels(answer) -> str:
    if not callable(answer):
        raise ExerciseError("expected a function caption -> (content, colour, style)")
    tried = 0
    for content in world.CONTENTS:
        for colour in world.COLOURS:
            for style in world.STYLES:
                text = world.caption(content, colour, style)
                try:
                    got = answer(text)
                except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
                    raise ExerciseError(f"your function raised {type(exc).__name__}: {exc} on {text!r}") from exc
                want = (content, colour, style)
                if tuple(got) != want:
                    hint = ""
                    if len(tuple(got)) == 3 and tuple(got)[2] == world.STYLES[style] != style:
                        hint = (" - the caption holds the style's *descriptor*; map it back to the style "
                                "name with world.STYLES")
                    elif " " in content and tuple(got)[0] != content:
                        hint = " - some contents are two words ('letter A', 'lightning bolt')"
                    raise ExerciseError(f"{text!r} gave {tuple(got)!r}, expected {want!r}{hint}")
                tried += 1
    return f"all {tried} canonical captions parsed back to their labels"


@exercise("00.held_out_folder")
def _held_out_folder(answer) -> str:
    folder = Path(answer)
    data = ImageFolder(folder)  # its own errors already name the file and line
    styles = [row.get("style", "") for row in data.rows]
    if len(data) < 12:
        raise ExerciseError(f"{folder} holds {len(data)} images; export at least 12")
    wrong = sorted({s for s in styles if s not in world.HELD_OUT_STYLES})
    if wrong:
        raise ExerciseError(f"{folder} has images in seen styles {wrong}; use MiniWorld(styles='held_out')")
    missing = sorted(set(world.HELD_OUT_STYLES) - set(styles))
    if missing:
        raise ExerciseError(f"{folder} has no image in {missing}; every held-out style should appear")
    image = data[0]["image"]
    return f"{len(data)} held-out images, {image.shape[-1]}x{image.shape[-2]} px, all {len(set(styles))} styles"


# ---------------------------------------------------------------------------------------------
# 01_image_tokenizer
# ---------------------------------------------------------------------------------------------
@exercise("01.compression_ratio")
def _compression_ratio(answer) -> str:
    cfg = TokenizerConfig()
    raw = cfg.image_size ** 2 * 3 * 8
    right = raw / (cfg.grid ** 2 * math.log2(cfg.codebook_size))
    value = float(answer)
    if abs(value - right) < 1e-6 * right:
        return f"{right:.1f}x: {raw} bits of pixels become {cfg.grid ** 2} tokens of {math.log2(cfg.codebook_size):.0f} bits"
    if abs(value - raw / (cfg.grid ** 2 * cfg.codebook_size)) < 1e-6:
        raise ExerciseError("a token holds log2(codebook size) bits, not codebook-size bits")
    if abs(value - raw / 8 / (cfg.grid ** 2)) < 1e-6 or abs(value - raw / 8 / cfg.grid ** 2 / math.log2(cfg.codebook_size)) < 1e-6:
        raise ExerciseError("count the pixels in bits: 8 bits per channel value")
    if abs(value - 1 / right) < 1e-9:
        raise ExerciseError("you computed tokens / raw; the question asks raw / tokens")
    raise ExerciseError(f"{value:.3g} is not it; raw bits = {cfg.image_size}*{cfg.image_size}*3*8, token bits = "
                        f"{cfg.grid ** 2} * log2({cfg.codebook_size})")


@exercise("01.codebook_perplexity")
def _codebook_perplexity(answer) -> str:
    g = torch.Generator().manual_seed(0)
    cases = {"every code alike": torch.arange(64).repeat(5)[None], "a few codes": torch.tensor([[0, 0, 0, 1, 2, 2, 7, 7]]),
             "drawn at random": torch.randint(0, 40, (20, 64), generator=g) ** 2 % 64}
    for label, tokens in cases.items():
        p = torch.bincount(tokens.flatten(), minlength=64).float() / tokens.numel()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        want = float(entropy.exp())
        got = float(answer(tokens, 64))
        if math.isnan(got):
            raise ExerciseError(f"{label}: got NaN: an unused code has p = 0 and 0 * log 0 is NaN in torch; "
                                "leave unused codes out of the sum (they add 0)")
        if abs(got - want) < 1e-3 * want:
            continue
        if abs(got - float(entropy)) < 1e-4 or abs(got - float(entropy) / math.log(2)) < 1e-4:
            raise ExerciseError(f"{label}: {got:.4f} is the entropy; the perplexity is exp(entropy) "
                                "(2 ** entropy if you took log2)")
        if abs(got - len(tokens.unique())) < 1e-6:
            raise ExerciseError(f"{label}: {got:g} counts the codes used; perplexity weighs them by how often "
                                "each is used (a code seen once counts far less than one seen every time)")
        raise ExerciseError(f"{label}: got {got:.4f}, expected {want:.4f} = exp(-sum p log p) over the codes used")
    return ("exp(entropy of code use): 64 when all 64 codes are used alike, fewer when a handful do the work; "
            "a codebook with perplexity far below its size wastes codes")


@exercise("01.psnr")
def _psnr(answer) -> str:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4, 3, 16, 16, generator=g)
    b = (a + 0.05 * torch.randn(4, 3, 16, 16, generator=g)).clamp(0, 1)
    got = answer(a, b)
    if not torch.is_tensor(got) or got.shape != (4,):
        raise ExerciseError(f"expected one PSNR per image (a tensor of 4), got {getattr(got, 'shape', type(got))}")
    want = psnr(a, b)
    if torch.allclose(got.float(), want, atol=1e-3):
        return f"PSNRs {', '.join(f'{v:.2f}' for v in want.tolist())} dB"
    if torch.allclose(got.float(), -want, atol=1e-3):
        raise ExerciseError("the sign is flipped: PSNR = 10 log10(1 / MSE) for images in [0, 1]")
    raise ExerciseError(f"got {got.tolist()}, expected {want.tolist()}: average the squared error per image")


# ---------------------------------------------------------------------------------------------
# 02_clip_and_judges
# ---------------------------------------------------------------------------------------------
@exercise("02.recall_at_k")
def _recall_at_k(answer) -> str:
    g = torch.Generator().manual_seed(3)  # a seed where the usual mistakes all give different answers
    img = F.normalize(torch.randn(40, 8, generator=g), dim=-1)
    txt = F.normalize(img + 0.7 * torch.randn(40, 8, generator=g), dim=-1)  # row i of each is a matching pair
    txt[:5] = F.normalize(txt[:5] + 2 * txt[5], dim=-1)  # texts that steal images: the two directions differ

    def recall(a, b, k):
        sims = a @ b.T
        rank = (sims > sims.diagonal()[:, None]).sum(-1)  # how many others beat the true partner
        return float((rank < k).float().mean())

    for k in (1, 3, 10):
        got = float(answer(img, txt, k))
        want = recall(img, txt, k)
        if abs(got - want) < 1e-6:
            continue
        if abs(got - recall(txt, img, k)) < 1e-6:
            raise ExerciseError(f"k={k}: that is text-to-image recall; for each IMAGE, rank the texts")
        if abs(got - want * len(img)) < 1e-6:
            raise ExerciseError(f"k={k}: give the share of images (a number in [0, 1]), not the count")
        if abs(got - recall(img, txt, k + 1)) < 1e-6 or abs(got - recall(img, txt, k - 1)) < 1e-6:
            raise ExerciseError(f"k={k}: off by one: the true text must be among the k best, rank 0 .. k-1")
        raise ExerciseError(f"k={k}: got {got:.3f}, expected {want:.3f}")
    return f"image-to-text recall@1 {recall(img, txt, 1):.0%}, @3 {recall(img, txt, 3):.0%}, @10 {recall(img, txt, 10):.0%}"


@exercise("02.colour_prompts")
def _colour_prompts(answer) -> str:
    prompts = list(answer)
    if len(prompts) != len(world.COLOURS):
        raise ExerciseError(f"give {len(world.COLOURS)} prompts, one per colour, in the order of world.COLOURS")
    for prompt, colour in zip(prompts, world.COLOURS):
        if colour not in prompt:
            raise ExerciseError(f"the prompt {prompt!r} does not name {colour!r}: is the order that of world.COLOURS?")
    clip = MiniClip.load(CHECKPOINT_DIR / "clip.safetensors")
    data = MiniWorld(n=96, split="test", styles="all", seed=21)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    truth = torch.tensor([data[i]["colour_id"] for i in range(len(data))])
    accuracy = float((clip.zero_shot(images, prompts).argmax(-1) == truth).float().mean())
    if accuracy < 0.8:
        raise ExerciseError(f"these prompts name the colour of {accuracy:.0%} of 96 renders (need 80 %); "
                            "phrase them the way the training captions mention colour alone")
    return f"{accuracy:.0%} of 96 fresh renders named by colour"


# ---------------------------------------------------------------------------------------------
# 03_masked_transformer
# ---------------------------------------------------------------------------------------------
@exercise("03.tokens_still_masked")
def _tokens_still_masked(answer) -> str:
    for steps, n in ((8, 64), (12, 64), (4, 16)):
        want = [masked_after(k, steps, n) for k in range(steps)]
        got = [int(answer(k, steps, n)) for k in range(steps)]
        if got == want:
            continue
        if got == [math.floor(n * math.cos(math.pi / 2 * k / steps)) for k in range(steps)]:
            raise ExerciseError("that is the count *before* step k; after step k, progress is (k + 1) / K")
        if got[-1] != 0:
            raise ExerciseError(f"after the last step nothing may stay masked, got {got[-1]} "
                                f"(K={steps}, N={n}): use (k + 1) / K as the progress after step k")
        if got == [math.ceil(n * math.cos(math.pi / 2 * (k + 1) / steps)) for k in range(steps)]:
            raise ExerciseError("round down (floor), as MaskGIT does, so each step reveals at least its share")
        if got == [round(n * (1 - (k + 1) / steps)) for k in range(steps)]:
            raise ExerciseError("that is a linear schedule; MaskGIT's is cos(pi/2 * progress)")
        raise ExerciseError(f"K={steps}, N={n}: got {got}, expected {want}")
    return "matches the sampler's cosine schedule, e.g. K=8, N=64: " + str([masked_after(k, 8, 64) for k in range(8)])


@exercise("03.guidance")
def _guidance(answer) -> str:
    g = torch.Generator().manual_seed(3)
    cond, uncond = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    for scale in (0.0, 1.0, 3.0):
        got = torch.as_tensor(answer(cond, uncond, scale))
        want = uncond + scale * (cond - uncond)
        if got.shape != want.shape:
            raise ExerciseError(f"the guided logits should keep the shape {tuple(want.shape)}, got {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-5):
            continue
        if torch.allclose(got, cond + scale * (cond - uncond), atol=1e-5):
            raise ExerciseError("start from the unconditional logits: l_u + s (l_c - l_u), so s = 1 is plain conditional")
        if torch.allclose(got, uncond + scale * (uncond - cond), atol=1e-5):
            raise ExerciseError("the difference points the wrong way: (l_c - l_u) moves towards the prompt")
        raise ExerciseError(f"at scale {scale} the result differs from l_u + s (l_c - l_u)")
    return "s = 0 gives the unconditional logits, s = 1 the conditional ones, s > 1 pushes past them"


# ---------------------------------------------------------------------------------------------
# 04_adapters
# ---------------------------------------------------------------------------------------------
@exercise("04.adapter_params")
def _adapter_params(answer) -> str:
    for width, layers, d_prj in ((256, 4, 4), (64, 2, 8), (128, 3, 32)):
        model = MaskedTransformer(TransformerConfig(width=width, layers=layers, heads=4))
        attach(model, AdapterConfig(d_prj=d_prj))
        want, got = count(model)[0], int(answer(width, layers, d_prj))
        if got == want:
            continue
        if got == layers * 2 * 2 * width * d_prj:
            raise ExerciseError("the weights are right but the biases are missing: each Linear has one "
                                "(d_prj for W_down, width for W_up)")
        if got * 2 == want:
            raise ExerciseError("there are TWO adapters per block: after the cross-attention and after the MLP")
        if got == 2 * (2 * width * d_prj + d_prj + width):
            raise ExerciseError("that is one block; every one of the `layers` blocks has its own adapters")
        raise ExerciseError(f"width {width}, {layers} layers, d_prj {d_prj}: got {got:,}, the library counts {want:,}")
    return "2 adapters x layers x (2 x width x d_prj + d_prj + width); the bundled G: " \
           f"{int(answer(256, 4, 4)):,} parameters"


def _guidance_terms(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 5, 7, generator=g) for _ in range(3)]  # adapted, base, unconditional logits


@exercise("04.adapter_guidance")
def _adapter_guidance(answer) -> str:
    adapted, base, uncond = _guidance_terms(4)
    for lambda_a, lambda_b in ((0.0, 0.0), (1.0, 3.0), (2.0, 0.5)):
        want = adapter_guidance(adapted, base, uncond, AdapterGuidance(lambda_a, lambda_b))
        got = torch.as_tensor(answer(adapted, base, uncond, lambda_a, lambda_b))
        if got.shape != want.shape:
            raise ExerciseError(f"the guided logits keep the shape {tuple(want.shape)}, got {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-5):
            continue
        at = f"at λ_A={lambda_a:g}, λ_B={lambda_b:g}: "
        swapped = adapter_guidance(adapted, base, uncond, AdapterGuidance(lambda_b, lambda_a))
        if lambda_a != lambda_b and torch.allclose(got, swapped, atol=1e-5):
            raise ExerciseError(at + "λ_A and λ_B are swapped: λ_A weighs (Ĝ − G), the adapter's own change; "
                                "λ_B weighs (G(t) − G(n)), the base model's classifier-free guidance")
        if torch.allclose(got, adapted + lambda_a * (adapted - base) + lambda_b * (adapted - uncond), atol=1e-5):
            raise ExerciseError(at + "the λ_B term is the BASE model's guidance, G(v,t) − G(v,n): the adapter is "
                                "left out of it so that it cannot amplify what the adapter memorised")
        if torch.allclose(got, lambda_a * (adapted - base) + lambda_b * (base - uncond), atol=1e-5):
            raise ExerciseError(at + "the two guidance terms are right, but start from the adapted logits Ĝ(v,t)")
        if torch.allclose(got, base + lambda_a * (adapted - base) + lambda_b * (base - uncond), atol=1e-5):
            raise ExerciseError(at + "start from the ADAPTED logits Ĝ(v,t), not G(v,t): with λ_A = λ_B = 0, "
                                "Eq. 4 is the adapted model alone")
        raise ExerciseError(at + "the result differs from Ĝ + λ_A (Ĝ − G) + λ_B (G − G_uncond)")
    return "Eq. 4, equal to styledrop_mini.sampling.adapter_guidance (λ_A = λ_B = 0: the adapted model alone)"


def _tiny_tuning_setup():
    """A small transformer with adapters whose W_up is not zero (so every adapter weight gets a gradient),
    an optimiser over the adapters only, and a fixed batch: tokens, prompt features, mask."""
    torch.manual_seed(5)
    cfg = TransformerConfig(codebook_size=16, grid=2, width=16, layers=1, heads=2, text_width=8, pooled_width=8)
    model = MaskedTransformer(cfg)
    for p in model.parameters():  # a confident model, so that each usual mistake moves the loss visibly
        if p.ndim == 2:
            torch.nn.init.normal_(p, std=0.5)
    trainable = attach(model, AdapterConfig(d_prj=2))
    for p in trainable:
        torch.nn.init.normal_(p, std=0.3)
    tokens = torch.randint(0, cfg.codebook_size, (4, cfg.n_tokens))
    text = TextFeatures(torch.randn(4, 3, 8), torch.ones(4, 3, dtype=torch.bool), torch.randn(4, 8))
    mask = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 1]], dtype=torch.bool)
    return model, trainable, tokens, text, mask


def _run_steps(step_fn, steps: int = 2):
    model, trainable, tokens, text, mask = _tiny_tuning_setup()
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    losses = [float(torch.as_tensor(step_fn(model, optimizer, tokens, text, mask)).detach()) for _ in range(steps)]
    return losses, [p.detach().clone() for p in trainable], model, (tokens, text, mask)


def _library_step(model, optimizer, tokens, text, mask):
    loss, _ = masked_loss(model, tokens, text.tokens, text.mask, mask, text.pooled)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@exercise("04.tuning_step")
def _tuning_step(answer) -> str:
    want_losses, want_params, _, _ = _run_steps(_library_step)
    got_losses, got_params, model, (tokens, text, mask) = _run_steps(answer)
    close = lambda a, b: abs(a - b) < 1e-4 * max(1.0, abs(b))
    if not close(got_losses[0], want_losses[0]):
        with torch.no_grad():
            model, _, _, _, _ = _tiny_tuning_setup()
            logits = model(tokens.masked_fill(mask, model.config.mask_id), text.tokens, text.mask, text.pooled)
            everywhere = float(F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))
            peeking = model(tokens, text.tokens, text.mask, text.pooled)
            peeked = float(F.cross_entropy(peeking[mask], tokens[mask]))
        if close(got_losses[0], everywhere):
            raise ExerciseError(f"loss {got_losses[0]:.4f} averages over EVERY token; MaskGIT's loss counts only the "
                                f"masked positions, logits[mask] against tokens[mask] (expected {want_losses[0]:.4f})")
        if close(got_losses[0], peeked):
            raise ExerciseError(f"loss {got_losses[0]:.4f}: the model saw the answers. Replace the masked positions "
                                "with model.config.mask_id before the forward pass "
                                f"(tokens.masked_fill(mask, mask_id)); expected {want_losses[0]:.4f}")
        raise ExerciseError(f"the first step's loss is {got_losses[0]:.4f}, expected {want_losses[0]:.4f}: the "
                            "cross-entropy of the logits at the masked positions against the true tokens there")
    initial = [p.detach().clone() for p in _tiny_tuning_setup()[1]]
    if all(torch.equal(a, b) for a, b in zip(got_params, initial)):
        raise ExerciseError("the loss is right but the adapters did not change: call loss.backward() and "
                            "optimizer.step()")
    if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got_params, want_params)):
        raise ExerciseError("the first loss is right but the weights after two steps differ from the library's: "
                            "did you call optimizer.zero_grad() before loss.backward()? Without it the second "
                            "step adds the first step's gradient again")
    return (f"losses {want_losses[0]:.4f}, {want_losses[1]:.4f} and the adapters after two steps equal "
            "transformer.masked_loss + AdamW, the step inside adapters.tune")


# ---------------------------------------------------------------------------------------------
# 05_templated_prompts
# ---------------------------------------------------------------------------------------------
@exercise("05.leakage")
def _leakage(answer) -> str:
    cases = ((["house", "letter A", "house", "circle"], "house", 0.5), (["star"] * 3, "house", 0.0),
             (["moon"], "moon", 1.0))
    for labels, reference, want in cases:
        got = float(answer(labels, reference))
        if abs(got - want) < 1e-9:
            continue
        if abs(got - want * len(labels)) < 1e-9 and want:
            raise ExerciseError("give the share (a fraction of the images), not the count")
        if abs(got - (1 - want)) < 1e-9:
            raise ExerciseError("that is the share of images NOT showing the reference's content")
        raise ExerciseError(f"labels {labels}, reference content {reference!r}: got {got}, expected {want}")
    return "leakage = share of new images the judges take for the reference's own content"


@exercise("05.descriptor")
def _descriptor(answer) -> str:
    for content, descriptor in (("yellow house", "stained glass"), ("letter A", "glowing neon"),
                                ("orange arrow", "watercolor painting"), ("letter I", "3d drop shadow")):
        prompt = styled(content, descriptor)
        got = answer(prompt)
        if got == descriptor:
            continue
        if isinstance(got, str) and got.endswith("style"):
            raise ExerciseError(f"{prompt!r}: drop the final word 'style', got {got!r}")
        if isinstance(got, str) and got.strip() != got:
            raise ExerciseError(f"{prompt!r}: strip the spaces around the descriptor, got {got!r}")
        raise ExerciseError(f"{prompt!r}: got {got!r}, expected {descriptor!r} (split at the LAST ' in ')")
    return "the descriptor is what sits between the last ' in ' and ' style'"


# ---------------------------------------------------------------------------------------------
# 06_clip_feedback, 07_human_feedback
# ---------------------------------------------------------------------------------------------
def _toy_pool():
    scores = [0.3, 0.9, 0.5, 0.2, 0.8, 0.1, 0.4]
    prompts = ["a star", "a star", "a star", "a ring", "a ring", "a moon", "a moon"]
    return [{"id": i, "prompt": p, "clip_text": s, "clip_style": 1 - s} for i, (p, s) in enumerate(zip(prompts, scores))]


@exercise("06.top_k")
def _top_k(answer) -> str:
    pool = _toy_pool()
    for k, want in ((1, [1, 4, 6]), (2, [1, 2, 4, 3, 6, 5]), (5, [1, 2, 0, 4, 3, 6, 5])):
        got = list(answer(pool, k))
        if got == want:
            continue
        if sorted(got) == sorted(want):
            raise ExerciseError(f"k={k}: the right images in the wrong order ({got}); keep prompts in pool "
                                "order and, within a prompt, the best score first")
        if k == 1 and got == [1, 4, 2][:len(got)]:
            raise ExerciseError("that is the top k of the whole pool; keep the top k of EACH prompt")
        if len(got) > len(want):
            raise ExerciseError(f"k={k}: {len(got)} ids for {len(want)} possible; a prompt with fewer than k "
                                "images gives all it has")
        raise ExerciseError(f"k={k}: got {got}, expected {want}")
    return "k = 1 is the paper's CF rule (feedback.select_clip)"


@exercise("06.cf_rule")
def _cf_rule(answer) -> str:
    pool = _toy_pool()
    for floor in (None, 0.3, 0.85):
        want = select_clip(pool, min_style=floor)
        got = list(answer(pool) if floor is None else answer(pool, floor))
        if got == want:
            continue
        with_floor = f"with min_style={floor}" if floor is not None else ""
        if got and isinstance(got[0], dict):
            raise ExerciseError("return the chosen images' ids, not the pool entries")
        if sorted(got) == sorted(want):
            raise ExerciseError(f"{with_floor or 'without a floor'}: the right ids in the wrong order ({got}); "
                                "keep the prompts in pool order")
        if floor is None and got == [0, 3, 5]:
            raise ExerciseError("that is the LOWEST text score per prompt; CF keeps the highest")
        if floor is None and got == [1]:
            raise ExerciseError("that is the best image of the whole pool; CF keeps the best image of EACH prompt")
        if floor is not None and got == select_clip(pool):
            raise ExerciseError(f"{with_floor}: the floor was ignored; leave out images whose clip_style is "
                                "below min_style before taking the best text score")
        if floor is not None and len(got) > len(want):
            raise ExerciseError(f"{with_floor}: a prompt whose images all fall below the floor contributes "
                                f"nothing (got {got}, expected {want})")
        raise ExerciseError(f"{with_floor or 'without a floor'}: got {got}, expected {want}")
    return "per prompt, the best CLIP text score among images above the style floor: feedback.select_clip"


@exercise("07.read_selection")
def _read_selection(answer) -> str:
    with tempfile.TemporaryDirectory() as folder:
        write_json(Path(folder) / "selections" / "human.json", {"ids": [7, 2, 11], "rule": "human", "saved": 0})
        got = answer(folder)
        if isinstance(got, dict):
            raise ExerciseError("return the list of ids, not the whole JSON record (its 'ids' field)")
        if list(got) != [7, 2, 11]:
            raise ExerciseError(f"expected [7, 2, 11] from RUN/selections/human.json, got {got}")
        try:
            empty = answer(Path(folder) / "elsewhere")
        except (FileNotFoundError, OSError):
            raise ExerciseError("a run with no saved selection should give [] (nothing picked yet), "
                                "not an error: check whether the file exists first") from None
        if list(empty) != []:
            raise ExerciseError("a run with no saved selection should give [] (nothing picked yet), not fail")
    return "the selection on disk is the truth: the widget only writes it"


@exercise("08.mixing_step")
def _mixing_step(answer) -> str:
    style, content = _guidance_terms(8), _guidance_terms(9)
    guidance = AdapterGuidance(1.0, 3.0)
    for gamma in (0.0, 0.3, 1.0):
        want = mix(adapter_guidance(*style, guidance), adapter_guidance(*content, guidance), gamma)
        got = torch.as_tensor(answer(style, content, guidance.lambda_a, guidance.lambda_b, gamma))
        if got.shape != want.shape:
            raise ExerciseError(f"the mixed logits keep the shape {tuple(want.shape)}, got {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-5):
            continue
        flipped = mix(adapter_guidance(*style, guidance), adapter_guidance(*content, guidance), 1 - gamma)
        if torch.allclose(got, flipped, atol=1e-5):
            raise ExerciseError(f"at γ={gamma:g}: γ weighs the CONTENT adapter: γ = 0 is StyleDrop alone, γ = 1 "
                                "DreamBooth alone, (1 − γ) l^s + γ l^c")
        raw = mix(style[0], content[0], gamma)
        if torch.allclose(got, raw, atol=1e-5):
            raise ExerciseError(f"at γ={gamma:g}: you mixed the raw adapted logits; guide each adapter first "
                                "(Eq. 4 with its own prompt's base and unconditional logits), then mix")
        raise ExerciseError(f"at γ={gamma:g}: the result differs from (1 − γ) Eq4(style) + γ Eq4(content)")
    return "(1 − γ) Eq. 4(style) + γ Eq. 4(content): equal to sampling.mix over sampling.adapter_guidance"


@exercise("08.prior_loss")
def _prior_loss(answer) -> str:
    model, _, tokens, text, mask = _tiny_tuning_setup()
    g = torch.Generator().manual_seed(8)
    class_tokens = torch.randint(0, model.config.codebook_size, tokens.shape, generator=g)
    class_text = TextFeatures(torch.randn(4, 3, 8, generator=g), text.mask, torch.randn(4, 8, generator=g))
    class_mask = mask.roll(1, 0)

    def loss(t, feats, m):
        return masked_loss(model, t, feats.tokens, feats.mask, m, feats.pooled)[0]

    with torch.no_grad():
        instance, prior = loss(tokens, text, mask), loss(class_tokens, class_text, class_mask)
        for weight in (1.0, 0.25):
            got = float(answer(model, tokens, text, mask, class_tokens, class_text, class_mask, weight))
            want = float(instance + weight * prior)
            if abs(got - want) < 1e-4:
                continue
            at = f"with weight {weight:g}: got {got:.4f}, expected {want:.4f}. "
            if abs(got - float(weight * instance + prior)) < 1e-4:
                raise ExerciseError(at + "The weight belongs on the PRIOR term: L(subject) + w · L(class images)")
            if abs(got - float(instance)) < 1e-4:
                raise ExerciseError(at + "The prior term is missing: add the masked loss on the class images")
            if abs(got - float((instance + prior) / 2)) < 1e-4:
                raise ExerciseError(at + "Add the two terms (the prior weighted by w); do not average them")
            if abs(got - float(instance + weight * loss(class_tokens, text, class_mask))) < 1e-4:
                raise ExerciseError(at + "The class images go with the CLASS prompt's features (class_text): "
                                    "that is what keeps 'a star' meaning any star")
            raise ExerciseError(at + "Each term is the masked-token loss of its own tokens, prompt and mask")
    return f"L = {float(instance):.4f} + w · {float(prior):.4f}: dreambooth.prior_loss_fn's loss on fixed masks"


# ----------------------------------------------------------------------------------------------
# 09 · evaluation
# ----------------------------------------------------------------------------------------------
@exercise("09.pair_auc")
def _pair_auc(answer) -> str:
    g = torch.Generator().manual_seed(9)
    positive = torch.cat([torch.rand(30, generator=g) + 0.3, torch.tensor([0.5, 0.5])])
    negative = torch.cat([torch.rand(40, generator=g), torch.tensor([0.5])])  # two ties with the last positives
    want = metrics.pair_auc(positive, negative)
    got = float(answer(positive, negative))
    if math.isclose(got, want, abs_tol=1e-6):
        return f"AUC {want:.4f}: equal to metrics.pair_auc (content_invariance's AUC)"
    strict = float((positive[:, None] > negative[None]).float().mean())
    if math.isclose(got, strict, abs_tol=1e-6) or math.isclose(got, float((positive[:, None] >= negative[None]).float().mean()), abs_tol=1e-6):
        raise ExerciseError("ties: a positive pair exactly as alike as a negative one counts half, neither won "
                            "nor lost (two of these inputs tie)")
    if math.isclose(got, 1 - want, abs_tol=1e-6):
        raise ExerciseError("the AUC is the chance that a POSITIVE pair (same look, other content) scores above a "
                            "negative one; yours is the other way round")
    if math.isclose(got, float(positive.mean() - negative.mean()), abs_tol=1e-6):
        raise ExerciseError("that is the gap between the mean similarities; the AUC compares every positive "
                            "with every negative: the share of (positive, negative) couples the positive wins")
    raise ExerciseError(f"expected {want:.4f}: compare every positive with every negative (broadcast "
                        "positive[:, None] against negative[None]) and average; a tie counts 0.5")


def _disagreement_cases():
    """(clip_a, judge_a, clip_b, judge_b) as {"mean", "se"} cells, and what paper_table says of each."""
    cell = lambda mean, se: {"mean": mean, "se": se}  # noqa: E731
    cases = [(cell(0.70, 0.01), cell(0.10, 0.04), cell(0.60, 0.01), cell(0.40, 0.05)),  # clear, opposite
             (cell(0.70, 0.01), cell(0.40, 0.04), cell(0.60, 0.01), cell(0.10, 0.05)),  # clear, same order
             (cell(0.70, 0.05), cell(0.10, 0.04), cell(0.60, 0.05), cell(0.40, 0.05)),  # CLIP's gap is noise
             (cell(0.70, 0.01), cell(0.30, 0.05), cell(0.60, 0.01), cell(0.40, 0.05)),  # judges' gap is noise
             (cell(0.635, 0.02), cell(0.10, 0.03), cell(0.60, 0.01), cell(0.40, 0.03)),  # 2 se, not 1
             (cell(0.66, 0.02), cell(0.20, 0.06), cell(0.60, 0.02), cell(0.40, 0.06))]  # beyond the sum? hypot
    truths = []
    for clip_a, judge_a, clip_b, judge_b in cases:
        table = {"ref": {"a": {"clip_style": clip_a, "judge_style": judge_a},
                         "b": {"clip_style": clip_b, "judge_style": judge_b}}}
        truths.append(bool(paper_table.disagreements(table)))
    return cases, truths


@exercise("09.disagreement")
def _disagreement(answer) -> str:
    cases, truths = _disagreement_cases()
    hints = {0: "CLIP prefers a (0.70 against 0.60), the judges prefer b (40 % against 10 %), both far beyond "
                "their noise: that is a disagreement",
             1: "CLIP and the judges both prefer a here: ranking the same way is agreement, however large the gaps",
             2: "CLIP's gap (0.10) is under two standard errors of a difference (2 × √(0.05² + 0.05²) = 0.14): "
                "inside the noise, so no disagreement can be claimed",
             3: "the judges' gap (0.10) is under two standard errors of the difference (2 × √(0.05² + 0.05²)): "
                "inside the noise",
             4: "CLIP's gap (0.035) is beyond one standard error of the difference (√(0.02² + 0.01²) = 0.022) "
                "but not beyond two (0.045): one is not enough",
             5: "the standard error of a difference is √(se_a² + se_b²), not se_a + se_b: here the gaps are beyond "
                "2 × √(·) but not beyond 2 × (se_a + se_b)"}
    for i, ((clip_a, judge_a, clip_b, judge_b), truth) in enumerate(zip(cases, truths)):
        got = answer(clip_a, judge_a, clip_b, judge_b)
        if not isinstance(got, (bool, int)) and not hasattr(got, "item"):
            raise ExerciseError(f"return True or False, got {type(got).__name__}")
        if bool(got) != truth:
            raise ExerciseError(f"case {i + 1}: expected {truth}: {hints[i]}")
    return f"{len(cases)} cases, each as paper_table.disagreements reads them"


# ----------------------------------------------------------------------------------------------
# 10 · text-guided editing
# ----------------------------------------------------------------------------------------------
def _styleclip_case(seed: int = 10):
    """Unit image embeddings (3, 8), a unit text embedding (1, 8), latents z and z_s (3, 2, 4, 4)."""
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    text = F.normalize(torch.randn(1, 8, generator=g), dim=-1)
    z_source = torch.randn(3, 2, 4, 4, generator=g)
    return images, text, z_source + 0.3 * torch.randn(3, 2, 4, 4, generator=g), z_source


@exercise("10.styleclip_loss")
def _styleclip_loss(answer) -> str:
    images, text, z, z_source = _styleclip_case()
    cosine = (images * text).sum(-1)
    squared = (z - z_source).pow(2).flatten(1).sum(-1)
    for l2 in (0.0, 0.008, 0.5):
        got = torch.as_tensor(answer(images, text, z, z_source, l2))
        want = 1 - cosine + l2 * squared
        if got.shape != want.shape:
            raise ExerciseError(f"one loss per image: shape {tuple(want.shape)} (B,), got {tuple(got.shape)}; sum "
                                "the L2 term over each latent's numbers (flatten(1).sum(-1)), not over the batch")
        if torch.allclose(got, want, atol=1e-5):
            continue
        at = f"with l2={l2:g}: "
        if torch.allclose(got, cosine + l2 * squared, atol=1e-5):
            raise ExerciseError(at + "D_CLIP is a distance, 1 − cos: minimising cos would move AWAY from the text")
        if torch.allclose(got, 1 - cosine + l2 * squared.sqrt(), atol=1e-5):
            raise ExerciseError(at + "StyleCLIP's leash is the SQUARED distance ‖z − z_s‖²: do not take the root")
        if torch.allclose(got, 1 - cosine + l2 * (z - z_source).pow(2).flatten(1).mean(-1), atol=1e-5):
            raise ExerciseError(at + "sum the squared differences over the latent's numbers; a mean divides λ_L2 by "
                                f"{z[0].numel()}")
        if torch.allclose(got, 1 - cosine, atol=1e-5):
            raise ExerciseError(at + "the L2 term is missing: add λ_L2 ‖z − z_s‖²")
        raise ExerciseError(at + "expected (1 − cos(image, text)) + λ_L2 ‖z − z_s‖² per image (the embeddings are "
                            "unit vectors, so cos is their dot product)")
    return "D_CLIP + λ_L2 ‖z − z_s‖²: the loss styleclip.optimise_latent minimises"


@exercise("10.text_direction")
def _text_direction(answer) -> str:
    g = torch.Generator().manual_seed(10)
    neutral = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    target = neutral[2]
    got = torch.as_tensor(answer(target, neutral))
    want = F.normalize(target - neutral.mean(0), dim=0)
    if got.shape != want.shape:
        raise ExerciseError(f"Δt is one direction: shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if torch.allclose(got, want, atol=1e-5):
        return "Δt = (target − mean(neutral)) / ‖·‖: equal to styleclip.text_direction"
    if torch.allclose(got, target - neutral.mean(0), atol=1e-5):
        raise ExerciseError("the direction is right but not unit length: divide by its norm")
    if torch.allclose(got, F.normalize(target, dim=0), atol=1e-5) or torch.allclose(got, target, atol=1e-5):
        raise ExerciseError("subtract the neutral text (the mean of the attribute's every value): the target "
                            "alone points at everything CLIP sees in 'something red', not at the change")
    if torch.allclose(got, -want, atol=1e-5):
        raise ExerciseError("the direction points the wrong way: target minus neutral, not neutral minus target")
    raise ExerciseError("expected the target's embedding minus the mean of `neutral` over its values (dim 0), "
                        "divided by its length")


# ----------------------------------------------------------------------------------------------
# 11 · tuning-free style
# ----------------------------------------------------------------------------------------------
def _image_branch_case(seed: int = 11):
    """A decoupled cross-attention of a small random generator block, its image tokens and λ per example."""
    torch.manual_seed(seed)
    model = MaskedTransformer(TransformerConfig(codebook_size=16, grid=4, width=16, layers=1, heads=2, text_width=8))
    adapter = fresh_adapter(model, 6, n_tokens=3)
    attach_image_prompt(model, adapter)
    cross = model.blocks[0].cross
    with torch.no_grad():  # a trained-looking projection and output bias (both start at zero)
        torch.nn.init.normal_(adapter.project.weight)
        torch.nn.init.normal_(cross.text.out.bias)
    x, embeddings, scale = torch.randn(2, 4, 16), torch.randn(2, 6), torch.tensor([0.5, 2.0])
    return model, cross, x, adapter.image_tokens(embeddings).detach(), adapter.kv[0], scale, embeddings


@exercise("11.image_branch")
def _image_branch(answer) -> str:
    model, cross, x, image_tokens, kv, scale, embeddings = _image_branch_case()
    text = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        with injected(model, embeddings, scale):
            want = cross(x, text, mask) - cross.text(x, text, mask)
        got = torch.as_tensor(answer(x, image_tokens, cross.text.q, kv, cross.text.out.weight, scale, cross.text.heads))
    if got.shape != want.shape:
        raise ExerciseError(f"the image branch adds to the residual stream: shape {tuple(want.shape)} (B, N, width), "
                            f"got {tuple(got.shape)}")
    if torch.allclose(got, want, atol=1e-5):
        return "λ · W_out · Attn(Q, K_img, V_img): equal to instantstyle.DecoupledCrossAttention's image branch"
    if torch.allclose(got, want / scale.view(2, 1, 1), atol=1e-5):
        raise ExerciseError("the branch is right but λ (one per example, `scale`) is missing: multiply by it")
    if torch.allclose(got, want + scale.view(2, 1, 1) * cross.text.out.bias.detach(), atol=1e-5):
        raise ExerciseError("W_out's bias is already added once, by the text branch: the image branch uses the "
                            "output projection's weight only (F.linear(y, out_weight))")
    raise ExerciseError("the queries come from the block's own q projection of x, the keys and values from kv of "
                        "the image tokens, split into `heads` heads; softmax(q kᵀ / √d) v, heads merged back, "
                        "then W_out, then λ")


@exercise("11.subtract_content")
def _subtract_content(answer) -> str:
    g = torch.Generator().manual_seed(11)
    image = F.normalize(torch.randn(1, 8, generator=g), dim=-1)
    text = F.normalize(torch.randn(1, 8, generator=g), dim=-1)
    for s in (0.0, 0.5, 1.0):
        got = torch.as_tensor(answer(image, text, s))
        want = image - s * text
        if got.shape != want.shape:
            raise ExerciseError(f"keep the embedding's shape {tuple(want.shape)}, got {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-6):
            continue
        if torch.allclose(got, F.normalize(want, dim=-1), atol=1e-6):
            raise ExerciseError("InstantStyle subtracts and stops there: do not re-normalise (the adapter was "
                                "trained on unit vectors, and the shorter vector is part of the effect)")
        if torch.allclose(got, image + s * text, atol=1e-6):
            raise ExerciseError(f"with s={s:g}: SUBTRACT the content's text embedding: e − s · t")
        raise ExerciseError(f"with s={s:g}: expected e − s · t (the image embedding minus s times the text's)")
    return "e − s · t: equal to instantstyle.style_embedding's subtraction"
