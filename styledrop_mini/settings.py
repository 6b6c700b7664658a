"""Package-wide settings: where bundled data lives and the notebooks' quick switch."""
from __future__ import annotations

import os
from pathlib import Path

# The bundled assets (reference images, checkpoints) live in the repository's data/ folder;
# STYLEDROP_MINI_DATA points elsewhere, e.g. for a non-editable install.
DATA_DIR = Path(os.environ.get("STYLEDROP_MINI_DATA", Path(__file__).resolve().parent.parent / "data"))
STYLES_DIR = DATA_DIR / "styles"
CHECKPOINT_DIR = DATA_DIR / "checkpoints"


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
