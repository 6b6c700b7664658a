"""The package's imports form a tree, read from the source: no cycle between its modules, and every
import at the top of its file (an import inside a function hides a cycle or a slow start; one is
allowed only for a heavy optional dependency, with a comment on its line saying so)."""
import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest

import styledrop_mini

PACKAGE = Path(styledrop_mini.__file__).parent
REPORT = PACKAGE.parent / "scripts" / "import_report.py"
if not REPORT.is_file():
    pytest.skip("no scripts/ beside the package (an installed copy)", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("import_report", REPORT)
import_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_report)  # scripts/import_report.py: the same cycle finder, for any version
find_cycle = import_report.find_cycle
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def imports(path: Path):
    """(imported package module or None, line, inside a function?) for each import statement of `path`."""
    found = []

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.level == 1:
                names = [child.module.split(".")[0]] if child.module else [a.name for a in child.names]
                found.extend((name, child.lineno, in_function) for name in names if name in MODULES)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((None, child.lineno, in_function))
            walk(child, inside)
    walk(ast.parse(path.read_text()), False)
    return found


def graph() -> dict[str, set[str]]:
    return {m: {name for name, _, _ in imports(PACKAGE / f"{m}.py") if name} - {m} for m in MODULES}


def test_the_cycle_finder_finds_a_cycle():  # the check below can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_imports_form_a_tree():
    assert find_cycle(graph()) is None, f"import cycle: {' -> '.join(find_cycle(graph()))}"


def test_imports_sit_at_the_top_of_each_file():
    hidden = []
    for module in MODULES:
        lines = (PACKAGE / f"{module}.py").read_text().splitlines()
        hidden += [f"{module}.py:{line}: {lines[line - 1].strip()}" for name, line, in_function in imports(
            PACKAGE / f"{module}.py") if in_function and (name or "optional" not in lines[line - 1])]
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


def test_every_module_is_named_in_the_package_docstring():
    missing = [m for m in MODULES if not m.startswith("_") and f"`{m}`" not in (styledrop_mini.__doc__ or "")]
    assert not missing, f"the package docstring does not name: {missing}"


def chapter_of(module: str) -> int | None:
    """The chapter a module's docstring names ("Chapter 03: tutorials/03_....ipynb"), or None."""
    match = re.search(r"^Chapter (\d\d): tutorials/\d\d_\w+\.ipynb\.$", ast.get_docstring(
        ast.parse((PACKAGE / f"{module}.py").read_text())) or "", re.M)
    return int(match[1]) if match else None


def test_each_notebook_imports_only_what_its_chapter_or_an_earlier_one_introduces():
    tutorials = PACKAGE.parent / "tutorials"
    if not tutorials.is_dir():
        pytest.skip("no tutorials/ beside the package (an installed copy)")
    late = []
    for notebook in sorted(tutorials.glob("[0-9][0-9]_*.ipynb")):
        number = int(notebook.name[:2])
        code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                         if c["cell_type"] == "code")
        used = set(re.findall(r"from styledrop_mini\.(\w+) import", code))
        for names in re.findall(r"from styledrop_mini import ([\w, ]+)", code):
            used |= {name.strip().split(" as ")[0] for name in names.split(",")}
        late += [f"{notebook.name} uses {m} (chapter {chapter_of(m)})" for m in sorted(used & set(MODULES))
                 if (chapter_of(m) or 0) > number]
    assert not late, "\n".join(late)


def test_modules_a_notebook_teaches_name_their_chapter():
    unnamed = [m for m in MODULES if chapter_of(m) is None and m not in ("__init__", "__main__", "cli", "evaluation")]
    assert not unnamed, f"no 'Chapter NN: tutorials/NN_....ipynb.' line in the docstring of: {unnamed}"
