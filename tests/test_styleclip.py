import pytest
import torch

from styledrop_mini import world
from styledrop_mini.images import pil_to_tensor
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import SamplerSettings, decode
from styledrop_mini.styleclip import Edit, LatentOptimisation, edit_report, optimise_latent, parse_edit, remask_edit


@pytest.fixture(scope="module")
def pipe():
    return MusePipeline.load()


def test_edits_are_read_from_words():
    assert parse_edit("make it red") == Edit("colour", "red")
    assert parse_edit("Make it a letter q") == Edit("content", "letter Q")
    assert parse_edit("an arrow") == Edit("content", "arrow")
    assert parse_edit("in pixel art style") == parse_edit("make it pixel art") == Edit("style", "pixel art")
    assert parse_edit("make it watercolor painting") == Edit("style", "watercolor")  # a descriptor names its style
    with pytest.raises(ValueError, match="cannot read the edit 'make it shiny'"):
        parse_edit("make it shiny")
    assert Edit("colour", "red").clip_text() == "something red"


def test_decoding_from_a_partial_grid_keeps_the_known_tokens():
    known = torch.randint(0, 16, (2, 64))
    start = known.clone()
    start[:, ::2] = 16  # half the grid masked
    calls = []

    def logits_fn(tokens):
        calls.append(int((tokens == 16).sum()))
        return torch.randn(len(tokens), 64, 16)

    out = decode(logits_fn, [0, 1], 64, 16, SamplerSettings(steps=4), initial=start)
    assert torch.equal(out[:, 1::2], known[:, 1::2]) and (out != 16).all()
    assert calls[0] == 64 and calls == sorted(calls, reverse=True)  # the schedule runs over the 32 per grid
    with pytest.raises(ValueError, match="initial tokens must have shape"):
        decode(logits_fn, [0], 64, 16, initial=start)


def test_latent_optimisation_moves_only_the_latent(pipe):
    image = pil_to_tensor(world.render("star", "blue", "flat", seed=3))[None]
    before = {k: v.clone() for k, v in pipe.tokenizer.state_dict().items()}
    edited, tokens = optimise_latent(pipe.tokenizer, pipe.clip, image, Edit("colour", "red"),
                                     LatentOptimisation(steps=3, lr=0.2, straight_through=True, views=2, keep=0.5))
    assert edited.shape == image.shape and tokens.shape == (1, 16, 16)
    assert all(torch.equal(v, pipe.tokenizer.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in pipe.tokenizer.parameters())  # as they were
    unchanged = pipe.tokenizer.decode(pipe.tokenizer.encode(image))
    assert (edited - unchanged).abs().max() > 0  # three steps at lr 0.2 flip some codes


def test_an_edit_report_counts_what_changed_and_what_stayed(pipe):
    judges = pipe.judges()
    before = torch.stack([pil_to_tensor(world.render("star", "blue", "flat", seed=3)),
                          pil_to_tensor(world.render("heart", "green", "polka dot", seed=5))])
    after = torch.stack([pil_to_tensor(world.render("star", "red", "flat", seed=3)), before[1]])
    report = edit_report(judges, before, after, [Edit("colour", "red"), Edit("colour", "red")])
    assert report == {"changed": 0.5, "kept": 1.0, "both": 0.5, "n": 2}
    remasked = remask_edit(pipe, before, ["a red star in flat style", "a green heart in polka dot style"], share=0.25)
    assert remasked.shape == before.shape


def test_the_prior_term_asks_the_base_transformer(pipe):
    image = pil_to_tensor(world.render("star", "blue", "flat", seed=3))[None]
    with_prior = LatentOptimisation(steps=2, lr=0.2, prior=1.0)
    with pytest.raises(ValueError, match="the prior term asks the base transformer"):
        optimise_latent(pipe.tokenizer, pipe.clip, image, Edit("colour", "red"), with_prior)
    edited, _ = optimise_latent(pipe.tokenizer, pipe.clip, image, Edit("colour", "red"), with_prior, pipe)
    assert edited.shape == image.shape and torch.isfinite(edited).all()
