"""Package-wide settings: where bundled data lives and the notebooks' quick switch.

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import os
from pathlib import Path


def find_data_dir() -> Path:
    """Where the bundled assets (checkpoints, reference images, the DreamBooth subject) are:
    $STYLEDROP_MINI_DATA if set; else styledrop_mini/data/ inside an installed wheel (pyproject.toml
    ships the repository's data/ there); else the repository's data/ beside the package (a clone, an
    editable install). If none exists, the repository's path: loading a checkpoint then says how to
    point at the data."""
    if os.environ.get("STYLEDROP_MINI_DATA"):
        return Path(os.environ["STYLEDROP_MINI_DATA"]).expanduser().resolve()
    package = Path(__file__).resolve().parent
    for candidate in (package / "data", package.parent / "data"):
        if (candidate / "checkpoints").is_dir():
            return candidate
    return package.parent / "data"


DATA_DIR = find_data_dir()
STYLES_DIR = DATA_DIR / "styles"
CHECKPOINT_DIR = DATA_DIR / "checkpoints"


def missing_data_hint(path) -> str:
    """For an error about `path`: if it lies in the bundled data folder and that folder is missing, how to
    point at the data; else ""."""
    if DATA_DIR.is_dir() or DATA_DIR not in (Path(path).absolute(), *Path(path).absolute().parents):
        return ""
    return (f"; the bundled data folder {DATA_DIR} is missing: set STYLEDROP_MINI_DATA to the folder that "
            "holds checkpoints/ and styles/ (the repository's data/)")


def quick_mode() -> bool:
    """True when STYLEDROP_MINI_QUICK is set to a true value, or when running under CI.

    Quick mode shrinks step and sample counts only; every lesson still runs.
    """
    flag = os.environ.get("STYLEDROP_MINI_QUICK", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return bool(os.environ.get("CI"))
