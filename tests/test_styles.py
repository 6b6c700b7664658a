"""The style space (styles.py) and the world's choices in it (world.py): named styles are points of it; the
held-out styles are new combinations of values the base sees elsewhere; the hard one uses a value it never sees."""
import numpy as np
import pytest
import torch

from styledrop_mini import styles, world
from styledrop_mini.styles import PRIMITIVES, Look
from styledrop_mini.world import STYLE_LOOKS as NAMED


def test_every_named_style_is_a_look_and_only_the_held_out_ones_are_held_out():
    assert set(world.STYLES) <= set(NAMED)
    for name, look in NAMED.items():
        assert world.is_held_out(look) == (name in world.HELD_OUT_STYLES or name == world.HARD_STYLE), name
    assert set(world.SEEN_STYLES) | set(world.HELD_OUT_STYLES) | {world.HARD_STYLE} == set(world.STYLES)
    assert world.HARD_STYLE not in world.SEEN_STYLES + world.HELD_OUT_STYLES


def test_the_space_is_large_and_held_out_styles_are_new_combinations_of_seen_values():
    everything = styles.all_looks()
    legible_grounds = len(PRIMITIVES["background"]) * len(PRIMITIVES["palette"]) - len(styles.FAINT)
    drawn = len(PRIMITIVES["fill"]) * len(PRIMITIVES["outline"]) - 1 - len(styles.OWN_COLOUR_OUTLINES)  # not:
    # no fill and no outline (nothing drawn), no fill and a white or black outline (no colour drawn)
    white_on_light = sum(len(PRIMITIVES["palette"]) - sum((bg, p) in styles.FAINT for p in PRIMITIVES["palette"])
                         for bg in PRIMITIVES["background"] if bg not in styles.DARK_BACKGROUNDS) * (len(PRIMITIVES["fill"]) - 1)
    assert len(everything) == (legible_grounds * drawn - white_on_light) * len(PRIMITIVES["effect"])
    assert not any(look.outline == "light" and look.background not in styles.DARK_BACKGROUNDS for look in everything)
    training = world.training_looks()
    assert len(training) > 5_000
    seen = {(k, getattr(look, k)) for look in training for k in PRIMITIVES}
    for name, signature in world.HELD_OUT_SIGNATURES.items():
        recipe = NAMED[name]
        assert all((k, getattr(recipe, k)) in seen for k in PRIMITIVES), name  # every value is seen somewhere...
        assert not any(all(getattr(t, k) == v for k, v in signature.items()) for t in training), name  # ...never together
        assert all(getattr(recipe, k) == v for k, v in signature.items())  # and the recipe has its signature
    assert ("effect", "ripple") not in seen  # the hard style's value: nowhere in training
    assert not any(look.fill == "none" and look.outline in ("none", "light", "thick dark") for look in everything)


def test_every_primitive_value_changes_the_picture_and_renders_are_seeded():
    base = Look("white", "solid", "thin")
    reference = np.asarray(world.render("house", "teal", base, seed=3), np.float32)
    for name, values in PRIMITIVES.items():
        for value in values:
            look = Look(**{**base.__dict__, name: value})
            image = np.asarray(world.render("house", "teal", look, seed=3), np.float32)
            assert image.shape == (64, 64, 3)
            if value != getattr(base, name):
                assert np.abs(image - reference).mean() > 1.0, (name, value)
    again = np.asarray(world.render("house", "teal", NAMED["stained glass"], seed=3))
    assert np.array_equal(again, np.asarray(world.render("house", "teal", NAMED["stained glass"], seed=3)))


def test_a_look_names_a_bad_value_and_reads_as_words():
    with pytest.raises(ValueError, match="unknown fill 'plaid'; choose one of: solid, none"):
        Look(fill="plaid")
    assert NAMED["neon"].words() == "dark background, no fill, glow outline"
    assert styles.matches(NAMED["neon"], Look("dark", "none", "glow", palette="pastel"), ("background", "outline"))
    assert not styles.matches(NAMED["neon"], Look("dark", "none", "glow", palette="pastel"))
    sheet = world.primitive_sheet()
    assert sheet.height > 5 * 64 and sheet.width > 9 * 64


def test_captions_name_only_named_looks_and_never_a_held_out_style_in_training():
    from styledrop_mini.datasets import LookWorld

    rng = np.random.default_rng(0)
    assert world.look_caption("star", "red", NAMED["neon"], rng, "name") == "a red star in glowing neon style"
    assert world.look_caption("arrow", "orange", Look(), rng, "none") == "an orange arrow"
    with pytest.raises(ValueError, match="has no name"):
        world.look_caption("star", "red", Look("dark", "dots", "glow"), rng, "name")
    data = LookWorld(600, seed=3)
    items = [data[i] for i in range(len(data))]
    held_out_words = [world.STYLES[s] for s in world.HELD_OUT_STYLES + (world.HARD_STYLE,)] + ["rippled"]
    assert not [it["text"] for it in items if any(w in it["text"] for w in held_out_words)]
    for it in items:  # attribute words describe the look the image has
        look = Look(*(values[it[f"{k.replace(' ', '_')}_id"]] for k, values in PRIMITIVES.items()))
        said = [phrase for k in PRIMITIVES for v, phrase in world.PHRASES[k].items() if phrase and phrase in it["text"]]
        own = {world.PHRASES[k][getattr(look, k)] for k in PRIMITIVES}
        assert set(said) <= own, (it["text"], look)
    plain = sum(it["text"] == world.with_articles(f"a {it['colour']} {it['content']}") for it in items) / len(items)
    assert abs(plain - world.CAPTION_MIX["none"]) < 0.06  # a plain prompt is common: it must give a spread of looks


def test_the_longest_caption_fits_a_24_token_context():
    from styledrop_mini.clip import MiniClip
    from styledrop_mini.settings import CHECKPOINT_DIR

    tokenizer = MiniClip.load(CHECKPOINT_DIR / "clip.safetensors").tokenizer
    rng = np.random.default_rng(1)
    looks = styles.all_looks()
    lengths = [len(tokenizer.encode(world.look_caption("lightning bolt", "purple", looks[rng.integers(len(looks))],
                                                        rng, "attributes"))) for _ in range(2000)]
    assert max(lengths) <= 22  # < 24 - 2 (start and end): what the retrained CLIP's context must hold


def test_look_world_items_are_seeded_split_and_labelled():
    from styledrop_mini.datasets import LookWorld

    a, b = LookWorld(8, seed=5), LookWorld(8, seed=5)
    assert all(a[i]["text"] == b[i]["text"] and torch.equal(a[i]["image"], b[i]["image"]) for i in range(8))
    test = LookWorld(8, split="test", seed=5)
    assert not any(torch.equal(a[i]["image"], test[i]["image"]) for i in range(8))
    named = LookWorld(4, looks=[NAMED["blueprint"]], caption_kind="name")[0]
    assert named["style"] == "blueprint" and named["text"].endswith("blueprint style")
    assert named["fill_id"] == PRIMITIVES["fill"].index("solid") and named["palette_id"] == PRIMITIVES["palette"].index("pastel")
    mixed = LookWorld(400, named=("flat", "neon"), named_share=0.5, seed=2)
    styles_drawn = [mixed[i]["style"] for i in range(0, 400, 4)]
    assert 0.35 < sum(s in ("flat", "neon") for s in styles_drawn) / len(styles_drawn) < 0.65
    assert torch.equal(LookWorld(3, seed=5)[2]["image"], LookWorld(3, seed=5, named=("flat",), named_share=0.0)[2]["image"])
    with pytest.raises(ValueError, match="no looks"):
        LookWorld(4, looks=[])
    with pytest.raises(ValueError, match="named_share"):
        LookWorld(4, named_share=0.3)



def test_faint_pairs_are_exactly_those_where_a_colour_nearly_vanishes():
    measured = {(bg, pal): min(world.content_contrast(Look(bg, "solid", palette=pal), c) for c in world.COLOURS)
                for bg in PRIMITIVES["background"] for pal in PRIMITIVES["palette"]}
    assert {pair for pair, v in measured.items() if v < styles.MIN_CONTRAST} == styles.FAINT
    assert measured[("plain", "as is")] > 2 * styles.MIN_CONTRAST  # the flat style stands out clearly
    assert all(styles.is_visible(look) for look in NAMED.values())


def test_the_look_reconstruction_report_covers_every_value_and_named_style():
    from styledrop_mini.metrics import look_reconstruction_report
    from styledrop_mini.tokenizer import TokenizerConfig, VQTokenizer

    report = look_reconstruction_report(VQTokenizer(TokenizerConfig(channels=(8, 16, 16), codebook_size=32,
                                                                    code_dim=8)).eval(), n=40, per_style=2)
    assert report["grid"] == 8 and report["renders"] == 40
    assert set(report["psnr_by_named_style"]) == set(NAMED)
    for name, values in PRIMITIVES.items():
        assert set(report["psnr_by_value"][name]) == set(values)
        assert all(np.isnan(db) or 0 < db < 60 for db in report["psnr_by_value"][name].values())
