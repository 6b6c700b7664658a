import pytest
import torch
import torch.nn.functional as F

from styledrop_mini import world
from styledrop_mini.images import pil_to_tensor
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.sampling import SamplerSettings, decode
from styledrop_mini.styleclip import (Edit, GlobalDirection, LatentMapper, LatentOptimisation, MapperSettings, RemaskEdit,
                                      apply_global_direction, apply_mapper, channel_effects, describe, edit_image,
                                      edit_mask, edit_report, edited, mapper_sources, optimise_latent, parse_edit,
                                      remask_edit, train_mapper)


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
    assert {k: v["mean"] for k, v in report.items()} == {"changed": 0.5, "kept": 1.0, "both": 0.5}
    assert report["changed"]["n"] == 2 and report["changed"]["se"] == pytest.approx(0.5)
    remasked = remask_edit(pipe, before, ["a red star in flat style", "a green heart in polka dot style"],
                           RemaskEdit(mask="random", share=0.25, best_of=1))
    assert remasked.shape == before.shape


def test_the_prior_term_asks_the_base_transformer(pipe):
    image = pil_to_tensor(world.render("star", "blue", "flat", seed=3))[None]
    with_prior = LatentOptimisation(steps=2, lr=0.2, prior=1.0)
    with pytest.raises(ValueError, match="the prior term asks the base transformer"):
        optimise_latent(pipe.tokenizer, pipe.clip, image, Edit("colour", "red"), with_prior)
    edited, _ = optimise_latent(pipe.tokenizer, pipe.clip, image, Edit("colour", "red"), with_prior, pipe)
    assert edited.shape == image.shape and torch.isfinite(edited).all()


def test_clip_describes_a_render_and_the_edit_names_the_new_caption(pipe):
    images = torch.stack([pil_to_tensor(world.render("star", "blue", "flat", seed=3)),
                          pil_to_tensor(world.render("heart", "green", "polka dot", seed=5))])
    parts = describe(pipe.clip, images)
    assert parts == [{"content": "star", "colour": "blue", "style": "flat"},
                     {"content": "heart", "colour": "green", "style": "polka dot"}]
    assert edited(parts[0], Edit("colour", "red")) == {"content": "star", "colour": "red", "style": "flat"}


def test_the_likelihood_mask_is_empty_for_no_edit_and_covers_part_of_the_grid_for_one(pipe):
    image = pil_to_tensor(world.render("star", "blue", "flat", seed=3))[None]
    tokens = pipe.tokenizer.encode(image).flatten(1)
    same = "a blue star in flat style"
    assert not edit_mask(pipe, tokens, [same], [same]).any()  # the same caption explains every token as well
    red = edit_mask(pipe, tokens, [same], ["a red star in flat style"], RemaskEdit(dilation=0))
    grown = edit_mask(pipe, tokens, [same], ["a red star in flat style"])
    assert (grown >= red).all() and grown.sum() > red.sum()
    # the mask falls on the star, whose colour the edit changes, far more than on the white background
    shape = (F.avg_pool2d((image - image[..., :1, :1]).abs().sum(1, keepdim=True), 4) > 0.3).flatten(1)  # (1, 256)
    assert red[shape].float().mean() > 0.9 and red[~shape].float().mean() < 0.75  # measured: 0.98 and 0.60
    strict = edit_mask(pipe, tokens, [same], ["a red star in flat style"], RemaskEdit(threshold=0.5, dilation=0))
    assert strict[shape].float().mean() > 3 * strict[~shape].float().mean()  # measured: 0.92 against 0.16
    with pytest.raises(ValueError, match="the likelihood mask compares the source caption"):
        remask_edit(pipe, image, ["a red star in flat style"])
    with pytest.raises(ValueError, match="best_of must be a whole number >= 1"):
        RemaskEdit(best_of=0).check()
    with pytest.raises(ValueError, match="mask must be 'likelihood' or 'random'"):
        RemaskEdit(mask="all").check()


def test_an_untrained_mapper_and_a_zero_direction_edit_nothing_and_training_moves_only_the_mapper(pipe):
    images = mapper_sources(4, seed=3)
    unchanged = pipe.tokenizer.decode(pipe.tokenizer.encode(images))
    channels = pipe.tokenizer.quantizer.codebook.shape[1]
    assert torch.equal(apply_mapper(pipe.tokenizer, LatentMapper(channels), images)[0], unchanged)
    effects = channel_effects(pipe.tokenizer, pipe.clip, images)
    assert effects[0].shape == (channels, pipe.clip.encode_texts(["a star"]).shape[1])
    assert torch.allclose(effects[0].norm(dim=1), torch.ones(channels), atol=1e-4)
    still, _ = apply_global_direction(pipe.tokenizer, pipe.clip, effects, images, Edit("colour", "red"),
                                      GlobalDirection(strength=0.0))
    assert torch.equal(still, unchanged)
    before = {k: v.clone() for k, v in pipe.tokenizer.state_dict().items()}
    mapper = train_mapper(pipe.tokenizer, pipe.clip, images, Edit("colour", "red"), MapperSettings(steps=3, batch_size=2))
    assert mapper.net[-1].weight.abs().sum() > 0  # it learnt something
    assert all(torch.equal(v, pipe.tokenizer.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in pipe.tokenizer.parameters())
    with pytest.raises(ValueError, match="unknown edit method 'gan'"):
        edit_image(pipe, images[0], "make it red", method="gan")
