"""Generate exercise notebooks from solution notebooks (one source of truth).

Introduced with the interview exercises. ``solutions/NN_name.ipynb`` marks
its answers with nbgrader's convention::

    ### BEGIN SOLUTION
    ...the answer...
    ### END SOLUTION

(in Markdown cells: ``<!-- ### BEGIN SOLUTION -->`` ... ``<!-- ### END
SOLUTION -->``, invisible when rendered). ``build`` writes
``exercises/NN_name.ipynb`` with each region replaced by a stub raising
``NotImplementedError`` (or a "write your answer here" line), outputs and
execution counts stripped, and cells tagged ``solution-only`` dropped.
``check`` reports every exercise that differs from what ``build`` would write.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

__all__ = ["strip_solutions", "render", "build", "check", "STUB", "ANSWER"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution")'
ANSWER = "*Write your answer here.*"
SOLUTION_ONLY = "solution-only"


def _strip_text(text: str, stub: str, where: str) -> str:
    out, inside = [], False
    for line in text.splitlines():
        if BEGIN in line:
            if inside:
                raise ValueError(f"{where}: nested '{BEGIN}'; close the first region with '{END}'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + stub)
        elif END in line:
            if not inside:
                raise ValueError(f"{where}: '{END}' without a matching '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed; add a '{END}' line")
    return "\n".join(out)


def strip_solutions(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of ``nb`` with answers replaced by stubs and outputs removed."""
    nb = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(nb.cells):
        if SOLUTION_ONLY in cell.get("metadata", {}).get("tags", []):
            continue
        where = f"{name}, cell {i}"
        if cell.cell_type == "code":
            cell.source = _strip_text(cell.source, STUB, where)
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = _strip_text(cell.source, ANSWER, where)
        cells.append(cell)
    nb.cells = cells
    # keep only what a kernel needs: executing a solution records versions here
    nb.metadata = nbformat.from_dict({
        "kernelspec": nb.metadata.get("kernelspec", {"display_name": "Python 3",
                                                     "language": "python", "name": "python3"}),
        "language_info": {"name": "python"},
    })
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """The exact text written to disk (so ``check`` can compare byte for byte)."""
    return nbformat.writes(nb) + "\n"


def _pairs(solutions: Path, exercises: Path):
    for src in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        yield src, exercises / src.name


def build(solutions: str | Path = "solutions", exercises: str | Path = "exercises") -> list[Path]:
    """Write every exercise notebook; returns the paths written."""
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise FileNotFoundError(f"no solutions folder at {solutions.resolve()}; run from the repo root")
    exercises.mkdir(parents=True, exist_ok=True)
    written = []
    for src, dst in _pairs(solutions, exercises):
        nb = strip_solutions(nbformat.read(str(src), as_version=4), src.name)
        dst.write_text(render(nb), encoding="utf-8")
        written.append(dst)
    return written


def check(solutions: str | Path = "solutions", exercises: str | Path = "exercises") -> list[str]:
    """Problems found: exercises missing, stale, or without a solution."""
    solutions, exercises = Path(solutions), Path(exercises)
    problems = []
    for src, dst in _pairs(solutions, exercises):
        want = render(strip_solutions(nbformat.read(str(src), as_version=4), src.name))
        if not dst.exists():
            problems.append(f"{dst} is missing")
        elif dst.read_text(encoding="utf-8") != want:
            problems.append(f"{dst} differs from what {src} generates")
    names = {p.name for p in solutions.glob("[0-9][0-9]_*.ipynb")}
    for extra in sorted(exercises.glob("[0-9][0-9]_*.ipynb")):
        if extra.name not in names:
            problems.append(f"{extra} has no solution notebook {solutions / extra.name}")
    return problems
