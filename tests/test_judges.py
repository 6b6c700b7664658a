import pytest
import torch

from styledrop_mini import world
from styledrop_mini.datasets import MiniWorld
from styledrop_mini.judges import Judges, JudgesConfig
from styledrop_mini.settings import CHECKPOINT_DIR


def test_judge_output_structure():
    judges = Judges(JudgesConfig(channels=(8, 8, 8, 8), hidden=16)).eval()
    verdict = judges.judge(torch.rand(5, 3, 64, 64))
    assert set(verdict) == {"content", "colour", "style"}
    assert len(verdict["style"]["labels"]) == 5 and verdict["style"]["labels"][0] in world.STYLES
    assert verdict["content"]["probs"].shape == (5, len(world.CONTENTS))
    assert torch.all((0 <= verdict["colour"]["confidence"]) & (verdict["colour"]["confidence"] <= 1))
    with pytest.raises(ValueError, match="unknown label"):
        judges.accuracy(torch.rand(2, 3, 64, 64), style="cubist")
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        judges.accuracy(torch.rand(3, 3, 64, 64), style=["flat", "neon"])


def test_bundled_judges_are_accurate_on_fresh_renders():
    judges = Judges.load(CHECKPOINT_DIR / "judges.safetensors")
    data = MiniWorld(n=240, split="test", styles="all", seed=7)
    items = [data[i] for i in range(len(data))]
    images = torch.stack([it["image"] for it in items])
    acc = judges.accuracy(images, content=[it["content"] for it in items], colour=[it["colour"] for it in items],
                          style=[it["style"] for it in items])
    assert acc["content"] > 0.9 and acc["colour"] > 0.9 and acc["style"] > 0.9, acc
    # chance is 1/40, 1/8, 1/12: an untrained judge stays near it
    untrained = Judges().eval().accuracy(images, style=[it["style"] for it in items])
    assert untrained["style"] < 0.4


def test_subject_examples_are_balanced_labelled_and_reproducible():
    from styledrop_mini.judges import subject_examples

    images, labels, kinds = subject_examples(200, seed=3)
    assert images.shape == (200, 3, 64, 64) and labels.shape == (200,)
    assert 0.35 < labels.mean() < 0.65
    assert all((k == "subject") == bool(y) for k, y in zip(kinds, labels))
    assert {"orange star", "six points, other colour", "anything else"} <= set(kinds)
    again, _, _ = subject_examples(200, seed=3)
    assert torch.equal(images, again)


def test_bundled_subject_judge_finds_the_subject_and_not_an_orange_star():
    from styledrop_mini.images import pil_to_tensor
    from styledrop_mini.judges import SubjectJudge

    judge = SubjectJudge.load(CHECKPOINT_DIR / "subject_judge.safetensors")
    seeds = range(777, 777 + 8)  # not the training seeds' stream
    for style in world.HELD_OUT_STYLES + ("flat",):
        subject = torch.stack([pil_to_tensor(world.render_subject(None, style, s)) for s in seeds])
        stars = torch.stack([pil_to_tensor(world.render("star", "orange", style, s)) for s in seeds])
        assert judge.fidelity(subject) >= 0.75, style
        assert judge.fidelity(stars) <= 0.25, style
    with pytest.raises(ValueError, match="expected images of shape"):
        judge(torch.zeros(2, 3, 32, 32))
