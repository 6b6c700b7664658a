import pytest

from styledrop_mini import world
from styledrop_mini.datasets import MiniWorld, export_image_folder
from styledrop_mini.exercises import ExerciseError, check


def test_right_count_passes_and_common_mistakes_are_explained(capsys):
    from styledrop_mini.styles import all_looks

    n = len(world.CONTENTS) * len(world.COLOURS)
    check("00.count_seen_combinations", n * len(world.training_looks()))
    assert "✓" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="held-out looks too"):
        check("00.count_seen_combinations", n * len(all_looks()))
    with pytest.raises(ExerciseError, match="only the named seen styles"):
        check("00.count_seen_combinations", n * len(world.SEEN_STYLES))
    with pytest.raises(ExerciseError, match="letters"):
        check("00.count_seen_combinations", len(world.SHAPES) * len(world.COLOURS) * len(world.training_looks()))
    with pytest.raises(ExerciseError, match="no answer yet"):
        check("00.count_seen_combinations", None)


def test_caption_parser_checker():
    names = {d: s for s, d in world.STYLES.items()}

    def good(text):
        body = text.split(" ", 1)[1][:-len(" style")]
        left, descriptor = body.split(" in ", 1)
        colour, content = left.split(" ", 1)
        return content, colour, names[descriptor]

    def returns_descriptor(text):
        content, colour, style = good(text)
        return content, colour, world.STYLES[style]

    def one_word_content(text):
        content, colour, style = good(text)
        return content.split(" ")[-1], colour, style

    check("00.caption_to_labels", good)
    with pytest.raises(ExerciseError, match="descriptor"):
        check("00.caption_to_labels", returns_descriptor)
    with pytest.raises(ExerciseError, match="two words"):
        check("00.caption_to_labels", one_word_content)


def test_held_out_folder_checker(tmp_path):
    export_image_folder(MiniWorld(n=12, styles="held_out"), tmp_path / "ok")
    check("00.held_out_folder", tmp_path / "ok")
    export_image_folder(MiniWorld(n=12, styles="seen"), tmp_path / "seen")
    with pytest.raises(ExerciseError, match="seen styles"):
        check("00.held_out_folder", tmp_path / "seen")


def test_unknown_exercise():
    with pytest.raises(KeyError, match="no exercise"):
        check("99.nothing", 1)


def test_masked_schedule_checker_explains_off_by_one_and_linear():
    import math

    check("03.tokens_still_masked", lambda k, K, N: math.floor(N * math.cos(math.pi / 2 * (k + 1) / K)))
    with pytest.raises(ExerciseError, match="before"):
        check("03.tokens_still_masked", lambda k, K, N: math.floor(N * math.cos(math.pi / 2 * k / K)))
    with pytest.raises(ExerciseError, match="linear"):
        check("03.tokens_still_masked", lambda k, K, N: round(N * (1 - (k + 1) / K)))


def test_guidance_checker():
    check("03.guidance", lambda c, u, s: u + s * (c - u))
    with pytest.raises(ExerciseError, match="unconditional"):
        check("03.guidance", lambda c, u, s: c + s * (c - u))
    with pytest.raises(ExerciseError, match="wrong way"):
        check("03.guidance", lambda c, u, s: u + s * (u - c))


def test_adapter_checkers_explain_missing_biases_and_gelu():
    import torch.nn.functional as F

    check("04.adapter_params", lambda w, layers, d: layers * 2 * (2 * w * d + d + w))
    with pytest.raises(ExerciseError, match="biases"):
        check("04.adapter_params", lambda w, layers, d: layers * 2 * 2 * w * d)
    with pytest.raises(ExerciseError, match="TWO adapters"):
        check("04.adapter_params", lambda w, layers, d: layers * (2 * w * d + d + w))
    check("04.bottleneck", lambda h, wd, bd, wu, bu: h + F.gelu(h @ wd.T + bd) @ wu.T + bu)
    with pytest.raises(ExerciseError, match="GELU"):
        check("04.bottleneck", lambda h, wd, bd, wu, bu: h + (h @ wd.T + bd) @ wu.T + bu)
    with pytest.raises(ExerciseError, match="residual"):
        check("04.bottleneck", lambda h, wd, bd, wu, bu: F.gelu(h @ wd.T + bd) @ wu.T + bu)


def test_prompt_checkers():
    check("05.descriptor", lambda p: p.rpartition(" in ")[2].removesuffix(" style"))
    with pytest.raises(ExerciseError, match="style"):
        check("05.descriptor", lambda p: p.rpartition(" in ")[2])
    with pytest.raises(ExerciseError, match="LAST"):
        check("05.descriptor", lambda p: p.split(" in ")[0])
    check("05.leakage", lambda labels, ref: sum(x == ref for x in labels) / len(labels))
    with pytest.raises(ExerciseError, match="share"):
        check("05.leakage", lambda labels, ref: sum(x == ref for x in labels))


def test_feedback_checkers():
    import json
    from pathlib import Path

    def top_k(pool, k):
        out = []
        for prompt in dict.fromkeys(it["prompt"] for it in pool):
            out += [it["id"] for it in sorted((it for it in pool if it["prompt"] == prompt), key=lambda it: -it["clip_text"])[:k]]
        return out

    check("06.top_k", top_k)
    with pytest.raises(ExerciseError, match="EACH prompt"):
        check("06.top_k", lambda pool, k: [it["id"] for it in sorted(pool, key=lambda it: -it["clip_text"])][:3 * k])

    def read(folder):
        path = Path(folder) / "selections" / "human.json"
        return json.loads(path.read_text())["ids"] if path.exists() else []

    check("07.read_selection", read)
    with pytest.raises(ExerciseError, match="not an error"):
        check("07.read_selection", lambda folder: json.loads((Path(folder) / "selections" / "human.json").read_text())["ids"])


def test_class_prompt_checker_explains_common_mistakes():
    check("08.class_prompt", lambda prompt, identifier: " ".join(w for w in prompt.split() if w != identifier))
    with pytest.raises(ExerciseError, match="double or trailing spaces"):
        check("08.class_prompt", lambda prompt, identifier: prompt.replace(identifier, ""))
    with pytest.raises(ExerciseError, match="whole word"):
        check("08.class_prompt", lambda prompt, identifier: prompt.replace(identifier + " ", ""))
    with pytest.raises(ExerciseError, match="unchanged"):
        check("08.class_prompt", lambda prompt, identifier: prompt)
