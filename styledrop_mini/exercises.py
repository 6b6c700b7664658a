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

import open_clip
import torch
import torch.nn.functional as F

from . import world
from .adapters import AdapterConfig, Bottleneck, attach, count
from .clip import MiniClip
from .datasets import ImageFolder, MiniWorld
from .feedback import write_json
from .prompts import styled
from .sampling import masked_after
from .settings import CHECKPOINT_DIR
from .styles import PRIMITIVES, all_looks
from .tokenizer import TokenizerConfig, psnr
from .transformer import MaskedTransformer, TransformerConfig

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
    message = CHECKS[name](answer)
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


def _random_vectors():
    g = torch.Generator().manual_seed(0)
    return torch.randn(300, 16, generator=g), torch.randn(64, 16, generator=g)


@exercise("01.nearest_code")
def _nearest_code(answer) -> str:
    vectors, codebook = _random_vectors()
    got = answer(vectors, codebook)
    if not torch.is_tensor(got) or got.shape != (300,):
        raise ExerciseError(f"expected a tensor of 300 indices, got {getattr(got, 'shape', type(got))}")
    want = ((vectors[:, None] - codebook[None]) ** 2).sum(-1).argmin(1)
    wrong = (got.long() != want).nonzero()
    if len(wrong):
        i = int(wrong[0])
        if torch.equal(got.long(), ((vectors[:, None] - codebook[None]) ** 2).sum(-1).argmax(1)):
            raise ExerciseError("you picked the farthest code: use argmin, not argmax")
        raise ExerciseError(f"{len(wrong)} of 300 indices differ; vector {i} is nearest to code {int(want[i])}, "
                            f"you gave {int(got[i])}")
    return "all 300 vectors matched to their nearest code"


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
@exercise("02.clip_loss")
def _clip_loss(answer) -> str:
    g = torch.Generator().manual_seed(2)
    img = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = F.normalize(img + 0.5 * torch.randn(6, 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    want = open_clip.ClipLoss()(img, txt, scale)
    got = torch.as_tensor(answer(img, txt, scale)).float()
    if got.numel() != 1:
        raise ExerciseError(f"the loss should be one number, got shape {tuple(got.shape)}")
    if torch.allclose(got, want, atol=1e-4):
        return f"{float(want):.4f}, the same as open_clip's ClipLoss"
    logits = scale * img @ txt.T
    one_way = F.cross_entropy(logits, torch.arange(6))
    if torch.allclose(got, one_way, atol=1e-4):
        raise ExerciseError("that is only the image-to-text direction; average it with the text-to-image one")
    if torch.allclose(got, F.cross_entropy(img @ txt.T, torch.arange(6)) / 2
                      + F.cross_entropy(txt @ img.T, torch.arange(6)) / 2, atol=1e-4):
        raise ExerciseError("multiply the cosines by logit_scale before the cross-entropy")
    raise ExerciseError(f"got {float(got):.4f}, expected {float(want):.4f}")


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


@exercise("04.bottleneck")
def _bottleneck(answer) -> str:
    torch.manual_seed(4)
    layer = Bottleneck(16, 3)
    torch.nn.init.normal_(layer.up.weight, std=0.5)  # a trained adapter: W_up is no longer zero
    torch.nn.init.normal_(layer.up.bias, std=0.1)
    h = torch.randn(2, 5, 16)
    with torch.no_grad():
        want = layer(h)
        got = torch.as_tensor(answer(h, layer.down.weight, layer.down.bias, layer.up.weight, layer.up.bias))
        if got.shape != want.shape:
            raise ExerciseError(f"the output keeps the shape of h, {tuple(h.shape)}; got {tuple(got.shape)}")
        if torch.allclose(got, want - h, atol=1e-5):
            raise ExerciseError("add the input back: the adapter is a residual, h + W_up GELU(W_down h)")
        no_gelu = h + (h @ layer.down.weight.T + layer.down.bias) @ layer.up.weight.T + layer.up.bias
        if torch.allclose(got, no_gelu, atol=1e-5):
            raise ExerciseError("the GELU between W_down and W_up is missing (without it the bottleneck is linear)")
        if not torch.allclose(got, want, atol=1e-5):
            raise ExerciseError("the result differs from h + W_up GELU(W_down h + b_down) + b_up; "
                                "nn.Linear stores W as (out, in), so x @ W.T")
    return "h + W_up · GELU(W_down · h): equal to styledrop_mini.adapters.Bottleneck"


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


@exercise("08.class_prompt")
def _class_prompt(answer) -> str:
    cases = {("an orange sks star in flat style", "sks"): "an orange star in flat style",
             ("a sks dog", "sks"): "a dog",
             ("a zwx robot in pixel art style", "zwx"): "a robot in pixel art style"}
    for (prompt, identifier), want in cases.items():
        got = answer(prompt, identifier)
        if got == prompt:
            raise ExerciseError(f"{prompt!r} came back unchanged: remove the identifier {identifier!r}")
        if "  " in got or got != got.strip():
            raise ExerciseError(f"got {got!r}: removing a word must not leave double or trailing spaces")
        if got != want:
            raise ExerciseError(f"class_prompt({prompt!r}, {identifier!r}) should be {want!r}, got {got!r}")
    got = answer("a tasks sks star", "sks")
    if got != "a tasks star":
        raise ExerciseError(f"only the whole word is the identifier: 'a tasks sks star' should become 'a tasks star', "
                            f"got {got!r} (str.replace also cuts words that contain it)")
    return "the class prompt is the instance prompt without the identifier: what prior preservation protects"
