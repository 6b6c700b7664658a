"""Student copies of the notebooks (assignments.py): stubs keep signatures, outputs that tell answers go,
every exercise is checked and tagged for nbgrader, and a student copy runs up to its first stub and
then fails in its check with the checker's explanation, not elsewhere."""
import ast
import copy
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from styledrop_mini import assignments
from styledrop_mini.cli import main
from styledrop_mini.exercises import CHECKS

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.ipynb")) if TUTORIALS.is_dir() else []
needs_tutorials = pytest.mark.skipif(not NOTEBOOKS, reason="no tutorials/ beside the package (an installed copy)")

SOLUTION = '''def f(x):
    """Twice x."""
    ### BEGIN SOLUTION
    y = 2 * x
    return y
    ### END SOLUTION

print(f(2))'''


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) if not c.startswith("#md ") else nbformat.v4.new_markdown_cell(c[4:])
                for c in cells]
    return nb


def test_stub_keeps_the_signature_and_hint_and_indents_like_the_markers():
    assert assignments.stub(SOLUTION) == ('def f(x):\n    """Twice x."""\n    # YOUR CODE HERE\n'
                                          '    raise NotImplementedError()\n\nprint(f(2))')
    assert assignments.stub("a = None\n### BEGIN SOLUTION\na = 1\n### END SOLUTION") == \
        "a = None\n# YOUR CODE HERE\nraise NotImplementedError()"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_are_named(source, message):
    with pytest.raises(assignments.AssignmentError, match=f"my.ipynb, cell 0.*{message}"):
        assignments.exercises(notebook(source), "my.ipynb")


def test_a_solution_needs_its_own_check_cell():
    with pytest.raises(assignments.AssignmentError, match="followed by a code cell"):
        assignments.exercises(notebook(SOLUTION, "print(1)"), "my.ipynb")
    with pytest.raises(assignments.AssignmentError, match="share a cell"):
        assignments.exercises(notebook(SOLUTION + '\ncheck("04.x", f)'), "my.ipynb")


def test_student_copy_clears_solutions_and_their_checks_and_keeps_the_rest():
    nb = notebook("import math", "#md **Exercise 1.** Double it.", SOLUTION, 'check("00.double", f)',
                  "#md **Exercise 2 (open).** Why?", "print(3)")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="printed\n")]
            cell.execution_count = 1
    before = copy.deepcopy(nb)
    student = assignments.student_copy(assignments.tag(nb, "00_x"))
    assert nb.cells[2].source == before.cells[2].source  # the solution notebook is not touched
    assert "raise NotImplementedError()" in student.cells[2].source and "2 * x" not in student.cells[2].source
    for i in (2, 3):  # the solution and its check: a check's printed line would tell the answer
        assert student.cells[i].outputs == [] and student.cells[i].execution_count is None
    for i in (0, 5):
        assert student.cells[i].outputs == before.cells[i].outputs and student.cells[i].source == before.cells[i].source
    meta = [c.metadata.get("nbgrader") for c in student.cells]
    assert meta[2]["solution"] and not meta[2]["grade"] and meta[2]["grade_id"] == "00-double"
    assert meta[3]["grade"] and meta[3]["locked"] and meta[3]["points"] == 1
    assert meta[4]["task"] and meta[4]["grade_id"] == "00-open-2"
    assert meta[0] is meta[1] is meta[5] is None


def test_build_refuses_to_overwrite_and_to_write_over_the_solutions(tmp_path):
    source = tmp_path / "tutorials"
    source.mkdir()
    nbformat.write(notebook(SOLUTION, 'check("00.double", f)'), str(source / "00_x.ipynb"))
    made = assignments.build(source, tmp_path / "student")
    assert [(p.name, checked, open_) for p, checked, open_ in made] == [("00_x.ipynb", 1, 0)]
    with pytest.raises(FileExistsError, match="--overwrite"):
        assignments.build(source, tmp_path / "student")
    with pytest.raises(assignments.AssignmentError, match="overwrite the solution"):
        assignments.build(source, source, overwrite=True)
    assert main(["assignments", "build", "--notebooks", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s")]) == 2


@needs_tutorials
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_has_checked_exercises_tagged_for_nbgrader(name):
    nb = nbformat.read(str(TUTORIALS / name), as_version=4)
    found = assignments.exercises(nb, name)
    assert found, f"{name} has no checked exercise"
    assert all(e.name in CHECKS for e in found), [e.name for e in found if e.name not in CHECKS]
    assert all(e.name.startswith(name[:2] + ".") for e in found)
    retagged = assignments.tag(copy.deepcopy(nb), name[:-6], name)
    assert [c.metadata for c in retagged.cells] == [c.metadata for c in nb.cells], \
        f"{name}: nbgrader metadata out of date: run assignments.tag on it"
    assert nb.cells[-1].source.startswith("## Recap") or nb.cells[-2].source.startswith("## Recap"), \
        f"{name} does not end with a recap"


def names_of(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds, names it reads), from its Python (IPython magics and shell lines dropped)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    bound, read = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return bound, read


def cells_needed(nb, upto: int, targets: list[int]) -> list[int]:
    """The code cells before `upto` that `targets` need: the notebook's first code cell (its setup:
    quick mode, seeds), and every cell that binds a name a needed cell reads, followed backwards.
    The cells left out are identical in the solution notebook, which nbval runs whole."""
    code = [i for i in range(upto) if nb.cells[i].cell_type == "code"]
    needed = set(targets) | set(code[:1])
    wanted = set().union(*(names_of(nb.cells[i].source)[1] for i in needed))
    for i in reversed(code):
        bound, read = names_of(nb.cells[i].source)
        if bound & wanted:
            needed.add(i)
            wanted |= read
    return sorted(needed)


def test_cells_needed_follows_names_backwards():
    nb = notebook("import os\nos.environ['Q'] = '1'", "slow = train()", "x = 2", "#md prose", "def f(y):\n    return y * x",
                  "z = f(3)")
    assert cells_needed(nb, 5, [5]) == [0, 2, 4, 5]


@needs_tutorials
def test_a_student_copy_leaves_every_cell_but_the_solutions_and_checks_as_it_was():
    """Why the next test may skip cells: what it skips is what nbval runs in the solution notebook."""
    for name in NOTEBOOKS:
        solution = nbformat.read(str(TUTORIALS / name), as_version=4)
        student = assignments.student_copy(solution, name)
        exercised = {i for e in assignments.exercises(solution, name) for i in (e.solution_cell, e.check_cell)}
        changed = {i for i, (a, b) in enumerate(zip(solution.cells, student.cells)) if a.source != b.source}
        assert len(solution.cells) == len(student.cells) and changed <= exercised, f"{name}: cells {changed - exercised}"


@needs_tutorials
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_student_copy_runs_to_its_first_stub_and_its_check_explains(name, monkeypatch):
    """Run the student copy in quick mode up to the first exercise's check (the cells that exercise
    needs: cells_needed): they run cleanly, and the check fails with the checker's explanation."""
    monkeypatch.setenv("STYLEDROP_MINI_QUICK", "1")
    solution = nbformat.read(str(TUTORIALS / name), as_version=4)
    first = assignments.exercises(solution, name)[0]
    stub_cell, check_cell = first.solution_cell, first.check_cell
    student = assignments.student_copy(solution, name)
    client = NotebookClient(student, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(TUTORIALS)}})  # ../benchmarks resolves
    errors = {}
    with client.setup_kernel(env={**os.environ, "MPLBACKEND": "Agg"}):
        for i in cells_needed(student, stub_cell, [stub_cell, check_cell]):
            try:
                client.execute_cell(student.cells[i], i)
            except CellExecutionError as exc:
                errors[i] = (exc.ename, str(exc.evalue))
    assert all(i >= stub_cell for i in errors), f"{name}: cells before the first stub failed: {errors}"
    assert set(errors) <= {stub_cell, check_cell}, f"{name}: unexpected errors: {errors}"
    ename, message = errors.get(check_cell, (None, ""))
    assert ename == "ExerciseError", f"{name}: the first check did not explain: {errors}"
    assert "not written yet" in message or "no answer yet" in message, message


@needs_tutorials
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_committed_cell_has_outputs_without_an_execution_count(name):
    """nbval fails such a cell ("Unrun reference cell has outputs"): a cell executed apart from its
    notebook must keep a count with its outputs."""
    nb = nbformat.read(str(TUTORIALS / name), as_version=4)
    unrun = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs and c.execution_count is None]
    assert not unrun, f"{name}: cells {unrun} have outputs but no execution count"


@needs_tutorials
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_settings_cell_is_tagged_for_papermill(name):
    """The first code cell that sets QUICK is the notebook's settings cell: tagged `parameters`, so that
    papermill (and a teacher's scripts) can set its values."""
    nb = nbformat.read(str(TUTORIALS / name), as_version=4)
    settings = next((c for c in nb.cells if c.cell_type == "code" and "QUICK = " in c.source), None)
    assert settings is not None, f"{name}: no settings cell (QUICK = quick_mode())"
    assert "parameters" in settings.metadata.get("tags", []), f"{name}: its settings cell is not tagged 'parameters'"
