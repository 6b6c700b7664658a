"""Ground-truth judges: small classifiers of an image's content, colour and look.

CLIP scores are what the StyleDrop paper reports, but CLIP can be fooled. In the mini world we also
know the truth of every training image, so we can train *judges* that tell us, for any generated
image, "this is a star (99 %), it is pink, on a paper background with a wash fill and bleeding edges".
They are trained on the whole world, held-out looks included, and on slightly degraded copies (noise,
blur), because they will mostly look at generated images, which are never as clean as renders.

One head per label: content, colour, and each style primitive (background, fill, outline, effect,
palette; styles.PRIMITIVES). The rule for "the style is right", against a named style, is that EVERY
primitive head agrees with the style's recipe (world.STYLE_LOOKS): a neon image needs a dark
background, no fill, a glow outline, no effect and its colours as they are. The judged *style* of an
image is the named style whose recipe its five judged primitives make, or "" when they make none.

`style_embedding` gives a style descriptor in the spirit of CSD (Somepalli et al. 2024): the five
primitive heads' probabilities, one unit vector per primitive. The heads were trained to name the
look whatever the content, so the descriptor ignores content by construction, and it applies to any
image, a style drawn outside the world included (cosine similarity: `style_similarity`).

Chapter 02: tutorials/02_clip_and_judges.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import world
from .checkpoints import load_model, save_model
from .images import pil_to_tensor
from .styles import PRIMITIVES, Look
from .tokenizer import reconstruct

KIND = "judges"
HEADS = {"content": list(world.CONTENTS), "colour": list(world.COLOURS),
         **{name: list(values) for name, values in PRIMITIVES.items()}}
STYLE_NAMES = list(world.STYLES)


@dataclass
class JudgesConfig:
    image_size: int = 64
    channels: tuple = (32, 64, 96, 128)  # one conv stage per 2x downsampling: 64 -> 4 px
    hidden: int = 256
    dropout: float = 0.1


def conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class Judges(nn.Module):
    """One convolutional trunk, one classification head per label (HEADS)."""

    def __init__(self, config: JudgesConfig | None = None):
        super().__init__()
        self.config = config or JudgesConfig()
        self.config.channels = tuple(self.config.channels)
        cfg = self.config
        stages, width = [], 3
        for c in cfg.channels:
            stages.append(conv_stage(width, c))
            width = c
        self.trunk = nn.Sequential(*stages)
        side = cfg.image_size // 2 ** len(cfg.channels)
        self.neck = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout),
                                  nn.Linear(width * side * side, cfg.hidden), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.hidden, len(names)) for name, names in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, 64, 64) in [0, 1] -> logits for each head."""
        s = self.config.image_size
        if images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"expected images of shape (B, 3, {s}, {s}), got {tuple(images.shape)}")
        h = self.neck(self.trunk(images * 2 - 1))
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Each head's softmax over its labels: {"content": (B, 40), "colour": (B, 8), "background": ...}."""
        device = next(self.parameters()).device
        outs = {name: [] for name in HEADS}
        for start in range(0, len(images), batch_size):
            logits = self(images[start:start + batch_size].to(device).float())
            for name in HEADS:
                outs[name].append(logits[name].float().softmax(-1).cpu())
        return {name: torch.cat(parts) for name, parts in outs.items()}

    def judge(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, dict]:
        """Predicted labels and confidences: {"content": {"labels": [...], "ids", "confidence", "probs"}, ...}
        for every head, plus "look" (the judged styles.Look of each image) and "style": the named style
        those looks are ("" and id -1 for a look without a name), confidence the product of the five."""
        result = {}
        for name, probs in self.probabilities(images, batch_size).items():
            confidence, ids = probs.max(-1)
            result[name] = {"labels": [HEADS[name][i] for i in ids.tolist()], "ids": ids, "confidence": confidence,
                            "probs": probs}
        looks = [Look(*values) for values in zip(*(result[name]["labels"] for name in PRIMITIVES))]
        names = [world.look_name(look) or "" for look in looks]
        result["look"] = looks
        result["style"] = {"labels": names, "ids": torch.tensor([STYLE_NAMES.index(n) if n else -1 for n in names]),
                           "confidence": torch.stack([result[name]["confidence"] for name in PRIMITIVES]).prod(0)}
        return result

    def accuracy(self, images: torch.Tensor, content=None, colour=None, style=None, **primitives) -> dict[str, float]:
        """Fraction of images whose judged labels match the intended ones (names or ids; None: skipped).
        `style` (named styles) is right when every primitive matches the style's recipe; primitives
        (background=..., fill=..., ...) are checked one by one."""
        verdict = self.judge(images)
        scores = {}
        for name, wanted in (("content", content), ("colour", colour), *primitives.items()):
            if name not in HEADS:
                raise ValueError(f"unknown head {name!r}; the judges have: {', '.join(HEADS)}")
            if wanted is None:
                continue
            ids = _as_ids(wanted, HEADS[name], len(images))
            scores[name] = float((verdict[name]["ids"] == ids).float().mean())
        if style is not None:
            ids = _as_ids(style, STYLE_NAMES, len(images))
            recipes = [world.STYLE_LOOKS[STYLE_NAMES[i]] for i in ids.tolist()]
            scores["style"] = sum(look == recipe for look, recipe in zip(verdict["look"], recipes)) / len(images)
        return scores

    def style_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """A content-blind style descriptor (B, 37): each primitive head's probabilities as a unit
        vector, concatenated and scaled so that the whole is a unit vector too."""
        probs = self.probabilities(images)
        parts = [F.normalize(probs[name], dim=-1) for name in PRIMITIVES]
        return torch.cat(parts, -1) / len(parts) ** 0.5

    def save(self, path, info=None, dtype=None):
        return save_model(self, path, KIND, info, dtype)

    @staticmethod
    def load(path, device="cpu") -> "Judges":
        return load_model(Judges, JudgesConfig, path, KIND, device)


def style_similarity(judges: Judges, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (B,) of each image's style embedding to the reference's (3, H, W): the mean,
    over the five primitives, of how much their judged values agree (1 = the same look)."""
    return judges.style_embedding(images) @ judges.style_embedding(reference[None])[0]


def _as_ids(wanted, names: list[str], n: int) -> torch.Tensor:
    """One label for all, a list of names, or ids -> an id tensor of length n."""
    if isinstance(wanted, str):
        wanted = [wanted] * n
    if torch.is_tensor(wanted):
        return wanted.cpu().long()
    ids = []
    for w in wanted:
        if isinstance(w, str):
            if w not in names:
                raise ValueError(f"unknown label {w!r}; choose from {', '.join(names)}")
            ids.append(names.index(w))
        else:
            ids.append(int(w))
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} labels for {n} images")
    return torch.tensor(ids)


def degrade(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mild random noise and blur on half of a batch, so the judges stay calm on imperfect images."""
    b = images.shape[0]
    device = images.device
    noise = torch.randn(images.shape, generator=generator).to(device) * 0.03
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    pick = (torch.rand(b, generator=generator) < 0.5).to(device)[:, None, None, None]
    mix = torch.rand(b, 1, 1, 1, generator=generator).to(device)
    out = torch.where(pick, images * (1 - mix) + blurred * mix + noise, images)
    return out.clamp(0, 1)


def judges_loss(model: Judges, batch: dict):
    logits = model(degrade(batch["image"]))
    losses, metrics = [], {}
    for name in HEADS:
        target = batch[f"{name}_id"]
        losses.append(F.cross_entropy(logits[name].float(), target, label_smoothing=0.05, ignore_index=-1))
        known = target >= 0
        metrics[f"{name}_acc"] = float((logits[name].argmax(-1) == target)[known].float().mean())
    return sum(losses), metrics


# ----------------------------------------------------------------------------------------------
# The subject judge: "is this the sks star?" — DreamBooth's subject fidelity, with ground truth
# ----------------------------------------------------------------------------------------------
# The world can draw its DreamBooth subject (world.render_subject) in every style, held-out ones too,
# so we can train a judge of identity the same way as the others: positives are the subject in any
# style and pose; negatives are the look-alikes a generator might draw instead — ordinary five-point
# stars of every colour (orange ones included), six-point stars of other colours, and anything else
# in the world. Half the examples pass through the tokenizer first, because the judge looks at
# generated images, which are tokenizer decodes.
SUBJECT_KIND = "subject_judge"
SUBJECT_TRAINING = dict(n=6000, steps=800, batch_size=128, lr=3e-3, seed=0)


@dataclass
class SubjectJudgeConfig:
    image_size: int = 64
    channels: tuple = (16, 32, 64)
    hidden: int = 64
    dropout: float = 0.1


class SubjectJudge(nn.Module):
    """A small CNN with one logit: is this image the DreamBooth subject, in whatever style?"""

    def __init__(self, config: SubjectJudgeConfig | None = None):
        super().__init__()
        self.config = config or SubjectJudgeConfig()
        self.config.channels = tuple(self.config.channels)
        cfg, width, stages = self.config, 3, []
        for c in cfg.channels:
            stages.append(conv_stage(width, c))
            width = c
        side = cfg.image_size // 2 ** len(cfg.channels)
        self.net = nn.Sequential(*stages, nn.Flatten(), nn.Dropout(cfg.dropout),
                                 nn.Linear(width * side * side, cfg.hidden), nn.ReLU(inplace=True),
                                 nn.Linear(cfg.hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, 64, 64) in [0, 1] -> one logit each (B,)."""
        s = self.config.image_size
        if images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"expected images of shape (B, 3, {s}, {s}), got {tuple(images.shape)}")
        return self.net(images * 2 - 1)[:, 0]

    @torch.no_grad()
    def probability(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """P(this is the subject) for each image (B,)."""
        device = next(self.parameters()).device
        return torch.cat([self(images[i:i + batch_size].to(device).float()).float().sigmoid().cpu()
                          for i in range(0, len(images), batch_size)])

    def fidelity(self, images: torch.Tensor) -> float:
        """Subject fidelity: the fraction of images the judge calls the subject (P > 0.5)."""
        return float((self.probability(images) > 0.5).float().mean())

    def save(self, path, info=None, dtype=None):
        return save_model(self, path, SUBJECT_KIND, info, dtype)

    @staticmethod
    def load(path, device="cpu") -> "SubjectJudge":
        return load_model(SubjectJudge, SubjectJudgeConfig, path, SUBJECT_KIND, device)


def subject_examples(n: int, seed: int = 0, styles=None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`n` rendered images with labels (1 = the subject) and a short description of each: half the
    subject in a random pose and style, half look-alikes (see above). Same seed, same images."""

    rng = np.random.default_rng(seed)
    styles = list(styles or world.STYLES)
    others = [c for c in world.COLOURS if c != world.SUBJECT["colour"]]
    images, labels, kinds = [], [], []
    for _ in range(n):
        style, render_seed, r = styles[rng.integers(len(styles))], int(rng.integers(2**31)), rng.random()
        if r < 0.5:
            image, label, kind = world.render_subject(None, style, render_seed), 1, "subject"
        elif r < 0.65:
            image, label, kind = world.render("star", world.SUBJECT["colour"], style, render_seed), 0, "orange star"
        elif r < 0.75:
            colour = list(world.COLOURS)[rng.integers(len(world.COLOURS))]
            image, label, kind = world.render("star", colour, style, render_seed), 0, "star"
        elif r < 0.85:
            colour = others[rng.integers(len(others))]
            image, label, kind = world.render_subject(None, style, render_seed, colour), 0, "six points, other colour"
        else:
            content = world.CONTENTS[rng.integers(len(world.CONTENTS))]
            colour = list(world.COLOURS)[rng.integers(len(world.COLOURS))]
            image, label, kind = world.render(content, colour, style, render_seed), 0, "anything else"
        images.append(pil_to_tensor(image))
        labels.append(label)
        kinds.append(kind)
    return torch.stack(images), torch.tensor(labels, dtype=torch.float32), kinds


def train_subject_judge(tokenizer, n: int = SUBJECT_TRAINING["n"], steps: int = SUBJECT_TRAINING["steps"],
                        batch_size: int = SUBJECT_TRAINING["batch_size"], lr: float = SUBJECT_TRAINING["lr"],
                        seed: int = SUBJECT_TRAINING["seed"], progress: bool = True) -> tuple[SubjectJudge, list]:
    """Train a SubjectJudge on `n` examples and their tokenizer reconstructions. Returns (judge, losses)."""

    images, labels, _ = subject_examples(n, seed)
    decoded, _ = reconstruct(tokenizer, images)
    images, labels = torch.cat([images, decoded.clamp(0, 1)]), torch.cat([labels, labels])
    torch.manual_seed(seed)
    judge = SubjectJudge()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    generator, losses = torch.Generator().manual_seed(seed), []
    for _ in tqdm(range(steps), desc="subject judge", disable=not progress):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(judge(degrade(images[index], generator)), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return judge.eval(), losses
