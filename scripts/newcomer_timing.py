"""A newcomer's first style transfer, timed: a fresh clone and virtual environment, the README's install
line, then `styledrop-mini demo` (one-image style tuning and a grid on screen), each part timed.

    python scripts/newcomer_timing.py [--json benchmarks/results/newcomer_timing.json] [--warm-cache]

pip's download cache is off (PIP_NO_CACHE_DIR=1) unless --warm-cache: every package comes from the
index as it would on a new machine. Run it alone on the machine: it times, it does not share.
The README's quick start and docs/teaching.md quote its figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL = 'pip install -e ".[dev]"'  # the README's quick-start line, word for word (a test checks it)
DEMO = "styledrop-mini demo"


def readme_lines() -> list[str]:
    return (ROOT / "README.md").read_text().splitlines()


def timed(command: str, cwd: Path, env: dict, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, shell=True, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{command!r} failed with status {done.returncode}; its output is in {log}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "newcomer_timing.json"))
    parser.add_argument("--warm-cache", action="store_true", help="let pip use its download cache")
    args = parser.parse_args()
    if INSTALL not in readme_lines() or DEMO not in readme_lines():
        sys.exit(f"README.md's quick start no longer reads {INSTALL!r} then {DEMO!r}: update this script")
    with tempfile.TemporaryDirectory() as scratch:
        clone, venv = Path(scratch) / "styledrop_mini", Path(scratch) / "venv"
        start = time.perf_counter()
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cloned = time.perf_counter() - start
        env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
        env.pop("CI", None)  # a newcomer runs the full demo, not the tests' quick mode
        env.pop("STYLEDROP_MINI_QUICK", None)
        if not args.warm_cache:
            env["PIP_NO_CACHE_DIR"] = "1"
        install = timed(INSTALL, clone, env, Path(scratch) / "install.log")
        demo = timed(DEMO, clone, env, Path(scratch) / "demo.log")
        tail = (Path(scratch) / "demo.log").read_text().strip().splitlines()[-1]
        cpu = subprocess.run("lscpu", capture_output=True, text=True).stdout
        bf16 = any(flag in cpu for flag in ("avx512_bf16", "amx_bf16"))
    result = {"command": "python scripts/newcomer_timing.py" + (" --warm-cache" if args.warm_cache else ""),
              "clone_and_venv_s": round(cloned, 1), "install_s": round(install, 1), "demo_s": round(demo, 1),
              "total_s": round(cloned + install + demo, 1), "install_line": INSTALL, "pip_cache": args.warm_cache,
              "cores": os.cpu_count(), "native_bf16": bf16, "python": platform.python_version(),
              "demo_last_line": tail}
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"clone + venv {cloned:.0f} s, install {install:.0f} s, demo {demo:.0f} s: "
          f"{(cloned + install + demo) / 60:.1f} min to a first style transfer on screen ({os.cpu_count()} cores, "
          f"{'native' if bf16 else 'no native'} bf16, pip cache {'on' if args.warm_cache else 'off'}); wrote {args.json}")


if __name__ == "__main__":
    main()
