import numpy as np
import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from styledrop_mini.images import (ImageLoadError, image_grid, load_image, notebook_pictures_as_jpeg, pil_to_tensor,
                                   tensor_grid, tensor_to_pil)


def test_tensor_round_trip():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8))
    tensor = pil_to_tensor(image)
    assert tensor.shape == (3, 16, 24)
    assert np.array_equal(np.asarray(tensor_to_pil(tensor)), np.asarray(image))
    with pytest.raises(ValueError, match="3, H, W"):
        tensor_to_pil(torch.zeros(1, 4, 4))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "I;16", "1", "CMYK"])
def test_odd_modes_load_as_rgb(tmp_path, mode):
    base = Image.new("RGB", (40, 30), (200, 30, 30))
    if mode == "I;16":
        image = Image.fromarray((np.full((30, 40), 40000)).astype(np.uint16))
    elif mode in ("RGBA", "LA"):
        image = base.convert(mode)
        image.putalpha(0)  # fully transparent: must come out as the white background
    else:
        image = base.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    image.save(path)
    out = load_image(path, size=32)
    assert out.mode == "RGB" and out.size == (32, 32)
    arr = np.asarray(out)
    if mode in ("RGBA", "LA"):
        assert arr.min() == 255
    if mode == "I;16":
        assert abs(int(arr[0, 0, 0]) - round(40000 / 65535 * 255)) <= 1  # scaled, not clipped


def test_animated_gif_gives_first_frame_with_a_warning(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="animated"):
        out = load_image(tmp_path / "a.gif")
    r, g, b = np.asarray(out)[10, 10]
    assert r > 200 and b < 50


def test_wide_image_is_centre_cropped(tmp_path):
    arr = np.zeros((10, 30, 3), dtype=np.uint8)
    arr[:, 10:20] = 255  # white centre third
    Image.fromarray(arr).save(tmp_path / "w.png")
    out = np.asarray(load_image(tmp_path / "w.png", size=10))
    assert out.min() == 255


def test_unreadable_files_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_text("hello")
    with pytest.raises(ImageLoadError, match="junk.png: not a readable image"):
        load_image(tmp_path / "junk.png")
    with pytest.raises(ImageLoadError, match="nope.png: no such file"):
        load_image(tmp_path / "nope.png")


def test_huge_image_is_refused(tmp_path, monkeypatch):
    import styledrop_mini.images as images

    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(tmp_path / "big.png")


def test_grid_size():
    tiles = [[Image.new("RGB", (8, 8))] * 3] * 2
    sheet = image_grid(tiles, pad=1)
    assert sheet.size == (3 * 9 + 1, 2 * 9 + 1)
    with pytest.raises(ValueError):
        image_grid([])


def test_tensor_grid_lays_out_rows_of_tensors():
    images = torch.zeros(5, 3, 8, 8)
    images[4, 0] = 1.0  # the last image is red: it must land in row 2, column 2
    sheet = tensor_grid(images, cols=3, tile=8)
    assert sheet.size == (3 * 10 + 2, 2 * 10 + 2)
    assert sheet.getpixel((2 + 1 * 10 + 4, 2 + 1 * 10 + 4)) == (255, 0, 0)


def test_exif_orientation_is_applied_as_viewers_do(tmp_path):
    # a phone photo: stored 40 wide x 20 high, left half red, with EXIF orientation 6 ("rotate 90 clockwise")
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = load_image(tmp_path / "phone.jpg")
    assert shown.size == (20, 40)  # upright, as a viewer shows it
    top, bottom = shown.getpixel((10, 5)), shown.getpixel((10, 35))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # the left (red) half is now on top


def _png_header(path, width, height):
    """A PNG that only claims its size: PIL reads the header and decides before decoding any pixel."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_a_clear_error(tmp_path):
    _png_header(tmp_path / "bomb.png", 30000, 30000)  # 900 M pixels: PIL refuses to open it at all
    with pytest.raises(ImageLoadError, match="bomb.png: too large to open safely"):
        load_image(tmp_path / "bomb.png")
    _png_header(tmp_path / "big.png", 10000, 10000)  # 100 M pixels: PIL only warns; our limit refuses it
    with pytest.raises(ImageLoadError, match="big.png: 10000x10000 pixels is too large"):
        load_image(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_grid_labels_wrap_and_pictures_keep_their_shape():
    red = Image.new("RGB", (64, 64), (255, 0, 0))
    short = image_grid([[red, red]], col_labels=["a", "b"], tile=64)
    wrapped = image_grid([[red, red]], col_labels=["a red star in glowing neon style", "b"], tile=64)
    broken = image_grid([[red, red]], col_labels=["a\nb\nc", "d"], tile=64)
    assert wrapped.width == short.width and wrapped.height > short.height  # more lines, same columns
    assert broken.height - short.height == (5 + 3 * 13) - 18  # a header of three 13-px lines, not the 18-px one
    wide = Image.new("RGBA", (300, 100), (0, 0, 0, 0))  # transparent except a blue band
    wide.paste((0, 0, 255, 255), (0, 40, 300, 60))
    sheet = np.asarray(image_grid([[wide, torch.zeros(3, 64, 64)]], tile=60, pad=0))
    assert sheet.shape == (60, 120, 3)
    assert (sheet[5, 30] == 255).all()  # above the band: transparent pixels land on white, not black
    assert tuple(sheet[30, 30]) == (0, 0, 255)  # the band, 300 x 100 scaled to 60 x 20 and centred
    assert (sheet[30, 90] == 0).all()  # a tensor image, as tensor_grid would show it


def test_notebook_pictures_go_in_as_jpeg_alone():
    shell = InteractiveShell.instance()  # a notebook's shell, made for this test
    picture = Image.new("RGB", (64, 64), (255, 0, 0))
    assert "image/png" in shell.display_formatter.format(picture)[0]  # Pillow offers both
    notebook_pictures_as_jpeg()
    stored = shell.display_formatter.format(picture)[0]
    assert "image/jpeg" in stored and "image/png" not in stored
    InteractiveShell.clear_instance()
