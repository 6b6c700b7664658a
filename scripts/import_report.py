"""How the package's modules import each other, read from the source (no import is run):

    python scripts/import_report.py                      # this checkout's styledrop_mini/
    python scripts/import_report.py OLD/styledrop_mini   # another version, e.g. from `git archive`

Prints how many package-internal import statements sit inside functions (they hide cycles and
slow starts; tests/test_imports.py asserts there are none), any cycle, and each module's imports.
"""
import argparse
import ast
from pathlib import Path


def statements(path: Path, modules: set[str]):
    """(imported package modules, inside a function?) for each relative import statement of `path`."""
    found = []

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom) and child.level == 1:
                names = [child.module.split(".")[0]] if child.module else [a.name for a in child.names]
                found.append(([n for n in names if n in modules], in_function))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
    walk(ast.parse(path.read_text()), False)
    return found


def find_cycle(edges: dict) -> list[str] | None:
    """A cycle of modules (its first module repeated at the end), or None: depth-first search."""
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    return next((cycle for module in sorted(edges) if module not in state and (cycle := visit(module))), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", nargs="?", default=Path(__file__).resolve().parents[1] / "styledrop_mini")
    package = Path(parser.parse_args().package)
    modules = {p.stem for p in package.glob("*.py")}
    graph, total, inside = {}, 0, 0
    for module in sorted(modules):
        found = statements(package / f"{module}.py", modules)
        total, inside = total + len(found), inside + sum(f for _, f in found)
        graph[module] = sorted({n for names, _ in found for n in names} - {module})
    print(f"{package}: {len(modules)} modules; {inside} of {total} package-internal import statements "
          "inside functions")
    cycle = find_cycle(graph)
    print("cycle: " + (" -> ".join(cycle) if cycle else "none"))
    for module, targets in graph.items():
        print(f"  {module:13s} imports {', '.join(targets) or 'nothing of the package'}")


if __name__ == "__main__":
    main()
