"""The command line as a newcomer meets it: the README's commands as written, help that says what
every option does, and bad input refused with one clear line before any model is loaded."""
import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from styledrop_mini import cli, recipes, training, world
from styledrop_mini.checkpoints import fingerprint
from styledrop_mini.cli import main
from styledrop_mini.datasets import ImageBank
from styledrop_mini.images import pil_to_tensor
from styledrop_mini.instantstyle import ImagePromptAdapter, ImagePromptConfig
from styledrop_mini.pipeline import MusePipeline
from styledrop_mini.settings import CHECKPOINT_DIR, DATA_DIR, STYLES_DIR

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[list[str]]:
    """Every `styledrop-mini ...` line of the README's bash blocks, as argument lists (comments dropped)."""
    commands, in_bash = [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if in_bash and line.startswith("styledrop-mini "):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


# Appended to each README command (argparse keeps the last value of an option): the same command, tiny.
TINY = {"demo": ["--steps", "2", "-n", "1"], "world export": ["-n", "4"], "world sheet": ["--tile", "8"],
        "evaluate": ["-n", "12", "--prompts", "4", "--steps", "2", "--workers", "0"],
        "train": ["--steps", "2", "--bank-size", "8", "--batch-size", "4", "--workers", "0"],
        "generate": ["-n", "1", "--steps", "2"], "style-tune": ["--steps", "2"],
        "feedback pool": ["-m", "4", "-p", "11"], "feedback select": [], "feedback train": ["--steps", "2"],
        "dreambooth": ["--steps", "2", "--n-class", "2"], "edit": []}


def tiny(argv: list[str]) -> list[str]:
    key = " ".join(argv[:2]) if argv[0] in ("world", "feedback") else argv[0]
    return argv + TINY[key]


def test_the_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    commands = readme_commands()
    assert len(commands) >= 15 and ["demo"] in commands
    assert not [c for c in commands if c[0] == "train" and {"--overwrite", "--out"} & set(c)]  # bundled files stay
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(DATA_DIR)  # the README's paths are relative to a clone's root
    (tmp_path / "my_ref.png").write_bytes((STYLES_DIR / "stained_glass.png").read_bytes())
    bundled = {p.name: fingerprint(p) for p in CHECKPOINT_DIR.glob("*.safetensors")}
    for argv in commands:
        code = main(tiny(argv))
        captured = capsys.readouterr()
        assert code == 0, f"`styledrop-mini {shlex.join(argv)}` failed: {captured.err}"
    assert (tmp_path / "my_style.safetensors").is_file() and (tmp_path / "styledrop_mini_demo.png").is_file()
    assert (tmp_path / "runs" / "glass" / "round2_clip.safetensors").is_file()
    assert (tmp_path / "runs" / "tokenizer" / "tokenizer.safetensors").is_file()  # `train` wrote beside its run
    assert {p.name: fingerprint(p) for p in CHECKPOINT_DIR.glob("*.safetensors")} == bundled  # and not here


def test_every_option_says_what_it_does_and_its_default():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    checked = 0
    for parser in parsers(cli.build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            assert action.help, f"{parser.prog} {name} has no help"
            flag = isinstance(action, argparse._StoreTrueAction)
            if action.option_strings and not flag and not action.required:
                shown = f"(default: {action.default})" in " ".join(text.split()) or "default:" in action.help
                assert shown, f"{parser.prog} {name}: --help does not show its default"
            checked += 1
    assert checked > 100


def test_version_and_python_dash_m(capsys):
    from styledrop_mini import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"styledrop-mini {__version__}"
    done = subprocess.run([sys.executable, "-m", "styledrop_mini", "generate", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "images per prompt (default: 8)" in " ".join(done.stdout.split())


@pytest.fixture
def no_models(monkeypatch):
    """Loading a model fails the test: bad input must be refused before any slow work."""
    from styledrop_mini import pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(pipeline.MusePipeline, "load", refuse)
    monkeypatch.setattr(recipes, "ImageBank", None)  # `train` renders nothing either


def fails(argv, capsys, code=2) -> str:
    """Run the CLI; it must fail with `code` and one line on stderr (argparse adds its usage lines)."""
    try:
        result = main(argv)
    except SystemExit as exc:  # argparse's own errors
        result = exc.code
    err = capsys.readouterr().err
    assert result == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines()  # not argparse's usage lines, not progress bars
             if line.strip() and not line.startswith(("usage:", " ")) and "%|" not in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["generate", "a star in flat style", "--lambda-a", "nan"], "argument --lambda-a: must be a finite number, got nan"),
    (["generate", "a star in flat style", "--lambda-b", "inf"], "argument --lambda-b: must be a finite number"),
    (["generate", "a star in flat style", "--lambda-a", "1e9"], "argument --lambda-a: must lie in [-10.0, 50.0]"),
    (["generate", "a star", "--gamma", "nan", "--adapter", "x"], "argument --gamma: must be a finite number"),
    (["generate", "a star", "--temperature", "inf"], "argument --temperature: must be a finite number"),
    (["generate", "a star", "  "], "prompt 2 is empty"),
    (["generate", "a star", "-n", "0"], "argument -n: must lie in [1, 64], got 0"),
    (["generate", "a star", "--adapter", "x", "--guidance-scale", "3"], "with --adapter, --lambda-a and --lambda-b guide"),
    (["demo", "-n", "0"], "argument -n: must lie in [1, 12], got 0"),
    (["demo", "-n", "-3"], "argument -n: must lie in [1, 12], got -3"),
    (["demo", "-n", "100"], "argument -n: must lie in [1, 12], got 100"),
    (["demo", "--steps", "0"], "argument --steps: must lie in [1, 100000], got 0"),
    (["demo", "--style", "crayon"], "no bundled reference for style 'crayon'"),
    (["demo", "--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
    (["demo", "--device", "tpu"], "unknown device 'tpu'"),
    (["style-tune", "ref.png", "--style", "x", "-o", "a", "--lr", "nan"], "argument --lr: must be a finite number"),
    (["train", "judges", "--steps", "-5"], "argument --steps: must be at least 1, got -5"),
    (["train", "judges", "--preset", "gpu"], "--preset sizes the base generator only, not 'judges'"),
    (["train", "base", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["feedback", "pool", "a", "-o", "r", "-p", "99"], "argument --prompts/-p: must lie in [1, 16], got 99"),
    (["edit", "x.png", "make it red", "--method", "gan"], "argument --method: invalid choice: 'gan'"),
])
def test_bad_options_are_one_line_before_any_model_loads(argv, message, capsys, no_models):
    assert message in fails(argv, capsys)


def test_bad_files_are_named_before_any_model_loads(tmp_path, capsys, monkeypatch, no_models):
    ref = str(STYLES_DIR / "stained_glass.png")
    monkeypatch.chdir(tmp_path.parent)  # relative outputs ("-o s") land beside tmp_path, never in the repository
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "style.safetensors").write_bytes(b"truncated")
    ImagePromptAdapter(ImagePromptConfig(text_width=8, width=16, layers=4)).save(tmp_path / "ip.safetensors")
    cases = [
        (["generate", "a star", "-o", str(tmp_path)], "is a folder; name a file inside it"),
        (["generate", "a star", "-o", str(tmp_path / "grid.txt")], "grid.txt has no image extension"),
        (["generate", "a star", "-o", str(tmp_path / "a_file" / "g.png")], "cannot write in"),
        (["demo", "-o", str(tmp_path / "a_file" / "demo.png")], "cannot write in"),
        (["generate", "a star", "--adapter", str(tmp_path)], "is a folder, not a checkpoint file"),
        (["generate", "a star", "--adapter", str(tmp_path / "nope")], "no such checkpoint file (nor nope.safetensors)"),
        (["generate", "a star", "--adapter", str(tmp_path / "style")], "not a readable safetensors file"),
        (["generate", "a star", "--content-adapter", "x"], "--content-adapter mixes with a style adapter"),
        (["generate", "a star", "--style-image", ref, "--adapter", "x"], "--style-image draws with no tuned adapter"),
        (["generate", "a star", "--style-image", str(tmp_path / "a_file"), "--image-adapter", str(tmp_path / "ip")],
         "a_file: not a readable image"),
        (["generate", "a star", "--style-image", ref, "--style-blocks", "2;3"], "block numbers separated by commas"),
        (["generate", "a star", "--style-image", ref, "--image-adapter", str(tmp_path / "style")],
         "not a readable safetensors file"),
        (["generate", "a star", "--style-image", ref, "--image-adapter", str(tmp_path / "ip"), "--style-blocks", "7"],
         "block 7 does not exist: this generator has blocks 0 to 3"),
        (["style-tune", ref, "--style", "glass", "-o", str(tmp_path / "a_file" / "s")], "cannot write in"),
        (["style-tune", ref, "--style", "glass", "-o", str(tmp_path)], "is a folder; name a file inside it"),
        (["style-tune", str(tmp_path / "a_file"), "--style", "glass", "-o", "s"], "a_file: not a readable image"),
        (["style-tune", ref, "--style", "glass", "-o", "s", "--template", "{content}"], "a template needs"),
        (["dreambooth", str(tmp_path), "-o", "s"], "has no metadata.jsonl"),
        (["feedback", "pool", str(tmp_path / "style"), "-o", "r"], "not a readable safetensors file"),
        (["feedback", "train", str(tmp_path)], "is not a feedback run (no manifest.json)"),
        (["train", "judges", "--out", str(tmp_path / "a_file" / "j")], "cannot write in"),
        (["evaluate", "--json", str(tmp_path)], "is a folder; name a file inside it"),
        (["evaluate", "table", "--resume"], "--resume continues a 'table' run: give 'table' and the run's --work-dir"),
        (["edit", ref, "make it shiny"], "cannot read the edit 'make it shiny'"),
        (["edit", str(tmp_path / "a_file"), "make it red"], "a_file: not a readable image"),
        (["edit", ref, "make it red", "-o", str(tmp_path / "edited.txt")], "has no image extension"),
        (["world", "sheet", "-o", str(tmp_path / "sheet.pdf.txt")], "has no image extension"),
    ]
    for argv, message in cases:
        assert message in fails(argv, capsys), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "ip.safetensors", "style.safetensors"]  # nothing written


def test_a_tuned_adapter_is_kept_when_writing_it_fails(tmp_path, monkeypatch, capsys):
    from styledrop_mini import adapters

    save = adapters.save_adapter
    target = tmp_path / "out" / "glass.safetensors"

    def disk_full_at_the_target(model, path, info):
        if Path(path) == target:
            raise OSError(28, "No space left on device")
        save(model, path, info)

    monkeypatch.setattr(adapters, "save_adapter", disk_full_at_the_target)
    line = fails(["style-tune", str(STYLES_DIR / "stained_glass.png"), "--style", "stained glass", "--content",
                  "a yellow house", "-o", str(target), "--steps", "2"], capsys)
    assert "could not write" in line and "No space left on device" in line
    rescued = Path(line.rsplit("kept in ", 1)[1])
    assert rescued.is_file()
    from styledrop_mini.pipeline import MusePipeline

    adapted, info = MusePipeline.load().with_adapter(rescued)
    assert info.descriptor == "stained glass" and info.caption == "a yellow house in stained glass style"


def test_train_never_replaces_a_bundled_checkpoint_unasked_and_says_what_a_replacement_makes_stale(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small = ["--steps", "2", "--bank-size", "8", "--batch-size", "4", "--workers", "0"]
    assert main(["train", "tokenizer", *small]) == 0
    assert (tmp_path / "runs" / "tokenizer" / "tokenizer.safetensors").is_file()
    assert recipes.training_output("tokenizer", overwrite=True) == CHECKPOINT_DIR / "tokenizer.safetensors"
    folder = tmp_path / "set"  # a copy of the bundled set, replaced in place as --out data/checkpoints/... would
    folder.mkdir()
    for name in ("tokenizer", "base", "subject_judge"):
        (folder / f"{name}.safetensors").write_bytes((CHECKPOINT_DIR / f"{name}.safetensors").read_bytes())
    capsys.readouterr()
    assert main(["train", "tokenizer", *small, "--out", str(folder / "tokenizer")]) == 0
    out = capsys.readouterr().out
    assert f"writing {folder / 'tokenizer.safetensors'} will make stale: {folder / 'base.safetensors'} " \
           "(trained with this tokenizer: retrain it)" in out
    assert "subject_judge.safetensors (trained with this tokenizer" in out


def _interrupt_at(monkeypatch, step):
    """Make the 'user' press Ctrl-C while the loss of `step` (1-based) is computed."""
    calls = {"n": 0}
    original = training.warmup_cosine

    def schedule(s, settings):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signal.SIGINT)
        return original(s, settings)

    monkeypatch.setattr(training, "warmup_cosine", schedule)


def test_ctrl_c_in_training_is_one_line_and_resume_continues_exactly(tmp_path, monkeypatch, capsys):
    from styledrop_mini.judges import Judges

    small = ["judges", "--steps", "6", "--bank-size", "16", "--batch-size", "4", "--workers", "0", "--precision", "fp32"]
    assert main(["train", *small, "--run-dir", str(tmp_path / "a"), "--out", str(tmp_path / "a.safetensors")]) == 0
    _interrupt_at(monkeypatch, 3)
    line = fails(["train", *small, "--run-dir", str(tmp_path / "b"), "--out", str(tmp_path / "b.safetensors")],
                 capsys, code=130)
    assert line == (f"styledrop-mini: train judges interrupted after step 3 of 6; state saved in "
                    f"{tmp_path / 'b' / 'state.safetensors'}: continue with --resume")
    assert not (tmp_path / "b.safetensors").exists()
    monkeypatch.undo()
    assert main(["train", *small, "--run-dir", str(tmp_path / "b"), "--out", str(tmp_path / "b.safetensors"),
                 "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    straight, resumed = (Judges.load(tmp_path / f"{x}.safetensors").state_dict() for x in "ab")
    assert all((straight[k].float() - resumed[k].float()).abs().max() < 1e-6 for k in straight)


def test_ctrl_c_in_tuning_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    _interrupt_at(monkeypatch, 2)
    line = fails(["style-tune", str(STYLES_DIR / "neon.png"), "--style", "glowing neon", "--content", "a pink star",
                  "-o", str(tmp_path / "neon"), "--steps", "50"], capsys, code=130)
    assert line == "styledrop-mini: adapter tuning interrupted after step 2 of 50; nothing was saved"
    assert not list(tmp_path.iterdir())


def test_the_tiny_base_preset_trains_on_the_bundled_tokens(tmp_path, capsys):
    from styledrop_mini.transformer import MaskedTransformer
    from styledrop_mini.tokenizer import VQTokenizer

    out = tmp_path / "base.safetensors"
    assert main(["train", "base", "--preset", "tiny", "--steps", "3", "--bank-size", "64", "--workers", "0",
                 "--out", str(out), "--run-dir", str(tmp_path / "run")]) == 0
    model = MaskedTransformer.load(out)
    tokens = VQTokenizer.load(CHECKPOINT_DIR / "tokenizer.safetensors").config
    assert (model.config.width, model.config.layers) == (64, 2)  # recipes.BASE_PRESETS["tiny"]
    assert model.config.grid == tokens.grid and model.config.codebook_size == tokens.codebook_size
    assert model.config.n_positions == 64 and model.info["preset"] == "tiny"



def test_a_base_starts_from_another_of_its_preset_and_may_learn_to_read_words(tmp_path, monkeypatch, capsys):
    from styledrop_mini.transformer import MaskedTransformer

    first = tmp_path / "first.safetensors"
    small = ["train", "base", "--preset", "tiny", "--steps", "2", "--bank-size", "16", "--batch-size", "4",
             "--workers", "0"]
    assert main([*small, "--out", str(first), "--run-dir", str(tmp_path / "a")]) == 0
    words = MaskedTransformer(recipes.build("base", "tiny", text_words=True)[0].config)
    recipes.warm_start(words, first)  # the same weights, now reading 2 x 24 prompt features
    start = MaskedTransformer.load(first).state_dict()
    assert words.config.text_words and all(torch.equal(v, start[k]) for k, v in words.state_dict().items())
    with pytest.raises(ValueError, match=r"first.safetensors cannot start this run: its width 64 \(the recipe's: "
                                         r"256\), layers 2 \(the recipe's: 4\), heads 2"):
        recipes.warm_start(recipes.build("base", "cpu")[0], first)
    monkeypatch.setattr(ImageBank, "render", lambda *a, **k: pytest.fail("rendered before checking --init-from"))
    line = fails([*small, "--preset", "cpu", "--init-from", str(first), "--run-dir", str(tmp_path / "b")], capsys)
    assert "cannot start this run" in line and "pick the --preset it was trained with" in line
    assert "no such checkpoint" in fails([*small, "--init-from", str(tmp_path / "none.safetensors")], capsys)
    assert "for the base generator, not 'judges'" in fails(["train", "judges", "--text-words"], capsys)
    monkeypatch.undo()
    second = tmp_path / "second.safetensors"
    assert main([*small, "--text-words", "--init-from", str(first), "--out", str(second),
                 "--run-dir", str(tmp_path / "c")]) == 0
    model = MaskedTransformer.load(second)
    assert model.config.text_words and model.info["init_from"] == fingerprint(first)
    # A run that reads words must be resumed reading words: without the flag its prompts would change silently.
    line = fails([*small, "--resume", "--run-dir", str(tmp_path / "c"), "--out", str(tmp_path / "third")], capsys)
    assert "was saved with other settings (extra.text_words)" in line


def test_a_base_run_folder_keeps_its_token_bank_for_resumes_and_new_runs(tmp_path, monkeypatch, capsys):
    from styledrop_mini.transformer import MaskedTransformer

    small = ["train", "base", "--preset", "tiny", "--steps", "4", "--bank-size", "32", "--batch-size", "8",
             "--workers", "0", "--precision", "fp32"]
    assert main([*small, "--run-dir", str(tmp_path / "a"), "--out", str(tmp_path / "a.safetensors")]) == 0
    _interrupt_at(monkeypatch, 2)
    fails([*small, "--run-dir", str(tmp_path / "b"), "--out", str(tmp_path / "b.safetensors")], capsys, code=130)
    monkeypatch.undo()
    assert (tmp_path / "b" / "token_bank.safetensors").exists()
    rendered = []
    monkeypatch.setattr(ImageBank, "render", lambda *a, **k: rendered.append(1))  # must not be called
    assert main([*small, "--run-dir", str(tmp_path / "b"), "--out", str(tmp_path / "b.safetensors"), "--resume"]) == 0
    assert not rendered
    straight, resumed = (MaskedTransformer.load(tmp_path / f"{x}.safetensors").state_dict() for x in "ab")
    assert all((straight[k].float() - resumed[k].float()).abs().max() < 1e-6 for k in straight)
    # A new run given that folder (another recipe on the same images) reuses its bank as well.
    assert main([*small, "--batch-size", "4", "--run-dir", str(tmp_path / "b"), "--out", str(tmp_path / "c.safetensors")]) == 0
    assert not rendered and "kept from the run folder" in capsys.readouterr().out


def test_resume_without_a_saved_state_fails_before_rendering(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ImageBank, "render", lambda *a, **k: pytest.fail("rendered before checking --resume"))
    line = fails(["train", "base", "--preset", "tiny", "--steps", "4", "--run-dir", str(tmp_path / "none"),
                  "--resume"], capsys)
    assert "nothing to resume" in line and str(tmp_path / "none" / "state.safetensors") in line


def test_edit_writes_the_edited_image_and_says_what_clip_read(tmp_path, capsys):
    world.render("star", "blue", "flat", seed=3).save(tmp_path / "star.png")
    assert main(["edit", str(tmp_path / "star.png"), "make it red", "-o", str(tmp_path / "red.png"), "--scale", "2"]) == 0
    said = capsys.readouterr().out
    assert 'reads' in said and '"a blue star in flat style"' in said and '"a red star in flat style"' in said
    edited = Image.open(tmp_path / "red.png")
    assert edited.size == (128, 128)
    judged = MusePipeline.load().judges().judge(pil_to_tensor(edited.resize((64, 64)))[None])
    assert judged["colour"]["labels"] == ["red"]  # colour edits changed 100 % in the sweep (styleclip_sweep.json)
