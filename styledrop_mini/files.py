"""Files users give us and files we write for them: checked before any slow work, errors that name them.

- `inside(folder, name, source)`: a file name read from a metadata file (`file_name`, a pool entry)
  stays inside its folder; `../../x` and absolute paths are refused, naming the file that listed them.
- `read_json` / `read_jsonl`: JSON with errors that name the file (and line), never a bare decode error.
- `write_json`: atomic (temporary file, then rename), so a crash leaves the old file or the new one.
- `check_output(path, kind)`: an output path is writable and of the right kind *before* the work that
  fills it; `save_or_rescue` still keeps the result (in the temp folder, said aloud) if writing fails.
- `checkpoint_file(name)`: "my_style" and "my_style.safetensors" name the same file, everywhere.

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

CHECKPOINT_SUFFIX = ".safetensors"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class MetadataError(ValueError):
    """A metadata file (JSON, JSON lines) that cannot be used; the message names the file and line."""


def inside(folder, name, source) -> Path:
    """`folder / name`, refusing names that leave the folder (absolute, `..`, a drive). `source` names
    the file that listed `name`, for the message."""
    folder = Path(folder)
    if not isinstance(name, str) or not name.strip():
        raise MetadataError(f"{source}: expected a file name, got {name!r}")
    candidate = Path(name)
    root = folder.resolve()
    if candidate.is_absolute() or candidate.drive or ".." in candidate.parts:
        raise MetadataError(f"{source}: the path {name!r} leaves {folder}; only names inside that folder are "
                            "allowed (no absolute paths, no '..')")
    path = (folder / candidate).resolve()
    if path != root and root not in path.parents:  # a symbolic link that points outside
        raise MetadataError(f"{source}: the path {name!r} leads outside {folder}")
    return folder / candidate


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{path}: cannot read this {what} ({exc})") from exc


def read_json(path, what: str = "JSON file"):
    """Parse a JSON file; a missing or broken file is an error that names it."""
    path = Path(path)
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc


def read_jsonl(path, what: str = "JSON-lines file") -> list[tuple[int, dict]]:
    """Parse a JSON-lines file into (line number, object) pairs, skipping blank lines; errors name the
    file and the line."""
    path = Path(path)
    text = _read_text(path, what)
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise MetadataError(f"{path}, line {line_no}: expected a JSON object {{...}}, got {type(row).__name__}")
        rows.append((line_no, row))
    return rows


def write_json(path, data) -> None:
    """Write JSON atomically (temporary file, then rename): a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def keep_bad_copy(path) -> Path:
    """Rename a broken file aside (NAME.broken-TIMESTAMP), so nothing is lost and it can be looked at."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    return aside


def checkpoint_file(name) -> Path:
    """'my_style' or 'my_style.safetensors' -> Path('my_style.safetensors') (other suffixes are kept:
    'my.style' -> 'my.style.safetensors')."""
    path = Path(name)
    return path if path.suffix == CHECKPOINT_SUFFIX else path.with_name(path.name + CHECKPOINT_SUFFIX)


def check_output(path, kind: str, option: str = "--out") -> Path:
    """Check an output path before the work: `kind` "image" (a suffix PIL writes), "checkpoint" (adds
    .safetensors when missing) or "file". Its folder is made and a test file written there, so a
    read-only place fails now, not after the work. Returns the path to write."""
    path = Path(path)
    if str(path).strip() == "":
        raise ValueError(f"{option} is empty; name a file")
    if path.is_dir():  # (also before a checkpoint's suffix is added: "-o my_folder" means no file)
        example = {"image": "grid.png", "checkpoint": "my_style.safetensors"}.get(kind, "out.json")
        raise ValueError(f"{option} {path} is a folder; name a file inside it, e.g. {path / example}")
    if kind == "checkpoint":
        path = checkpoint_file(path)
        if path.is_dir():
            raise ValueError(f"{option} {path} is a folder; name a file, e.g. {path.parent / 'my_style.safetensors'}")
    if kind == "image" and path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{option} {path} has no image extension; use one of {', '.join(IMAGE_SUFFIXES)} "
                         f"(e.g. {path.with_suffix('.png') if path.suffix else str(path) + '.png'})")
    folder = path.parent
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"{option} {path}: cannot write in {folder}: {blocking} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    return path


def save_or_rescue(save, path, what: str = "result") -> Path:
    """Call `save(path)`; if that fails (disk full, folder removed meanwhile), save to the temp folder
    instead, so hours of work are not lost, and raise an error that says where it went."""
    path = Path(path)
    try:
        save(path)
        return path
    except OSError as exc:
        rescue = Path(tempfile.mkdtemp(prefix="styledrop_mini-")) / path.name
        save(rescue)
        raise OSError(f"could not write {path} ({exc.strerror or exc}); the {what} was kept in {rescue}") from exc
