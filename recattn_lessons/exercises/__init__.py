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
``build`` never overwrites an exercise notebook that a learner has edited
(one that matches neither the generator's output nor the hash recorded in
``exercises/.generated.json`` at the last build, i.e. anything the generator
did not write itself: answers a learner committed with git are kept too);
``--force`` does. ``check`` reports exercises that are missing, stale or
committed out of sync, and treats a learner's answers as fine.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from pathlib import Path

import nbformat

__all__ = ["strip_solutions", "render", "build", "check", "committed", "edited_by_learner",
           "answered", "STUB", "ANSWER", "MANIFEST", "SAFE_REBUILD"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution")'
ANSWER = "*Write your answer here.*"
SOLUTION_ONLY = "solution-only"
MANIFEST = ".generated.json"  # file name -> sha256 of what build last wrote
SAFE_REBUILD = ("make exercises (or .venv/bin/python -m recattn_lessons.exercises build); "
                "it never overwrites a notebook you have edited")


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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _manifest(exercises: Path) -> dict:
    path = exercises / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def committed(path: Path) -> str | None:
    """``path``'s text in the last git commit, or None (no git, untracked, not a repo)."""
    path = Path(path).resolve()
    try:
        top = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10)
        if top.returncode:
            return None
        rel = path.relative_to(Path(top.stdout.strip()).resolve()).as_posix()
        shown = subprocess.run(["git", "-C", top.stdout.strip(), "show", f"HEAD:{rel}"],
                               capture_output=True, timeout=10)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return shown.stdout.decode("utf-8") if shown.returncode == 0 else None


def _stubs(text: str) -> int:
    return text.count(STUB.replace('"', '\\"')) + text.count(ANSWER)


def answered(text: str, want: str) -> bool:
    """True when ``text`` is a learner's copy of ``want``: some stubs replaced by answers.

    A hand edit of the generated notebook that keeps every stub is not an answer
    (that is drift from ``solutions/``)."""
    return _stubs(text) < _stubs(want)


def edited_by_learner(dst: Path, want: str, recorded: str | None) -> bool:
    """True when ``dst`` holds work that regenerating would lose.

    A file is *not* edited only when it is generator output: equal to what the
    generator writes now, or to what it wrote last (the hash in
    ``exercises/.generated.json``). Equal to the committed version is not enough:
    a learner may have committed their answers (issue 13).
    """
    if not dst.exists():
        return False
    text = dst.read_text(encoding="utf-8")
    return not (text == want or (recorded is not None and _sha(text) == recorded))


def build(solutions: str | Path = "solutions", exercises: str | Path = "exercises",
          force: bool = False, kept: list | None = None) -> list[Path]:
    """Write every exercise notebook; returns the paths written.

    A notebook the learner has edited is never overwritten (its path is added
    to ``kept``) unless ``force`` is true.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise FileNotFoundError(f"no solutions folder at {solutions.resolve()}; run from the repo root")
    exercises.mkdir(parents=True, exist_ok=True)
    old, new = _manifest(exercises), {}
    written = []
    for src, dst in _pairs(solutions, exercises):
        want = render(strip_solutions(nbformat.read(str(src), as_version=4), src.name))
        new[dst.name] = _sha(want)
        if not force and edited_by_learner(dst, want, old.get(dst.name)):
            if kept is not None:
                kept.append(dst)
            continue
        if not dst.exists() or dst.read_text(encoding="utf-8") != want:
            dst.write_text(want, encoding="utf-8")
        written.append(dst)
    (exercises / MANIFEST).write_text(json.dumps(new, indent=1, sort_keys=True) + "\n",
                                      encoding="utf-8")
    return written


def check(solutions: str | Path = "solutions", exercises: str | Path = "exercises") -> list[str]:
    """Problems found: exercises missing, stale, or without a solution.

    A learner's answers in an exercise notebook are not a problem: a notebook
    that differs from the generator is fine as long as the committed version
    (``git show HEAD:...``) is what the generator writes. Where there is no git,
    the hashes in ``exercises/.generated.json`` say whether ``solutions/`` changed
    since the last build.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    problems, recorded = [], _manifest(exercises)
    for src, dst in _pairs(solutions, exercises):
        want = render(strip_solutions(nbformat.read(str(src), as_version=4), src.name))
        if not dst.exists():
            problems.append(f"{dst} is missing")
            continue
        if recorded.get(dst.name) != _sha(want):
            problems.append(f"{dst} is stale: {src} changed since the last build")
            continue
        if dst.read_text(encoding="utf-8") != want:
            head = committed(dst)
            if head is not None and head != want and not answered(head, want):
                problems.append(f"{dst} as committed differs from what {src} generates")
    names = {p.name for p in solutions.glob("[0-9][0-9]_*.ipynb")}
    for extra in sorted(exercises.glob("[0-9][0-9]_*.ipynb")):
        if extra.name not in names:
            problems.append(f"{extra} has no solution notebook {solutions / extra.name}")
    return problems
