import json

import numpy as np
import pytest
import torch
from PIL import Image

from styledrop_mini import world
from styledrop_mini.datasets import (ImageFolder, ImageFolderError, MiniWorld, TokenBank, export_image_folder,
                                     style_references)
from styledrop_mini.settings import STYLES_DIR


def test_items_have_image_caption_and_matching_labels():
    data = MiniWorld(n=24, styles="all", seed=1)
    for i in range(len(data)):
        item = data[i]
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert item["text"] == world.caption(item["content"], item["colour"], item["style"])
        assert world.CONTENTS[item["content_id"]] == item["content"]
        assert list(world.COLOURS)[item["colour_id"]] == item["colour"]
        assert list(world.STYLES)[item["style_id"]] == item["style"]


def test_seen_split_never_shows_a_held_out_style():
    data = MiniWorld(n=2000, styles="seen")
    assert {data.labels(i)[2] for i in range(len(data))} == set(world.SEEN_STYLES)
    held = MiniWorld(n=100, styles="held_out")
    assert {held.labels(i)[2] for i in range(len(held))} == set(world.HELD_OUT_STYLES)


def test_one_pass_covers_every_combination_once():
    data = MiniWorld(n=10, styles=["flat", "neon"], contents=["star", "moon"], colours=["red", "blue"])
    combos = [data.labels(i) for i in range(8)]
    assert len(set(combos)) == 8


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = MiniWorld(n=4, seed=3), MiniWorld(n=4, seed=3), MiniWorld(n=4, seed=4)
    assert torch.equal(a[2]["image"], b[2]["image"])
    assert not torch.equal(a[2]["image"], c[2]["image"])


def test_train_and_test_never_share_an_image():
    train = MiniWorld(n=500, split="train", seed=0)
    test = MiniWorld(n=500, split="test", seed=0)
    other_seed_test = MiniWorld(n=500, split="test", seed=1)
    train_seeds = {train.render_seed(i) for i in range(len(train))}
    assert not train_seeds & {test.render_seed(i) for i in range(len(test))}
    assert not train_seeds & {other_seed_test.render_seed(i) for i in range(len(other_seed_test))}
    # and the same index really differs in pixels between the splits
    assert not torch.equal(train[0]["image"], MiniWorld(n=1, split="test", seed=0)[0]["image"])


def test_cache_returns_the_same_item():
    data = MiniWorld(n=3, cache=True)
    assert data[1] is data[1]


def test_paraphrases_vary_the_caption_but_keep_labels():
    data = MiniWorld(n=60, paraphrase=True)
    texts = [data[i]["text"] for i in range(20)]
    assert len({t.split(" ")[0] for t in texts}) > 1 or len({t[-5:] for t in texts}) > 1
    for i in range(20):
        item = data[i]
        assert item["colour"] in item["text"] and world.STYLES[item["style"]] in item["text"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="val"), "split"), (dict(styles="cubist"), "unknown styles"), (dict(n=0), "n must"),
    (dict(contents=["dragon"]), "unknown content"), (dict(seed=-1), "seed"),
])
def test_bad_dataset_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MiniWorld(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError):
        MiniWorld(n=2)[5]


def test_image_folder_round_trip(tmp_path):
    data = MiniWorld(n=6, styles="held_out", seed=2)
    export_image_folder(data, tmp_path / "f")
    back = ImageFolder(tmp_path / "f")
    assert len(back) == 6
    for i in range(6):
        a, b = data[i], back[i]
        assert torch.equal(a["image"], b["image"])  # PNG is lossless
        assert (a["text"], a["content"], a["colour"], a["style"]) == (b["text"], b["content"], b["colour"], b["style"])
        assert a["style_id"] == b["style_id"]


def test_export_refuses_to_overwrite(tmp_path):
    data = MiniWorld(n=1)
    export_image_folder(data, tmp_path)
    with pytest.raises(FileExistsError):
        export_image_folder(data, tmp_path)
    export_image_folder(data, tmp_path, overwrite=True)


def _folder(tmp_path, rows, images=("a.png",)):
    for name in images:
        Image.new("RGB", (20, 30), (255, 0, 0)).save(tmp_path / name)
    (tmp_path / "metadata.jsonl").write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    return tmp_path


def test_user_folder_without_labels_loads_and_is_resized(tmp_path):
    folder = _folder(tmp_path, [{"file_name": "a.png", "text": "a red block"}])
    item = ImageFolder(folder)[0]
    assert item["image"].shape == (3, 64, 64)
    assert item["content"] == "" and item["content_id"] == -1


def test_missing_folder(tmp_path):
    with pytest.raises(ImageFolderError, match="no such folder"):
        ImageFolder(tmp_path / "nope")


def test_missing_metadata(tmp_path):
    with pytest.raises(ImageFolderError, match="metadata.jsonl: missing"):
        ImageFolder(tmp_path)


def test_row_without_text_names_file_and_line(tmp_path):
    folder = _folder(tmp_path, [{"file_name": "a.png", "text": "ok"}, {"file_name": "a.png"}])
    with pytest.raises(ImageFolderError, match=r"metadata.jsonl, line 2: .*'a.png'.* no \"text\""):
        ImageFolder(folder)


def test_bad_json_names_the_line(tmp_path):
    folder = _folder(tmp_path, [{"file_name": "a.png", "text": "ok"}, "{not json"])
    with pytest.raises(ImageFolderError, match="line 2: not valid JSON"):
        ImageFolder(folder)


def test_missing_image_names_file_and_line(tmp_path):
    folder = _folder(tmp_path, [{"file_name": "a.png", "text": "ok"}, {"file_name": "b.png", "text": "x"}])
    with pytest.raises(ImageFolderError, match="line 2: image 'b.png' not found"):
        ImageFolder(folder)


def test_file_names_that_leave_the_folder_are_refused(tmp_path):
    (tmp_path / "secret.png").write_bytes(b"x")
    for name in ("../secret.png", str(tmp_path / "secret.png")):
        (tmp_path / f"f{len(name)}").mkdir()
        folder = _folder(tmp_path / f"f{len(name)}", [{"file_name": "a.png", "text": "ok"},
                                                      {"file_name": name, "text": "x"}])
        with pytest.raises(ImageFolderError, match=r"metadata.jsonl, line 2: the path .* leaves"):
            ImageFolder(folder)


def test_corrupt_image_names_file_and_line(tmp_path):
    folder = _folder(tmp_path, [{"file_name": "a.png", "text": "ok"}, {"file_name": "bad.png", "text": "x"}])
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    data = ImageFolder(folder)
    with pytest.raises(ImageFolderError, match=r"bad.png: not a readable image.*line 2"):
        data[1]
    assert data[0]["image"].shape == (3, 64, 64)  # the good row still loads


def test_cli_export_and_contact_sheet(tmp_path, capsys):
    from styledrop_mini.cli import main

    assert main(["world", "export", str(tmp_path / "w"), "-n", "5", "--styles", "neon"]) == 0
    assert len(ImageFolder(tmp_path / "w")) == 5
    assert main(["world", "sheet", "-o", str(tmp_path / "sheet.png")]) == 0
    assert "wrote contact sheet" in capsys.readouterr().out
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 1000 and np.asarray(sheet).std() > 20
    assert main(["world", "export", str(tmp_path / "x"), "--styles", "cubist"]) == 2
    assert "unknown styles" in capsys.readouterr().err


def test_bundled_style_references_are_the_held_out_styles_with_their_captions():
    refs = style_references()
    rows = {row["style"]: row for row in ImageFolder(STYLES_DIR).rows}  # the metadata's own captions
    assert set(refs) == set(world.HELD_OUT_STYLES) | {world.HARD_STYLE}
    for style, ref in refs.items():
        assert ref.image.shape == (3, 64, 64) and 0 <= ref.image.min() and ref.image.max() <= 1
        assert ref.descriptor == world.STYLES[style] and ref.content_label in world.CONTENTS
        assert ref.caption == f"{ref.content} in {ref.descriptor} style" == rows[style]["text"]


def test_a_kept_token_bank_loads_only_for_its_own_source(tmp_path, capsys):
    bank = TokenBank(tokens=torch.randint(0, 1024, (5, 256)).short(), texts=[f"a red star {i}" for i in range(5)],
                     content_ids=torch.arange(5), colour_ids=torch.zeros(5, dtype=torch.long),
                     style_ids=torch.ones(5, dtype=torch.long), primitive_ids={"fill": torch.arange(5) % 2})
    source = {"world": "seen", "images": 5, "seed": 0, "tokenizer": "abc"}
    path = bank.save(tmp_path / "bank.safetensors", source)
    again = TokenBank.load(path, source)
    assert again.texts == bank.texts and torch.equal(again.tokens, bank.tokens)
    assert torch.equal(again.primitive_ids["fill"], bank.primitive_ids["fill"])
    assert TokenBank.load(path, {**source, "tokenizer": "def"}) is None
    assert "made with other tokenizer" in capsys.readouterr().out
    path.write_bytes(b"not a bank")
    assert TokenBank.load(path, source) is None and "not a readable safetensors file" in capsys.readouterr().out
    assert TokenBank.load(tmp_path / "none.safetensors", source) is None
