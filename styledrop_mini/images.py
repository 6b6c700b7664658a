"""Image I/O and conversions: PIL <-> tensors, reading any image a user brings, and labelled grids.

Every image enters the package through `load_image`, so odd files (RGBA, greyscale, palette, 16-bit,
huge, animated, truncated) are handled in one place, with errors that name the file.

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from IPython import get_ipython
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

MAX_PIXELS = 64_000_000  # above this a file is refused rather than risk exhausting memory


class ImageLoadError(ValueError):
    """An image file that cannot be read; the message names the file and the reason."""


def to_rgb(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Any PIL image as 8-bit RGB: transparency composited onto `background`, 16-bit scaled down."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale the full range to 8 bits instead of clipping at 255.
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        image = Image.fromarray((arr / top * 255 + 0.5).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        arr = (arr - arr.min()) / max(arr.max() - arr.min(), 1e-12)
        image = Image.fromarray((arr * 255 + 0.5).astype(np.uint8), "L")
    if image.mode == "P" or image.mode == "LA" or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        base = Image.new("RGB", image.size, background)
        base.paste(image, mask=image.getchannel("A"))
        return base
    return image.convert("RGB")


def fit_square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to `size` x `size` (area filter when shrinking)."""
    return ImageOps.fit(image, (size, size), method=Image.LANCZOS if image.width < size else Image.BOX)


def load_image(path, size: int | None = None) -> Image.Image:
    """Read an image file as RGB (optionally centre-cropped and resized to `size`).

    Animated files give their first frame, with a warning. Errors name the file.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image file")
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # our own size limit (below PIL's bomb warning) speaks instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageLoadError(f"{path}: {im.width}x{im.height} pixels is too large "
                                         f"(limit {MAX_PIXELS:,}); shrink it first")
                if getattr(im, "n_frames", 1) > 1:
                    warnings.warn(f"{path}: animated image with {im.n_frames} frames; using the first",
                                  stacklevel=2)
                    im.seek(0)
                im.load()
                # Phones store pictures sideways plus an EXIF "orientation" tag: apply it, as viewers do.
                rgb = to_rgb(ImageOps.exif_transpose(im))
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:  # so large that PIL refuses to open it at all
        raise ImageLoadError(f"{path}: too large to open safely ({exc}); shrink it first") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{path}: not a readable image ({exc})") from exc
    return fit_square(rgb, size) if size is not None else rgb


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] -> RGB PIL image."""
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape (3, H, W), got {tuple(tensor.shape)}")
    arr = (tensor.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def _label_font(pixels: int):
    return ImageFont.load_default(size=pixels)


LINE_HEIGHT = 13  # pixels per line of an 11-pixel label


def _wrap(text, font, width: float) -> list[str]:
    """`text` as lines no wider than `width` pixels where its words allow (words stay whole; "\n" kept)."""
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            longer = f"{line} {word}" if line else word
            if line and font.getlength(longer) > width:
                lines.append(line)
                line = word
            else:
                line = longer
        lines.append(line)
    return lines


def image_grid(rows: list[list[Image.Image]], row_labels=None, col_labels=None, tile: int | None = None,
               pad: int = 2, label_width: int = 140, header: int = 18, title: str | None = None) -> Image.Image:
    """Lay out rows of images (PIL, or (3, H, W) tensors in [0, 1]) as one picture, with optional row and
    column labels (wrapped onto more lines where wider than their tile or the label column; "\n" breaks)."""
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one row with one image")
    rows = [[tensor_to_pil(im) if torch.is_tensor(im) else im for im in row] for row in rows]
    tile = tile or rows[0][0].width
    font = _label_font(11)
    col_lines = [_wrap(label, font, tile - 4) for label in col_labels] if col_labels else []
    row_lines = [_wrap(label, font, label_width - 8) for label in row_labels] if row_labels else []
    header = max(header, 5 + LINE_HEIGHT * max(map(len, col_lines))) if col_lines else header
    n_cols = max(len(r) for r in rows)
    left = label_width if row_labels else 0
    top = (header if col_labels else 0) + (18 + 4 if title else 0)
    width = left + n_cols * (tile + pad) + pad
    height = top + len(rows) * (tile + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 2), title, fill=(0, 0, 0), font=_label_font(14))
    for j, lines in enumerate(col_lines):
        for k, line in enumerate(lines):
            draw.text((left + pad + j * (tile + pad) + tile / 2, top - header + 3 + k * LINE_HEIGHT), line,
                      fill=(0, 0, 0), font=font, anchor="mt")
    for i, row in enumerate(rows):
        y = top + pad + i * (tile + pad)
        if row_labels:
            lines = row_lines[i]
            for k, line in enumerate(lines):
                draw.text((4, y + tile / 2 + (k - (len(lines) - 1) / 2) * LINE_HEIGHT), line, fill=(0, 0, 0),
                          font=font, anchor="lm")
        for j, im in enumerate(row):
            if im.size != (tile, tile):  # fit inside the tile, keeping its shape; nearest keeps pixels crisp
                scale = tile / max(im.size)
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.NEAREST)
            x = left + pad + j * (tile + pad) + (tile - im.width) // 2
            sheet.paste(im, (x, y + (tile - im.height) // 2), im if im.mode == "RGBA" else None)  # alpha on white
    return sheet


def tensor_grid(images, cols: int, row_labels=None, col_labels=None, tile: int = 64, title: str | None = None,
                label_width: int = 140) -> Image.Image:
    """image_grid for a batch of image tensors (B, 3, H, W) in [0, 1], laid out row by row, `cols` per row."""
    tiles = [tensor_to_pil(image) for image in images]
    rows = [tiles[i:i + cols] for i in range(0, len(tiles), cols)]
    return image_grid(rows, row_labels=row_labels, col_labels=col_labels, tile=tile, title=title,
                      label_width=label_width if row_labels else 0)


def prompt_grid(images, prompts: list[str], tile: int = 128) -> Image.Image:
    """Images drawn for prompts (an equal number each, in prompt order) as a grid: one prompt gives
    rows of 8 under the prompt as the title; several give a labelled row each."""
    tiles = [tensor_to_pil(im) for im in images]
    if len(prompts) == 1:
        return image_grid([tiles[i:i + 8] for i in range(0, len(tiles), 8)], tile=tile, title=prompts[0])
    n = len(tiles) // len(prompts)
    return image_grid([tiles[i:i + n] for i in range(0, len(tiles), n)], tile=tile, row_labels=prompts,
                      label_width=min(420, 12 + 6 * max(map(len, prompts))))


def notebook_pictures_as_jpeg() -> None:
    """In a notebook, keep PIL pictures as JPEG alone: Pillow offers PNG and JPEG, a notebook stores
    both, and a notebook full of grids gets several times larger. Matplotlib figures stay PNG.
    Outside IPython this does nothing."""
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Image.Image, lambda picture: None)
