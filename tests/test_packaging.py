"""A non-editable install (a wheel) finds the bundled data, and says how to point at it when it is missing."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args, cwd, env=None, check=True):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert not check or done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_the_wheel_carries_the_data_and_runs_from_anywhere(tmp_path):
    source = tmp_path / "source"  # a copy: building never writes build/ or *.egg-info into the clone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for name in ("styledrop_mini", "data"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(source)], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("styledrop_mini-*.whl"))
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(tmp_path / "site"),
         str(wheel)], cwd=tmp_path)
    shutil.rmtree(source)  # nothing may come from the source tree any more
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    env.pop("STYLEDROP_MINI_DATA", None)
    where = run([sys.executable, "-c", "import styledrop_mini, styledrop_mini.settings as s; "
                 "print(styledrop_mini.__file__); print(s.CHECKPOINT_DIR)"], cwd=elsewhere, env=env).stdout.split()
    assert all(str(tmp_path / "site" / "styledrop_mini") in line for line in where), where  # the wheel's own copy
    run([sys.executable, "-m", "styledrop_mini", "generate", "a red star in flat style", "-n", "1", "--steps", "2",
         "-o", "star.png"], cwd=elsewhere, env=env)
    assert (elsewhere / "star.png").is_file()
    # pointed at a folder that is not there: the error says how to point at the data
    missing = run([sys.executable, "-m", "styledrop_mini", "generate", "a star", "-o", "x.png"], cwd=elsewhere,
                  env={**env, "STYLEDROP_MINI_DATA": str(tmp_path / "no_data")}, check=False)
    assert missing.returncode == 2 and "set STYLEDROP_MINI_DATA to the folder that holds checkpoints/" in missing.stderr
    assert "Traceback" not in missing.stderr
