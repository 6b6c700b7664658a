"""Files users give us and files we write: names stay inside their folder, errors name the file, outputs
are checked before the work and results are rescued when writing fails."""
import json
import os

import pytest

from styledrop_mini.files import (MetadataError, check_output, checkpoint_file, inside, keep_bad_copy, read_json,
                                  read_jsonl, save_or_rescue)


def test_names_from_metadata_stay_inside_their_folder(tmp_path):
    assert inside(tmp_path, "pool/0001.png", "pool.jsonl") == tmp_path / "pool/0001.png"
    for bad in ("../../etc/passwd", "/etc/passwd", "pool/../../x.png", ""):
        with pytest.raises(MetadataError, match="pool.jsonl, line 3"):
            inside(tmp_path, bad, "pool.jsonl, line 3")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "link")  # a link that leads out of the folder counts as leaving it
    with pytest.raises(MetadataError, match="leads outside"):
        inside(tmp_path, "link/x.png", "meta")


def test_json_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "m.json").write_text('{"a": 1,')
    with pytest.raises(MetadataError, match=r"m.json: not valid JSON \(line 1"):
        read_json(tmp_path / "m.json")
    with pytest.raises(FileNotFoundError, match="missing.json: no such run manifest"):
        read_json(tmp_path / "missing.json", "run manifest")
    (tmp_path / "p.jsonl").write_text('{"id": 0}\n\n{"id": 1\n')
    with pytest.raises(MetadataError, match=r"p.jsonl, line 3: not valid JSON"):
        read_jsonl(tmp_path / "p.jsonl")
    (tmp_path / "q.jsonl").write_text('{"id": 0}\n[1, 2]\n')
    with pytest.raises(MetadataError, match=r"q.jsonl, line 2: expected a JSON object"):
        read_jsonl(tmp_path / "q.jsonl")
    (tmp_path / "ok.jsonl").write_text('{"id": 0}\n\n{"id": 1}\n')
    assert read_jsonl(tmp_path / "ok.jsonl") == [(1, {"id": 0}), (3, {"id": 1})]


def test_a_broken_file_is_kept_aside_not_deleted(tmp_path):
    (tmp_path / "human.json").write_text("{broken")
    aside = keep_bad_copy(tmp_path / "human.json")
    assert not (tmp_path / "human.json").exists() and aside.read_text() == "{broken"
    assert aside.name.startswith("human.json.broken-")


def test_outputs_are_checked_before_the_work(tmp_path):
    assert check_output(tmp_path / "new" / "grid.png", "image") == tmp_path / "new" / "grid.png"
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())  # no test file left behind
    assert check_output(tmp_path / "my_style", "checkpoint") == tmp_path / "my_style.safetensors"
    with pytest.raises(ValueError, match="is a folder; name a file inside it, e.g. .*grid.png"):
        check_output(tmp_path, "image")
    with pytest.raises(ValueError, match=r"--out .*grid.txt has no image extension.*grid.png"):
        check_output(tmp_path / "grid.txt", "image")
    with pytest.raises(ValueError, match="has no image extension"):
        check_output(tmp_path / "grid", "image")
    (tmp_path / "a_file").write_text("x")  # a folder that cannot be made: its parent is a file
    with pytest.raises(ValueError, match="-o .*a_file/out.png: cannot write in"):
        check_output(tmp_path / "a_file" / "out.png", "image", "-o")


def test_checkpoint_names_with_or_without_the_suffix():
    assert checkpoint_file("my_style").name == "my_style.safetensors"
    assert checkpoint_file("my_style.safetensors").name == "my_style.safetensors"
    assert checkpoint_file("runs/my.style").name == "my.style.safetensors"


def test_a_result_is_kept_when_writing_it_fails(tmp_path):
    target = tmp_path / "gone" / "adapter.safetensors"  # its folder vanished after the check

    def save(path):
        path.write_text(json.dumps({"weights": [1, 2]}))

    with pytest.raises(OSError, match=r"could not write .*adapter.safetensors .*kept in (\S+)") as info:
        save_or_rescue(save, target, "tuned adapter")
    rescued = info.value.args[0].rsplit("kept in ", 1)[1]
    assert json.loads(open(rescued).read()) == {"weights": [1, 2]}
    assert save_or_rescue(save, tmp_path / "here.json") == tmp_path / "here.json"
