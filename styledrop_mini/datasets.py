"""Data sets: the mini world as a torch Dataset, and folders of captioned images (`metadata.jsonl`).

All give the same items, so every training loop in the package runs unchanged on a user's own
folder of captioned images:
    {"image": float tensor (3, H, W) in [0, 1], "text": caption,
     "content", "colour", "style": label names ("" when unknown or when the look has no name),
     "content_id", "colour_id", "style_id": indices into world.CONTENTS / COLOURS / STYLES (-1 when unknown),
     "background_id", "fill_id", "outline_id", "effect_id", "palette_id": the look, one index into
         styles.PRIMITIVES per primitive (-1 when unknown)}

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import world
from .checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from .files import MetadataError, inside, read_jsonl
from .images import ImageLoadError, fit_square, load_image, pil_to_tensor, tensor_to_pil
from .prompts import TEMPLATE, styled
from .settings import STYLES_DIR, missing_data_hint
from .styles import PRIMITIVES, Look, all_looks
from .tokenizer import reconstruct

CONTENT_IDS = {name: i for i, name in enumerate(world.CONTENTS)}
COLOUR_IDS = {name: i for i, name in enumerate(world.COLOURS)}
STYLE_IDS = {name: i for i, name in enumerate(world.STYLES)}
PRIMITIVE_KEYS = {name: f"{name}_id" for name in PRIMITIVES}  # "background" -> "background_id"
SPLITS = ("train", "test")


def resolve_styles(styles) -> tuple[str, ...]:
    """'seen' | 'held_out' | 'all' | an iterable of style names -> a tuple of style names."""
    if isinstance(styles, str):
        named = {"seen": world.SEEN_STYLES, "held_out": world.HELD_OUT_STYLES, "all": tuple(world.STYLES)}
        if styles in named:
            return named[styles]
        styles = [styles]
    styles = tuple(styles)
    unknown = [s for s in styles if s not in world.STYLES]
    if unknown or not styles:
        raise ValueError(f"unknown styles {unknown}; use 'seen', 'held_out', 'all' "
                         f"or names from: {', '.join(world.STYLES)}")
    return styles


def _labelled(image, text, content="", colour="", style="", look: Look | None = None):
    look = look or world.STYLE_LOOKS.get(style)
    item = {"image": image, "text": text, "content": content, "colour": colour, "style": style,
            "content_id": CONTENT_IDS.get(content, -1), "colour_id": COLOUR_IDS.get(colour, -1),
            "style_id": STYLE_IDS.get(style, -1)}
    for name, key in PRIMITIVE_KEYS.items():
        item[key] = PRIMITIVES[name].index(getattr(look, name)) if look else -1
    return item


class MiniWorld(Dataset):
    """`n` rendered images of the mini world, balanced over contents x colours x styles.

    Item i shows combination `order[i % n_combinations]` (a seeded shuffle of the grid, so any
    n_combinations consecutive items cover every combination once) and is drawn with render seed
    `2 * (seed * 2**32 + i) + split`: train seeds are even and test seeds odd, so the two splits
    never share an image, whatever their sizes and seeds.
    """

    def __init__(self, n: int = 1000, split: str = "train", styles="seen", contents=world.CONTENTS,
                 colours=tuple(world.COLOURS), size: int = world.IMAGE_SIZE, seed: int = 0,
                 paraphrase: bool = False, cache: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.styles = resolve_styles(styles)
        self.contents, self.colours = tuple(contents), tuple(colours)
        for content in self.contents:
            world._check_labels(content, "red", "flat")
        for colour in self.colours:
            world._check_labels("circle", colour, "flat")
        self.n, self.split, self.size, self.seed = n, split, size, seed
        self.paraphrase = paraphrase
        self.combinations = list(itertools.product(self.contents, self.colours, self.styles))
        self.order = np.random.default_rng(seed).permutation(len(self.combinations))
        self._cache = {} if cache else None

    def __len__(self) -> int:
        return self.n

    def render_seed(self, index: int) -> int:
        return 2 * (self.seed * 2**32 + index) + SPLITS.index(self.split)

    def labels(self, index: int) -> tuple[str, str, str]:
        """(content, colour, style) of item `index`, without rendering it."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a MiniWorld of {self.n} images")
        return self.combinations[self.order[index % len(self.combinations)]]

    def __getitem__(self, index: int) -> dict:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        content, colour, style = self.labels(index)
        seed = self.render_seed(index)
        template = int(np.random.default_rng(seed).integers(len(world.CAPTION_TEMPLATES))) if self.paraphrase else 0
        image = pil_to_tensor(world.render(content, colour, style, seed=seed, size=self.size))
        item = _labelled(image, world.caption(content, colour, style, template), content, colour, style)
        if self._cache is not None:
            self._cache[index] = item
        return item


class LookWorld(Dataset):
    """`n` renders of the style space: what the bundled models train on (issue 16).

    Item i draws, from a generator seeded by (seed, i, split), a content, a colour and a look: with
    probability `named_share` one of the `named` styles' looks, else one of `looks` (by default every
    training look: world.training_looks()). Its caption has varying completeness (world.look_caption:
    the style's name, attribute phrases, nothing about the style, or ignorable words; `caption_kind`
    fixes one kind). Render seeds are even in the train split and odd in the test split, as MiniWorld's.
    """

    def __init__(self, n: int = 1000, split: str = "train", looks=None, named=(), named_share: float = 0.0,
                 seed: int = 0, size: int = world.IMAGE_SIZE, caption_kind: str | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if n < 1 or seed < 0:
            raise ValueError(f"n must be at least 1 and seed >= 0, got n={n}, seed={seed}")
        if not 0 <= named_share <= 1 or (named_share > 0 and not named):
            raise ValueError(f"named_share must be in [0, 1] and needs named styles, got {named_share} with {named!r}")
        self.looks = list(looks) if looks is not None else world.training_looks()
        self.named = resolve_styles(named) if named else ()
        if not self.looks:
            raise ValueError("no looks to draw from")
        self.n, self.split, self.seed, self.size, self.caption_kind = n, split, seed, size, caption_kind
        self.named_share = named_share

    def __len__(self) -> int:
        return self.n

    def labels(self, index: int) -> tuple[str, str, Look, np.random.Generator]:
        """(content, colour, look, the item's generator, ready for its render seed and caption)."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a LookWorld of {self.n} images")
        rng = np.random.default_rng([self.seed, index, SPLITS.index(self.split)])
        content = world.CONTENTS[rng.integers(len(world.CONTENTS))]
        colour = list(world.COLOURS)[rng.integers(len(world.COLOURS))]
        if self.named_share and rng.random() < self.named_share:  # no draw at share 0: items independent of `named`
            look = world.STYLE_LOOKS[self.named[rng.integers(len(self.named))]]
        else:
            look = self.looks[rng.integers(len(self.looks))]
        return content, colour, look, rng

    def __getitem__(self, index: int) -> dict:
        content, colour, look, rng = self.labels(index)
        render_seed = 2 * int(rng.integers(2**31)) + SPLITS.index(self.split)
        image = pil_to_tensor(world.render(content, colour, look, seed=render_seed, size=self.size))
        text = world.look_caption(content, colour, look, rng, self.caption_kind)
        return _labelled(image, text, content, colour, world.look_name(look) or "", look)


# ----------------------------------------------------------------------------------------------
# Image folders with metadata.jsonl (the Hugging Face `datasets` "imagefolder" convention)
# ----------------------------------------------------------------------------------------------
class ImageFolderError(ValueError):
    """A folder of captioned images that cannot be used; the message names the file and line."""


def export_image_folder(dataset, folder, overwrite: bool = False) -> Path:
    """Write every item of `dataset` as a PNG plus one `metadata.jsonl` row (file_name, text, labels)."""
    folder = Path(folder)
    meta = folder / "metadata.jsonl"
    if meta.exists() and not overwrite:
        raise FileExistsError(f"{meta} already exists; pass overwrite=True to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in tqdm(range(len(dataset)), desc=f"exporting to {folder}", leave=False):
        item = dataset[i]
        name = f"{i:05d}.png"
        tensor_to_pil(item["image"]).save(folder / name)
        row = {"file_name": name, "text": item["text"]}
        row.update({k: item[k] for k in ("content", "colour", "style") if item.get(k)})
        rows.append(row)
    tmp = meta.with_suffix(".jsonl.tmp")  # write then rename: a crash never leaves half a file
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(meta)
    return folder


class ImageFolder(Dataset):
    """A folder of images with a `metadata.jsonl`: one JSON object a line with `file_name` and `text`
    (and optionally `content`, `colour`, `style`). Rows are checked when the folder is opened."""

    def __init__(self, folder, size: int = world.IMAGE_SIZE):
        self.folder = Path(folder)
        self.size = size
        if not self.folder.is_dir():
            raise ImageFolderError(f"{self.folder}: no such folder")
        meta = self.folder / "metadata.jsonl"
        if not meta.is_file():
            raise ImageFolderError(f"{meta}: missing; an image folder needs a metadata.jsonl with one "
                                   '{"file_name": ..., "text": ...} object per line')
        self.rows, self.line_numbers = [], []
        for line_no, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{meta}, line {line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImageFolderError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                raise ImageFolderError(f"{where}: needs a \"file_name\" string")
            if not isinstance(row.get("text"), str) or not row["text"].strip():
                raise ImageFolderError(f"{where}: row for {row['file_name']!r} has no \"text\" caption")
            try:
                inside(self.folder, row["file_name"], where)  # never a file outside the folder
            except MetadataError as exc:
                raise ImageFolderError(str(exc)) from None
            if not (self.folder / row["file_name"]).is_file():
                raise ImageFolderError(f"{where}: image {row['file_name']!r} not found in {self.folder}")
            self.rows.append(row)
            self.line_numbers.append(line_no)
        if not self.rows:
            raise ImageFolderError(f"{meta}: no rows")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        try:
            image = load_image(self.folder / row["file_name"], self.size)
        except ImageLoadError as exc:
            raise ImageFolderError(f"{exc} (listed in {self.folder / 'metadata.jsonl'}, "
                                   f"line {self.line_numbers[index]})") from exc
        return _labelled(pil_to_tensor(image), row["text"], row.get("content", ""),
                         row.get("colour", ""), row.get("style", ""))


@dataclass
class StyleReference:
    """One style reference: the image, what it shows and the words for its style. Its caption is
    `template` filled with both ("a yellow house in stained glass style"); `content` may be left
    empty for the mini CLIP to propose (adapters.tune_style)."""
    image: torch.Tensor  # (3, H, W) in [0, 1]
    descriptor: str  # the style's words, e.g. "stained glass"
    content: str = ""  # what it shows, e.g. "a yellow house"
    template: str = TEMPLATE
    file_name: str = ""
    style: str = ""  # the style's name, when it has one
    content_label: str = ""  # the mini world's name of the content ("house"), when known: leakage is judged on it

    @staticmethod
    def from_file(path, descriptor: str, content: str = "", template: str = TEMPLATE, size: int = world.IMAGE_SIZE,
                  style: str = "", say=print) -> "StyleReference":
        """Read and check a reference picture (any mode; centre-cropped and resized to `size`, which
        `say` mentions) and its words, before any model is loaded."""
        raw = load_image(path)  # any mode (RGBA, greyscale, palette, 16-bit) comes back as RGB
        styled(content or "a thing", descriptor, template)  # an empty descriptor or a bad template fails now
        if raw.size != (size, size):
            say(f"note: {path} is {raw.width}x{raw.height}; centre-cropped and resized to {size}x{size}")
        return StyleReference(pil_to_tensor(fit_square(raw, size)), descriptor, content, template,
                              str(Path(path).resolve()), style or descriptor)

    @property
    def caption(self) -> str:
        return styled(self.content, self.descriptor, self.template)


REFERENCE_KEYS = ("file_name", "style", "descriptor", "reference_content", "content")


def rendered_reference(style: str, content: str = "house", colour: str = "yellow", seed: int = 7) -> StyleReference:
    """A render of a world style as a reference ("a yellow house", odd seed: a test render), e.g. a seen
    style the base can draw, as a control beside the held-out ones."""
    image = pil_to_tensor(world.render(content, colour, style, seed=seed))
    return StyleReference(image, world.STYLES[style], world.with_articles(f"a {colour} {content}"), style=style,
                          content_label=content)


def style_references(folder=None, size: int = 64) -> dict[str, StyleReference]:
    """The bundled single reference image of each held-out style (data/styles/, one metadata.jsonl row
    each: file_name, style, descriptor, reference_content = "a yellow house", content = "house"):
    style name -> StyleReference with a (3, size, size) image."""
    folder = Path(folder) if folder else STYLES_DIR
    meta = folder / "metadata.jsonl"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of style references{missing_data_hint(folder)}")
    references = {}
    for line_no, row in read_jsonl(meta, "style references list"):
        missing = [key for key in REFERENCE_KEYS if not isinstance(row.get(key), str)]
        if missing:
            raise MetadataError(f"{meta}, line {line_no}: needs the strings {', '.join(missing)}")
        path = inside(folder, row["file_name"], f"{meta}, line {line_no}")
        references[row["style"]] = StyleReference(
            pil_to_tensor(fit_square(load_image(path), size)), row["descriptor"], row["reference_content"],
            file_name=row["file_name"], style=row["style"], content_label=row["content"])
    return references


# ----------------------------------------------------------------------------------------------
# Banks: a data set rendered once (in parallel) into memory, then sampled in batches by index
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Captioned:
    """What every bank holds beside its pixels or tokens: N captions and label ids (the look's
    primitives in `primitive_ids`, one (N,) tensor per primitive; empty for data sets that do not know them)."""
    texts: list[str]
    content_ids: torch.Tensor
    colour_ids: torch.Tensor
    style_ids: torch.Tensor
    primitive_ids: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def captions(self) -> dict:
        """The captions and label ids, as keyword arguments for another bank of the same images."""
        return {"texts": self.texts, "content_ids": self.content_ids, "colour_ids": self.colour_ids,
                "style_ids": self.style_ids, "primitive_ids": self.primitive_ids}

    def labels(self, index: torch.Tensor, device="cpu") -> dict:
        """A batch's label ids, as a data set's items name them ("content_id", ..., "background_id", ...)."""
        labels = {"content_id": self.content_ids[index].to(device), "colour_id": self.colour_ids[index].to(device),
                  "style_id": self.style_ids[index].to(device)}
        labels.update({PRIMITIVE_KEYS[name]: ids[index].to(device) for name, ids in self.primitive_ids.items()})
        return labels


@dataclass(kw_only=True)
class ImageBank(Captioned):
    """N rendered images as uint8 (N, 3, H, W), with their captions and label ids."""
    images: torch.Tensor

    @staticmethod
    def render(dataset, workers: int | None = None, desc: str = "rendering") -> "ImageBank":
        workers = min(os.cpu_count() or 1, 16) if workers is None else workers
        loader = DataLoader(dataset, batch_size=256, num_workers=workers, shuffle=False)
        images, texts = [], []
        ids = {key: [] for key in ("content_id", "colour_id", "style_id", *PRIMITIVE_KEYS.values())}
        for batch in tqdm(loader, desc=f"{desc} {len(dataset)} images", leave=False):
            images.append((batch["image"] * 255 + 0.5).to(torch.uint8))
            texts.extend(batch["text"])
            for key in ids:
                ids[key].append(batch[key])
        ids = {key: torch.cat(parts) for key, parts in ids.items()}
        return ImageBank(images=torch.cat(images), texts=texts, content_ids=ids["content_id"],
                         colour_ids=ids["colour_id"], style_ids=ids["style_id"],
                         primitive_ids={name: ids[key] for name, key in PRIMITIVE_KEYS.items()})

    @torch.no_grad()
    def with_reconstructions(self, tokenizer, batch_size: int = 500) -> "ImageBank":
        """This bank twice: the renders, then their tokenizer reconstructions with the same labels (the
        kind of image a generator makes, which the judges must read as well as a render)."""
        decoded, _ = reconstruct(tokenizer, self.images.float() / 255.0, batch_size)
        twice = lambda ids: torch.cat([ids, ids])  # noqa: E731
        return ImageBank(images=torch.cat([self.images, (decoded * 255 + 0.5).to(torch.uint8)]), texts=self.texts * 2,
                         content_ids=twice(self.content_ids), colour_ids=twice(self.colour_ids),
                         style_ids=twice(self.style_ids),
                         primitive_ids={name: twice(ids) for name, ids in self.primitive_ids.items()})

    def batch(self, index: torch.Tensor, device="cpu") -> dict:
        return {"image": self.images[index].to(device).float() / 255.0,
                "text": [self.texts[i] for i in index.tolist()], **self.labels(index, device)}


@dataclass(kw_only=True)
class TokenBank(Captioned):
    """The same images as token grids (N, h*w), for training the generator: encode once, reuse."""
    tokens: torch.Tensor

    @staticmethod
    @torch.no_grad()
    def encode(bank: ImageBank, tokenizer, batch_size: int = 500) -> "TokenBank":
        device = tokenizer.quantizer.codebook.device
        tokens = [tokenizer.encode(bank.images[i:i + batch_size].to(device).float() / 255.0).flatten(1).cpu()
                  for i in tqdm(range(0, len(bank), batch_size), desc="tokenizing", leave=False)]
        return TokenBank(tokens=torch.cat(tokens).short(), **bank.captions())

    def batch(self, index: torch.Tensor, device="cpu") -> dict:
        return {"tokens": self.tokens[index].to(device).long(), "text": [self.texts[i] for i in index.tolist()],
                **self.labels(index)}

    def save(self, path, source: dict) -> Path:
        """Keep this bank in a run folder, so that a resumed run skips rendering and tokenizing (14 min
        for 120,000 images on 2 CPU cores). `source` says what it was made from; `load` checks it."""
        tensors = {"tokens": self.tokens, "content_ids": self.content_ids, "colour_ids": self.colour_ids,
                   "style_ids": self.style_ids, **{f"primitive.{k}": v for k, v in self.primitive_ids.items()}}
        return save_checkpoint(path, tensors, "token_bank", source, {"texts": self.texts})

    @staticmethod
    def load(path, source: dict) -> "TokenBank | None":
        """The bank `save` kept at `path` if it was made from the same `source`; None (and why, printed)
        when there is none, it was made from something else, or it cannot be read: then make it again."""
        path = Path(path)
        if not path.exists():
            return None
        try:
            tensors, config, info = read_checkpoint(path, "token_bank")
        except CheckpointError as exc:
            print(f"note: not using the kept token bank: {exc}")
            return None
        if config != source:
            changed = sorted(k for k in source.keys() | config.keys() if config.get(k) != source.get(k))
            print(f"note: not using the kept token bank {path}: made with other {', '.join(changed)}")
            return None
        return TokenBank(tokens=tensors["tokens"], texts=info["texts"], content_ids=tensors["content_ids"],
                         colour_ids=tensors["colour_ids"], style_ids=tensors["style_ids"],
                         primitive_ids={k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("primitive.")})


# ----------------------------------------------------------------------------------------------
# What the bundled models train on
# ----------------------------------------------------------------------------------------------
# Renders of the style space (LookWorld), a quarter of them in a named style so that the names mean
# something. The measuring models (tokenizer, CLIP, judges) see the whole space, held-out looks
# included: they stand for models trained on broad data. The generator sees the training looks only
# (world.training_looks) and the seen named styles.
TRAINING_WORLDS = {"all": dict(looks="all", named="all"), "seen": dict(looks="training", named="seen")}
NAMED_SHARE = 0.25


def training_world(which: str, n: int, seed: int = 0, split: str = "train") -> LookWorld:
    """The LookWorld of TRAINING_WORLDS[which] ("all" or "seen"), `n` images."""
    if which not in TRAINING_WORLDS:
        raise ValueError(f"unknown training world {which!r}; choose one of {', '.join(TRAINING_WORLDS)}")
    spec = TRAINING_WORLDS[which]
    looks = all_looks() if spec["looks"] == "all" else world.training_looks()
    return LookWorld(n, split=split, looks=looks, named=spec["named"], named_share=NAMED_SHARE, seed=seed)
