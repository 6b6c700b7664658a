"""Assignments: student notebooks generated from the solution notebooks, ready for nbgrader.

A solution notebook marks each exercise's answer with nbgrader's markers:

    def adapter_guidance(l_adapted, l_base, l_uncond, lambda_a, lambda_b):   # kept: the signature
        \"\"\"Eq. 4 ...\"\"\"                                                    # kept: the hint
        ### BEGIN SOLUTION
        return ...                                                          # replaced by the stub
        ### END SOLUTION

and the next code cell checks it: `check("04.adapter_guidance", adapter_guidance)` (exercises.py).
`student_copy` replaces each marked region with nbgrader's own stub (`# YOUR CODE HERE` and
`raise NotImplementedError()`, indented like the markers), clears the outputs of the solution cells
and of their check cells (a check's printed line tells the right answer), and leaves every other
cell as it is. `tag` writes nbgrader's cell metadata: a solution cell is an autograded answer, its
check cell a locked, graded test worth one point, an open exercise a manually graded task. So the
tutorials are nbgrader *source* notebooks as they stand (`nbgrader generate_assignment` clears them
the same way), and `build` writes the student copies for a class that grades by hand or with
`check`. Value answers start as `answer = None` above the markers, so an unanswered check says
"no answer yet" instead of failing with a NameError.

Chapter 00: tutorials/00_mini_world.ipynb.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's default code stub, line by line
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d\d\.[A-Za-z0-9_]+)["']""")
OPEN_EXERCISE = re.compile(r"\*\*Exercise (\d+) \(open\)\.\*\*")  # "**Exercise 3 (open).**"
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
NBGRADER_SCHEMA = 3


class AssignmentError(ValueError):
    """A solution notebook that cannot be turned into an assignment; the message names the notebook and cell."""


@dataclass(frozen=True)
class Exercise:
    """A checked exercise: the solution cell, the cell that checks it, and the checker's name."""
    name: str  # "04.adapter_guidance": the key of exercises.CHECKS
    solution_cell: int
    check_cell: int

    @property
    def grade_id(self) -> str:  # nbgrader ids allow letters, digits, '_' and '-'
        return self.name.replace(".", "-")


def stub(source: str, where: str = "cell") -> str:
    """`source` with every BEGIN/END SOLUTION region replaced by nbgrader's stub, indented as its marker."""
    lines, out, indent = source.split("\n"), [], None
    for number, line in enumerate(lines, 1):
        marker = line.strip()
        if marker == BEGIN:
            if indent is not None:
                raise AssignmentError(f"{where}, line {number}: '{BEGIN}' inside another solution region")
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + text for text in STUB]
        elif marker == END:
            if indent is None:
                raise AssignmentError(f"{where}, line {number}: '{END}' without a '{BEGIN}' above it")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise AssignmentError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def has_solution(cell) -> bool:
    return cell.cell_type == "code" and any(line.strip() in (BEGIN, END) for line in cell.source.split("\n"))


def exercises(nb, where: str = "notebook") -> list[Exercise]:
    """The checked exercises of a solution notebook: each solution cell with the next code cell, which
    must call `check("NN.name", ...)` (and hold no solution of its own)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and any(m[4:] in cell.source for m in (BEGIN, END)):
            raise AssignmentError(f"{where}, cell {i}: a markdown cell says '{BEGIN[4:]}' or '{END[4:]}'; nbgrader "
                                  "reads those words anywhere as a solution marker: rephrase the text")
        if not has_solution(cell):
            continue
        stub(cell.source, f"{where}, cell {i}")  # unbalanced markers fail here, named
        if CHECK_CALL.search(cell.source):
            raise AssignmentError(f"{where}, cell {i}: the solution and its check share a cell; put "
                                  "`check(...)` in the next code cell, so that a grader can lock it")
        following = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
        match = None if following is None else CHECK_CALL.search(nb.cells[following].source)
        if match is None or has_solution(nb.cells[following]):
            raise AssignmentError(f"{where}, cell {i}: a solution cell must be followed by a code cell that "
                                  "calls check(\"NN.name\", answer)")
        found.append(Exercise(match.group(1), i, following))
    names = [e.name for e in found]
    if len(set(names)) != len(names):
        raise AssignmentError(f"{where}: an exercise is checked twice: {sorted(n for n in names if names.count(n) > 1)}")
    return found


def open_exercises(nb) -> list[int]:
    """Markdown cells that pose an open exercise ("**Exercise 3 (open).**"): graded by hand with a rubric."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown" and OPEN_EXERCISE.search(cell.source)]


def _nbgrader(grade_id: str, *, solution=False, grade=False, locked=False, task=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": NBGRADER_SCHEMA,
            "solution": solution, "task": task}
    if points is not None:
        meta["points"] = points
    return meta


def tag(nb, stem: str, where: str = "notebook"):
    """Write nbgrader's metadata into `nb` (in place) and return it: solution cells are autograded
    answers, check cells locked tests of 1 point, open exercises manually graded tasks of 2 points."""
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    for ex in exercises(nb, where):
        nb.cells[ex.solution_cell].metadata["nbgrader"] = _nbgrader(ex.grade_id, solution=True)
        nb.cells[ex.check_cell].metadata["nbgrader"] = _nbgrader(ex.grade_id + "-check", grade=True, locked=True, points=1)
    for i in open_exercises(nb):
        number = OPEN_EXERCISE.search(nb.cells[i].source).group(1)
        nb.cells[i].metadata["nbgrader"] = _nbgrader(f"{stem[:2]}-open-{number}", task=True, locked=True, points=2)
    return nb


def student_copy(nb, where: str = "notebook"):
    """A student version of solution notebook `nb`: stubs for solutions, their outputs and their checks'
    outputs cleared, everything else intact."""
    student = copy.deepcopy(nb)
    for ex in exercises(nb, where):
        solution, checked = student.cells[ex.solution_cell], student.cells[ex.check_cell]
        solution.source = stub(solution.source, f"{where}, cell {ex.solution_cell}")
        for cell in (solution, checked):
            cell.outputs, cell.execution_count = [], None
    return student


def solution_notebooks(folder) -> list[Path]:
    """The numbered notebooks `NN_topic.ipynb` of `folder`; a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of notebooks (run from the repository root, or give "
                                "--notebooks)")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_NAME.match(p.name))
    if not found:
        raise AssignmentError(f"{folder}: no numbered notebooks (NN_topic.ipynb) in this folder")
    return found


def read(path):
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises JSON, validation and OS errors of several kinds
        raise AssignmentError(f"{path}: not a readable notebook ({exc})") from exc


def build(notebooks, out, overwrite: bool = False) -> list[tuple[Path, int, int]]:
    """Write a student copy of every numbered notebook in folder `notebooks` to folder `out` (a sibling
    of the tutorials keeps their relative paths to ../benchmarks working). Every notebook is checked
    before any file is written. Returns (student file, checked exercises, open exercises) per notebook."""
    sources = solution_notebooks(notebooks)
    out = Path(out)
    if out.resolve() == Path(notebooks).resolve():
        raise AssignmentError(f"{out}: the student copies would overwrite the solution notebooks; choose another --out")
    targets = [out / p.name for p in sources]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists (and {len(existing) - 1} more); pass --overwrite to replace "
                              "student copies (a student's edits in them are lost)")
    made = []
    for path in sources:
        nb = read(path)
        made.append((student_copy(tag(nb, path.stem, str(path)), str(path)), len(exercises(nb)), len(open_exercises(nb))))
    out.mkdir(parents=True, exist_ok=True)
    for target, (student, checked, open_) in zip(targets, made):
        nbformat.write(student, str(target))
    return [(target, checked, open_) for target, (_, checked, open_) in zip(targets, made)]
