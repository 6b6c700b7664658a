import json
import os
import signal

import pytest
import torch

from styledrop_mini.checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from styledrop_mini.judges import Judges, JudgesConfig
from styledrop_mini.tokenizer import TokenizerConfig, VQTokenizer
from styledrop_mini.datasets import ImageBank
from styledrop_mini import training
from styledrop_mini.training import TrainSettings, fit
from styledrop_mini.datasets import MiniWorld

TINY_TOK = TokenizerConfig(channels=(8, 16, 16), codebook_size=32, code_dim=8)


def test_model_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = VQTokenizer(TINY_TOK).eval()
    path = model.save(tmp_path / "tok.safetensors", info={"command": "test"})
    back = VQTokenizer.load(path)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(model.encode(x), back.encode(x))
    assert torch.allclose(model.decode(model.encode(x)), back.decode(back.encode(x)))
    assert back.info["command"] == "test" and back.config.codebook_size == 32


def test_fp16_bundle_loads_into_fp32_model(tmp_path):
    model = VQTokenizer(TINY_TOK)
    path = model.save(tmp_path / "tok.safetensors", dtype=torch.float16)
    back = VQTokenizer.load(path)
    assert next(back.parameters()).dtype == torch.float32


def test_wrong_kind_is_named(tmp_path):
    path = Judges(JudgesConfig(channels=(8, 8, 8, 8), hidden=16)).save(tmp_path / "judges.safetensors")
    with pytest.raises(CheckpointError, match=r"judges.safetensors: holds a 'judges' model, expected 'tokenizer'"):
        VQTokenizer.load(path)


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="broken.safetensors: not a readable safetensors file"):
        VQTokenizer.load(path)
    with pytest.raises(CheckpointError, match="nope.safetensors: no such checkpoint file"):
        VQTokenizer.load(tmp_path / "nope.safetensors")


def test_truncated_file_is_named(tmp_path):
    path = VQTokenizer(TINY_TOK).save(tmp_path / "tok.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="tok.safetensors: not a readable safetensors file"):
        VQTokenizer.load(path)


def test_config_that_disagrees_with_tensors_names_the_tensor(tmp_path):
    model = VQTokenizer(TINY_TOK)
    tensors = model.state_dict()
    config = dict(TINY_TOK.__dict__, codebook_size=64)  # the file claims a bigger codebook
    save_checkpoint(tmp_path / "t.safetensors", tensors, "tokenizer", json.loads(json.dumps(config)))
    with pytest.raises(CheckpointError, match=r"tensor 'quantizer.codebook' has shape \(32, 8\), the VQTokenizer model expects \(64, 8\)"):
        VQTokenizer.load(tmp_path / "t.safetensors")


def test_unknown_config_field_is_named(tmp_path):
    config = dict(TINY_TOK.__dict__, wings=2)
    save_checkpoint(tmp_path / "t.safetensors", VQTokenizer(TINY_TOK).state_dict(), "tokenizer", config)
    with pytest.raises(CheckpointError, match=r"fields \['wings'\]"):
        VQTokenizer.load(tmp_path / "t.safetensors")


def test_plain_safetensors_without_our_metadata(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a styledrop_mini checkpoint"):
        read_checkpoint(tmp_path / "plain.safetensors", "tokenizer")


def _train(run_dir, steps, resume=False, log_every=1, history=None):
    torch.manual_seed(0)
    model = Judges(JudgesConfig(channels=(8, 8, 8, 8), hidden=16))
    from styledrop_mini.judges import judges_loss

    bank = ImageBank.render(MiniWorld(n=32, styles="all"), workers=0)
    settings = TrainSettings(steps=4, batch_size=8, lr=1e-3, warmup=1, save_every=1, log_every=log_every,
                             precision="fp32")
    logged = fit(model, judges_loss, bank, settings, torch.device("cpu"), run_dir=run_dir, resume=resume, stop_at=steps)
    if history is not None:
        history.extend(logged)
    return model


def test_a_resumed_run_averages_its_first_short_window_over_the_steps_it_ran(tmp_path):
    """Resumed at step 3 with log_every 4, the step-4 entry is step 4's loss, not a quarter of it."""
    each, resumed = [], []
    _train(tmp_path / "each", 4, history=each)  # one entry per step
    _train(tmp_path / "r", 3, log_every=4)
    _train(tmp_path / "r", 4, resume=True, log_every=4, history=resumed)
    assert resumed[-1]["step"] == each[-1]["step"] == 4
    assert resumed[-1]["loss"] == pytest.approx(each[-1]["loss"], rel=1e-5)


def test_resume_continues_exactly(tmp_path):
    straight = _train(tmp_path / "a", 4)
    _train(tmp_path / "b", 2)
    resumed = _train(tmp_path / "b", 4, resume=True)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), name


def test_a_long_run_also_saves_by_the_clock(tmp_path, monkeypatch):
    """save_minutes: a run whose save_every is far away still saves once that much time has passed
    (here 0 minutes: after every step), so a killed CPU run loses minutes, not hours."""
    saved = []
    monkeypatch.setattr(training, "save_train_state", lambda path, model, opt, step, *rest: saved.append(step))
    bank = ImageBank.render(MiniWorld(n=16, styles="all"), workers=0)
    from styledrop_mini.judges import judges_loss

    for minutes, expected in ((None, [3]), (0, [1, 2, 3])):
        saved.clear()
        settings = TrainSettings(steps=3, batch_size=4, lr=1e-3, warmup=1, save_every=10**9, save_minutes=minutes,
                                 precision="fp32")
        fit(Judges(JudgesConfig(channels=(8, 8, 8, 8), hidden=16)), judges_loss, bank, settings,
            torch.device("cpu"), run_dir=tmp_path)
        assert saved == expected, minutes


def test_kill_stops_after_the_step_and_saves_like_ctrl_c(tmp_path, monkeypatch):
    """SIGTERM (what `kill` and a machine shutting down send) saves a whole step's state and says so."""
    original, calls = training.warmup_cosine, {"n": 0}

    def schedule(step, settings):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(step, settings)

    monkeypatch.setattr(training, "warmup_cosine", schedule)
    with pytest.raises(training.TrainingInterrupted, match="after step 2 of 4; state saved"):
        _train(tmp_path / "killed", 4)
    monkeypatch.undo()
    resumed = _train(tmp_path / "killed", 4, resume=True)
    straight = _train(tmp_path / "straight", 4)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), name


def test_resume_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _train(tmp_path / "empty", 4, resume=True)


def test_a_checkpoint_is_named_with_or_without_its_suffix_and_a_folder_is_no_checkpoint(tmp_path):
    from styledrop_mini.checkpoints import find_checkpoint

    VQTokenizer(TINY_TOK).save(tmp_path / "tok.safetensors")
    assert find_checkpoint(tmp_path / "tok") == tmp_path / "tok.safetensors"
    assert VQTokenizer.load(tmp_path / "tok").config.codebook_size == 32
    with pytest.raises(CheckpointError, match=r"is a folder, not a checkpoint file; give the .safetensors file "
                                              r"\(it holds tok.safetensors\)"):
        find_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"nope: no such checkpoint file \(nor nope.safetensors\)"):
        find_checkpoint(tmp_path / "nope")


def test_a_truncated_or_non_finite_checkpoint_is_named_as_such(tmp_path):
    VQTokenizer(TINY_TOK).save(tmp_path / "tok.safetensors")
    data = (tmp_path / "tok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.safetensors: not a readable safetensors file \([\d,]+ bytes; truncated"):
        VQTokenizer.load(tmp_path / "cut.safetensors")
    model = VQTokenizer(TINY_TOK)
    with torch.no_grad():
        model.quantizer.codebook[0, 0] = float("nan")
    model.save(tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="nan.safetensors: tensor 'quantizer.codebook' holds 1 NaN or infinite"):
        VQTokenizer.load(tmp_path / "nan.safetensors")


def test_a_truncated_tokenizer_beside_the_base_is_named_as_unreadable(tmp_path):
    import shutil

    from styledrop_mini.pipeline import MusePipeline
    from styledrop_mini.settings import CHECKPOINT_DIR

    for name in ("base", "clip"):
        shutil.copy(CHECKPOINT_DIR / f"{name}.safetensors", tmp_path)
    data = (CHECKPOINT_DIR / "tokenizer.safetensors").read_bytes()
    (tmp_path / "tokenizer.safetensors").write_bytes(data[:100_000])
    with pytest.raises(CheckpointError, match="tokenizer.safetensors: not a readable safetensors file"):
        MusePipeline.load(tmp_path)  # not "trained with another tokenizer", which would send users astray
    with pytest.raises(CheckpointError, match="no such checkpoints folder"):
        MusePipeline.load(tmp_path / "nowhere")
