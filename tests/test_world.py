import math

import numpy as np
import pytest

from styledrop_mini import world


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_world_has_the_promised_variety():
    assert len(world.SHAPES) >= 12 and len(world.LETTERS) == 26
    assert len(world.COLOURS) >= 8
    assert len(world.STYLES) >= 10
    assert len(world.HELD_OUT_STYLES) >= 3
    assert set(world.HELD_OUT_STYLES) <= set(world.STYLES)
    assert not set(world.HELD_OUT_STYLES) & set(world.SEEN_STYLES)


def test_render_is_deterministic_for_a_seed():
    a = world.render("star", "red", "watercolor", seed=7)
    b = world.render("star", "red", "watercolor", seed=7)
    c = world.render("star", "red", "watercolor", seed=8)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))


@pytest.mark.parametrize("style", list(world.STYLES))
def test_every_content_renders_in_every_style(style):
    for i, content in enumerate(world.CONTENTS):
        image = world.render(content, list(world.COLOURS)[i % 8], style, seed=i)
        assert image.mode == "RGB" and image.size == (64, 64)
        arr = np.asarray(image)
        assert arr.dtype == np.uint8
        # the content is visible: the image is not one flat colour
        assert arr.reshape(-1, 3).std(0).max() > 10, (content, style)


def test_styles_are_distinct_from_each_other():
    # Mean absolute difference of same content/colour/seed between every pair of styles.
    renders = {s: pixels(world.render("square", "green", s, seed=3)) for s in world.STYLES}
    names = list(renders)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff = np.abs(renders[a] - renders[b]).mean()
            assert diff > 4, f"{a} and {b} look alike (mean abs difference {diff:.1f})"


def test_palette_owning_styles_change_the_background():
    corner = lambda style: pixels(world.render("circle", "red", style, seed=1))[:4, :4].mean()  # noqa: E731
    assert corner("neon") < 40  # dark
    assert corner("flat") > 200  # light
    blue = pixels(world.render("circle", "red", "blueprint", seed=1))[:4, :4].reshape(-1, 3).mean(0)
    assert blue[2] > blue[0] + 40  # blue paper


def test_colour_reaches_the_pixels():
    # The most saturated pixels of a red flat star are red, of a blue one blue.
    for colour, channel in (("red", 0), ("green", 1), ("blue", 2)):
        arr = pixels(world.render("square", colour, "flat", seed=0)).reshape(-1, 3)
        centre = arr[np.argmax(arr.max(1) - arr.min(1))]
        assert np.argmax(centre) == channel, (colour, centre)


def test_captions_name_the_labels():
    text = world.caption("letter A", "red", "stained glass")
    assert text == "a red letter A in stained glass style"
    assert world.caption("star", "orange", "flat") == "an orange star in flat style"
    for t in range(len(world.CAPTION_TEMPLATES)):
        text = world.caption("house", "teal", "neon", template=t)
        assert "house" in text and "teal" in text and world.STYLES["neon"] in text


@pytest.mark.parametrize("bad", [("dragon", "red", "flat"), ("star", "mauve", "flat"), ("star", "red", "cubist")])
def test_unknown_labels_are_clear_errors(bad):
    with pytest.raises(ValueError, match="unknown (content|colour|style)"):
        world.render(*bad)


def test_out_of_range_size_is_a_clear_error():
    with pytest.raises(ValueError, match="size"):
        world.render("star", "red", "flat", size=4)


def test_render_scales_to_larger_sizes():
    big = world.render("heart", "pink", "neon", seed=2, size=256)
    small = world.render("heart", "pink", "neon", seed=2, size=64)
    shrunk = pixels(big.resize((64, 64)))
    assert big.size == (256, 256)
    assert np.abs(shrunk - pixels(small)).mean() < 12  # same picture, only sharper


def test_contact_sheet_has_a_row_per_style():
    sheet = world.contact_sheet(contents=("star", "letter A"), tile=32)
    assert sheet.height > len(world.STYLES) * 32


def test_the_dreambooth_subject_is_one_specific_star_in_five_poses_and_any_style():
    poses = [np.asarray(world.render_subject(i, seed=i), dtype=np.float32) for i in range(len(world.SUBJECT_POSES))]
    assert all(p.shape == (64, 64, 3) for p in poses) and len(poses) == 5
    assert np.array_equal(poses[0], np.asarray(world.render_subject(0), dtype=np.float32))  # deterministic
    assert min(np.abs(a - b).mean() for i, a in enumerate(poses) for b in poses[i + 1:]) > 5  # poses differ
    # six points where the world's stars have five: count the outline's peaks around the centre
    canvas = 256
    for polygon, points in ((world.SUBJECT_POLYGON, 6), (world.POLYGONS["star"], 5)):
        radii = [math.hypot(x, y) for x, y in polygon]
        assert sum(r > 0.9 for r in radii) == points
    upright = world.Jitter(0, 0, 0.7, 0)
    six = np.asarray(world.subject_mask(canvas, upright), dtype=np.float32) / 255
    five = np.asarray(world.content_mask("star", canvas, upright), dtype=np.float32) / 255
    assert np.abs(six - five).mean() > 0.05  # not the same silhouette
    for style in world.STYLES:  # drawn like the world: any style, held-out ones too
        assert world.render_subject(None, style, seed=3).size == (64, 64)
    orange = np.asarray(world.render_subject(0), dtype=np.float32)
    blue = np.asarray(world.render_subject(0, colour="blue"), dtype=np.float32)
    assert np.abs(orange - blue).mean() > 5
    with pytest.raises(ValueError, match="pose"):
        world.render_subject(5)
