import pytest
import torch

from styledrop_mini import world
from styledrop_mini.datasets import LookWorld
from styledrop_mini.judges import HEADS, Judges, JudgesConfig
from styledrop_mini.styles import PRIMITIVES, Look, all_looks
from styledrop_mini.settings import CHECKPOINT_DIR


def test_judge_output_structure_and_the_style_rule():
    judges = Judges(JudgesConfig(channels=(8, 8, 8, 8), hidden=16)).eval()
    verdict = judges.judge(torch.rand(5, 3, 64, 64))
    assert set(verdict) == {"content", "colour", *PRIMITIVES, "look", "style"}
    assert verdict["content"]["probs"].shape == (5, len(world.CONTENTS))
    assert torch.all((0 <= verdict["colour"]["confidence"]) & (verdict["colour"]["confidence"] <= 1))
    # The judged style is the named style the five judged primitives make, or "" (id -1) when none.
    for look, name, i in zip(verdict["look"], verdict["style"]["labels"], verdict["style"]["ids"].tolist()):
        assert name == (world.look_name(look) or "") and (i == -1) == (name == "")
    with pytest.raises(ValueError, match="unknown label"):
        judges.accuracy(torch.rand(2, 3, 64, 64), style="cubist")
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        judges.accuracy(torch.rand(3, 3, 64, 64), style=["flat", "neon"])
    with pytest.raises(ValueError, match="unknown head 'texture'"):
        judges.accuracy(torch.rand(2, 3, 64, 64), texture="rough")


def test_style_is_right_only_when_every_primitive_matches_the_recipe(monkeypatch):
    judges = Judges(JudgesConfig(channels=(8, 8, 8, 8), hidden=16)).eval()
    neon = world.STYLE_LOOKS["neon"]
    almost = Look(neon.background, neon.fill, neon.outline, neon.effect, "pastel")  # one primitive off

    def judged(looks):
        def probabilities(images, batch_size=256):
            probs = {name: torch.full((len(looks), len(values)), 0.01) for name, values in HEADS.items()}
            for i, look in enumerate(looks):
                for name in PRIMITIVES:
                    probs[name][i, PRIMITIVES[name].index(getattr(look, name))] = 0.9
            return probs
        return probabilities

    monkeypatch.setattr(judges, "probabilities", judged([neon, almost]))
    assert judges.accuracy(torch.zeros(2, 3, 64, 64), style="neon")["style"] == 0.5
    assert judges.judge(torch.zeros(2, 3, 64, 64))["style"]["labels"] == ["neon", ""]
    embedding = judges.style_embedding(torch.zeros(2, 3, 64, 64))
    assert torch.allclose(embedding.norm(dim=-1), torch.ones(2))
    similarity = float(embedding[0] @ embedding[1])  # four of five primitives agree
    assert 0.75 < similarity < 0.85, similarity


def test_bundled_judges_are_accurate_on_fresh_renders():
    judges = Judges.load(CHECKPOINT_DIR / "judges.safetensors")
    data = LookWorld(n=400, split="test", looks=all_looks(), named=tuple(world.STYLES), named_share=0.3, seed=7)
    items = [data[i] for i in range(len(data))]
    images = torch.stack([it["image"] for it in items])
    acc = judges.accuracy(images, content=[it["content"] for it in items], colour=[it["colour"] for it in items],
                          **{name: [it[f"{name}_id"] for it in items] for name in PRIMITIVES})
    assert min(acc.values()) > 0.9, acc
    named = [i for i, it in enumerate(items) if it["style"]]
    assert judges.accuracy(images[named], style=[items[i]["style"] for i in named])["style"] > 0.9
    # chance is 1/40, 1/8, 1/9, ...: an untrained judge stays near it
    untrained = Judges().eval().accuracy(images, content=[it["content"] for it in items])
    assert untrained["content"] < 0.2


def test_the_bundled_style_embedding_follows_the_look_not_the_content():
    from styledrop_mini.images import pil_to_tensor
    from styledrop_mini.judges import style_similarity

    judges = Judges.load(CHECKPOINT_DIR / "judges.safetensors")
    looks, contents = ["neon", "watercolor", "sketch", "pixel art", "stained glass"], ["star", "house", "letter K", "moon"]
    images = {(s, c): pil_to_tensor(world.render(c, "pink", s, seed=90 + i)) for s in looks for i, c in enumerate(contents)}
    same_look, same_content = [], []
    for (s, c), image in images.items():
        others = torch.stack([images[k] for k in images if k != (s, c)])
        similarity = style_similarity(judges, others, image)
        keys = [k for k in images if k != (s, c)]
        same_look += [v for k, v in zip(keys, similarity.tolist()) if k[0] == s]
        same_content += [v for k, v in zip(keys, similarity.tolist()) if k[1] == c]
    assert sum(same_look) / len(same_look) > 0.9 and sum(same_content) / len(same_content) < 0.6


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
