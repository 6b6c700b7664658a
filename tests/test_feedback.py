import json

import pytest
import torch
from PIL import Image

from styledrop_mini.sampling import GUIDANCE, AdapterGuidance
from styledrop_mini import feedback, world
from styledrop_mini.feedback import FeedbackSettings, Run, select_clip, select_judged, select_random
from styledrop_mini.files import MetadataError, write_json
from styledrop_mini.styles import PRIMITIVES


def fake_pool(folder, prompts=("a star in x style", "a ring in x style"), per_prompt=3):
    """A run folder with a pool of plain images and fixed scores (no model needed)."""
    (folder / "pool").mkdir(parents=True)
    pool = []
    for p, prompt in enumerate(prompts):
        for k in range(per_prompt):
            i = len(pool)
            Image.new("RGB", (64, 64), (10 * i, 0, 0)).save(folder / f"pool/{i:04d}.png")
            pool.append({"id": i, "file": f"pool/{i:04d}.png", "prompt": prompt, "content": prompt.split()[1],
                         "seed": i, "clip_text": [0.2, 0.5, 0.3][k] + p, "clip_style": [0.9, 0.1, 0.8][k]})
    (folder / "pool.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pool))
    write_json(folder / "manifest.json", {"settings": {}, "rounds": [], "descriptor": "x",
                                          "reference_caption": "a house in x style"})
    return Run.open(folder)


def test_selection_rules_on_fixed_scores(tmp_path):
    run = fake_pool(tmp_path)
    assert select_clip(run.pool) == [1, 4]  # per prompt, the best CLIP text score
    assert select_clip(run.pool, min_style=0.5) == [2, 5]  # the best among images with style >= 0.5
    assert select_clip(run.pool, min_style=0.95) == []
    chosen = select_random(run.pool, seed=3)
    assert chosen == select_random(run.pool, seed=3) and len(chosen) == 2
    assert {run.pool[i]["prompt"] for i in chosen} == {"a star in x style", "a ring in x style"}
    verdicts = {"content": {"labels": ["star", "ring", "star", "ring", "ring", "ring"], "confidence": torch.ones(6)},
                "style": {"labels": ["neon", "neon", "flat", "neon", "neon", "neon"],
                          "confidence": torch.tensor([0.5, 1, 1, 0.9, 0.2, 1])}}
    assert select_judged(run.pool, verdicts, "neon") == [0, 5]  # right content AND the target style, most confident
    assert select_judged(run.pool, verdicts, "neon", per_prompt=3) == [0, 5, 3, 4]  # most confident first


def test_selections_are_saved_atomically_by_id_or_file_name(tmp_path):
    run = fake_pool(tmp_path)
    assert run.selection("human") == []
    assert run.select("human", [4, "0001.png", "pool/0004.png"]) == [4, 1]
    saved = json.loads((tmp_path / "selections" / "human.json").read_text())
    assert saved["ids"] == [4, 1] and Run.open(tmp_path).selection("human") == [4, 1]
    assert not list((tmp_path / "selections").glob("*.tmp"))
    with pytest.raises(ValueError, match="out of range"):
        run.select("human", [6])
    with pytest.raises(ValueError, match="neither a pool id"):
        run.select("human", ["cat.png"])
    with pytest.raises(ValueError, match="plain word"):
        run.select("../evil", [1])
    assert run.selection("human") == [4, 1]  # a refused selection leaves the saved one alone
    with pytest.raises(FileNotFoundError, match="not a feedback run"):
        Run.open(tmp_path / "nowhere")


def test_compare_scores_every_model_at_the_guidance_it_is_given(monkeypatch):
    seen = []

    def fake_report(pipe, judges, clip, ref, model, seeds, seed, guidance):
        seen.append((model, seeds, seed, guidance))
        return {"judge_content": 0.5}, None, None

    monkeypatch.setattr(feedback.metrics, "style_transfer_report", fake_report)
    strong = AdapterGuidance(2.0, 3.0)
    table = feedback.compare(None, None, None, {}, {"R1": "m1", "R2 CF": "m2"}, seeds=3, seed=7, guidance=strong)
    assert list(table) == ["R1", "R2 CF"] and table["R2 CF"] == {"judge_content": 0.5}
    assert seen == [("m1", 3, 7, strong), ("m2", 3, 7, strong)]
    feedback.compare(None, None, None, {}, {"R1": "m1"})
    assert seen[-1] == ("m1", 4, 100, GUIDANCE)  # the library's guidance


def test_picker_clicks_are_written_at_once_and_survive_a_new_picker(tmp_path):
    from styledrop_mini.widgets import PICKED_COLOUR, Picker

    run = fake_pool(tmp_path)
    picker = Picker(tmp_path, columns=3)
    assert picker.selected == [] and "0 selected" in picker.counter.value
    picker.toggles[2].value = True  # a click
    assert Run.open(tmp_path).selection("human") == [2]
    picker.toggles[5].value = True
    picker.toggles[2].value = False
    assert Run.open(tmp_path).selection("human") == [5] and "1 selected" in picker.counter.value
    again = Picker(tmp_path)  # a restarted kernel: the same folder, the same selection
    assert again.selected == [5] and again.toggles[5].value
    assert again.set_selection(["0000.png", 3]) == [0, 3] and run.selection("human") == [0, 3]
    # A picked image shows it on the thumbnail (frame and tick), and its row says how many were picked.
    assert "sdm-picked" in again.tiles[0]._dom_classes and "sdm-picked" not in again.tiles[1]._dom_classes
    assert again.tiles[3].layout.border.endswith(PICKED_COLOUR) and again.toggles[3].icon == "check"
    assert "transparent" in again.tiles[4].layout.border
    labels = [row.children[0].value for row in again.grid.children]  # one labelled row per prompt
    assert len(labels) == 2 and "a ring in x style" in labels[1] and "1 picked" in labels[1]
    assert "T 1.20 · S 0.90" in again.tiles[3].children[2].value  # each image's CLIP text and style scores
    again.filter.value = "a ring in x style"
    assert again.shown == [3, 4, 5]
    again.sort.value = "CLIP text score"
    assert again.shown == [4, 5, 3]
    again.filter.value = "all prompts"
    assert sorted(again.shown) == list(range(6))
    trained = []
    with_button = Picker(tmp_path, on_train=lambda p: trained.append(p.selected))
    with_button.train_button.click()
    assert trained == [[0, 3]]


def test_a_broken_run_folder_names_the_file_and_line(tmp_path):
    fake_pool(tmp_path)
    good_pool = (tmp_path / "pool.jsonl").read_text()
    (tmp_path / "manifest.json").write_text('{"settings": {}')
    with pytest.raises(MetadataError, match=r"manifest.json: not valid JSON \(line 1"):
        Run.open(tmp_path)
    write_json(tmp_path / "manifest.json", {"settings": {}})
    with pytest.raises(MetadataError, match="manifest.json: missing descriptor, reference_caption"):
        Run.open(tmp_path)
    write_json(tmp_path / "manifest.json", {"settings": {}, "descriptor": "x", "reference_caption": "a house in x style"})
    lines = good_pool.splitlines()
    (tmp_path / "pool.jsonl").write_text("\n".join(lines[:2] + ["{oops"] + lines[3:]) + "\n")
    with pytest.raises(MetadataError, match=r"pool.jsonl, line 3: not valid JSON"):
        Run.open(tmp_path)
    escaping = json.loads(lines[1]) | {"file": "../../../etc/passwd"}
    (tmp_path / "pool.jsonl").write_text("\n".join([lines[0], json.dumps(escaping)] + lines[2:]) + "\n")
    with pytest.raises(MetadataError, match=r"pool.jsonl, line 2: the path '../../../etc/passwd' leaves"):
        Run.open(tmp_path)
    (tmp_path / "pool.jsonl").write_text(good_pool)
    run = Run.open(tmp_path)
    (tmp_path / "selections").mkdir()
    (tmp_path / "selections" / "clip.json").write_text('{"ids": [1, 2')
    with pytest.raises(MetadataError, match=r"selections/clip.json: not valid JSON"):
        run.selection("clip")
    (tmp_path / "selections" / "clip.json").write_text('{"ids": [1, 99]}')
    with pytest.raises(MetadataError, match=r"clip.json: \"ids\" must be a list of pool ids in 0..5"):
        run.selection("clip")


def test_picker_opens_on_a_broken_selection_says_so_and_keeps_a_copy(tmp_path):
    from styledrop_mini.widgets import Picker

    fake_pool(tmp_path)
    (tmp_path / "selections").mkdir()
    (tmp_path / "selections" / "human.json").write_text('{"ids": [1, ')  # a crash mid-write, by hand
    picker = Picker(tmp_path)
    assert picker.selected == [] and "not valid JSON" in picker.notice.value and "kept as human.json.broken-" in \
        picker.notice.value
    kept = list((tmp_path / "selections").glob("human.json.broken-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"ids": [1, '
    picker.toggles[4].value = True  # clicks work and are saved as usual
    assert Run.open(tmp_path).selection("human") == [4]
    assert Picker(tmp_path).notice.value == ""


def test_a_new_pool_never_replaces_a_run_unasked(tmp_path):
    run = fake_pool(tmp_path)
    run.select("human", [1, 2])
    (tmp_path / "round2_human.safetensors").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="already holds a feedback run.*--overwrite"):
        feedback.check_new_run(tmp_path)
    old = feedback.check_new_run(tmp_path, overwrite=True)  # lists what a new pool will remove; removes nothing yet
    assert {p.name for p in old} == {"manifest.json", "pool.jsonl", "pool", "selections", "round2_human.safetensors"}
    assert Run.open(tmp_path).selection("human") == [1, 2]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; a feedback run needs a folder"):
        feedback.check_new_run(tmp_path / "file")
    assert feedback.check_new_run(tmp_path / "fresh") == [] and (tmp_path / "fresh").is_dir()


def test_a_tiny_round_two_writes_its_adapter_and_manifest(tmp_path):
    from styledrop_mini import adapters
    from styledrop_mini.clip import MiniClip
    from styledrop_mini.datasets import style_references
    from styledrop_mini.pipeline import MusePipeline

    pipe = MusePipeline.load()
    clip = MiniClip.load(pipe.folder / "clip.safetensors")
    ref = style_references()["neon"]
    round1, _ = adapters.tune(pipe, ref.image, [ref.caption], steps=2)
    settings = FeedbackSettings(per_prompt=2, n_prompts=2, steps=2, d_prj=8)
    run = feedback.make_pool(pipe, round1, ref, tmp_path / "run", clip, settings)
    assert len(run.pool) == 4 and (tmp_path / "run" / "pool" / "0003.png").is_file()
    assert all("glowing neon" in item["prompt"] and "star" not in item["prompt"] for item in run.pool)
    run.select("clip", select_clip(run.pool))
    model, path = feedback.train_round(pipe, run, "clip", reference=ref.image)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert path.is_file() and manifest["rounds"][0]["selection"] == "clip"
    assert manifest["rounds"][0]["images"] == 3  # 2 selected + the reference
    assert model.adapter_config.d_prj == 8
    with pytest.raises(ValueError, match="empty"):
        feedback.train_round(pipe, Run.open(tmp_path / "run"), "nobody", reference=ref.image)


def test_cli_feedback_pool_select_train(tmp_path, capsys):
    from styledrop_mini.cli import main
    from styledrop_mini.settings import STYLES_DIR

    adapter, run = tmp_path / "neon.safetensors", tmp_path / "run"
    assert main(["style-tune", str(STYLES_DIR / "neon.png"), "--content", "a pink star", "--style", "glowing neon",
                 "-o", str(adapter), "--steps", "2"]) == 0
    assert main(["feedback", "pool", str(adapter), "-o", str(run), "-m", "2", "-p", "2"]) == 0
    assert "pool of 4 images" in capsys.readouterr().out and (run / "reference.png").is_file()
    assert main(["feedback", "select", str(run), "--rule", "clip"]) == 0
    assert main(["feedback", "select", str(run), "--ids", "0", "0003.png"]) == 0
    assert "selection 'human': 2 images [0, 3]" in capsys.readouterr().out
    assert main(["feedback", "select", str(run), "--ids", "9"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["feedback", "train", str(run), "--selection", "human", "--steps", "2"]) == 0
    assert (run / "round2_human.safetensors").is_file()
    assert Run.open(run).manifest["rounds"][0]["images"] == 3
    # drawing a pool again into the same folder is refused (its selections point at these images)...
    capsys.readouterr()
    assert main(["feedback", "pool", str(adapter.with_suffix("")), "-o", str(run), "-m", "1", "-p", "2"]) == 2
    assert "already holds a feedback run" in capsys.readouterr().err
    assert Run.open(run).selection("human") == [0, 3] and len(Run.open(run).pool) == 4
    # ...unless asked: then the old pool, selections and round-2 adapters go
    assert main(["feedback", "pool", str(adapter), "-o", str(run), "-m", "1", "-p", "2", "--overwrite"]) == 0
    assert len(Run.open(run).pool) == 2 and not (run / "selections").exists()
    assert not (run / "round2_human.safetensors").exists()
    assert main(["feedback", "train", str(run), "--selection", "human"]) == 2
    assert "selection 'human'" in capsys.readouterr().err


def test_a_careful_person_picks_the_likeliest_image_when_none_is_right(tmp_path):
    run = fake_pool(tmp_path)  # "a star in x style": ids 0-2, "a ring in x style": ids 3-5
    chance = torch.tensor([0.2, 0.1, 0.6, 0.3, 0.9, 0.4])  # the judges' probability of the prompt's content
    content_probs = torch.zeros(6, len(world.CONTENTS))
    for item in run.pool:
        content_probs[item["id"], world.CONTENTS.index(item["content"])] = chance[item["id"]]
    recipe = world.STYLE_LOOKS["neon"]
    verdicts = {"content": {"labels": ["heart"] * 6, "confidence": torch.ones(6), "probs": content_probs},
                "style": {"labels": ["flat"] * 6, "confidence": torch.ones(6)}}
    for name, values in PRIMITIVES.items():  # every primitive of the recipe judged right, for sure
        probs = torch.zeros(6, len(values))
        probs[:, list(values).index(getattr(recipe, name))] = 1.0
        verdicts[name] = {"probs": probs}
    assert select_judged(run.pool, verdicts, "neon") == []  # nothing is right
    assert select_judged(run.pool, verdicts, "neon", best_effort=True) == [2, 4]  # the likeliest per prompt
