"""Run a learner's exercise notebook and collect its ``check(...)`` verdicts.

Introduced with the interview exercises; used by
``python -m recattn_lessons.grading list`` and by the tests. Each notebook
runs in a fresh Python subprocess (with a time limit), so a learner's
infinite loop or crash cannot take the listing down.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from recattn_lessons.grading.core import CheckResult

__all__ = ["run_notebook", "notebook_status", "execute_cells"]


def _source(cell) -> str:
    # IPython magics and shell escapes are not Python; skip those lines.
    lines = cell.source.splitlines()
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)


def execute_cells(path: str | Path) -> tuple[dict, list[CheckResult], list[str]]:
    """Execute a notebook's code cells in one namespace, in this process.

    Returns the namespace, every CheckResult that ``check`` produced, and one
    line per cell that raised. ``check`` is wrapped after each cell so the
    notebook's own ``from recattn_lessons.grading import check`` is recorded.
    """
    from recattn_lessons import grading

    results: list[CheckResult] = []

    def recording_check(exercise_id, fn):
        res = grading.check(exercise_id, fn)
        results.append(res)
        return res

    nb = nbformat.read(str(path), as_version=4)
    ns: dict = {"__name__": "__main__"}
    errors = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(_source(cell), f"<cell {i}>", "exec"), ns)
        except Exception as exc:  # a stub raising NotImplementedError, or a bug
            errors.append(f"cell {i}: {type(exc).__name__}: {exc}")
        if ns.get("check") is grading.check:
            ns["check"] = recording_check
    return ns, results, errors


def notebook_status(results: list[CheckResult], errors: list[str]) -> str:
    """passed / failed / not attempted for a whole notebook."""
    if not results:
        return "failed" if errors else "no checks"
    if all(not r.attempted for r in results):
        return "not attempted"
    return "passed" if all(r.passed for r in results) else "failed"


def _child(path: str) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    _, results, errors = execute_cells(path)
    json.dump({"results": [[r.exercise_id, r.passed, r.attempted, r.message] for r in results],
               "errors": errors}, sys.stdout)


def run_notebook(path: str | Path, timeout: float = 120.0) -> tuple[str, list[CheckResult]]:
    """Run one notebook in a subprocess; returns (status, check results)."""
    cmd = [sys.executable, "-c", "import sys; from recattn_lessons.grading.runner "
           "import _child; _child(sys.argv[1])", str(path)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=Path(path).parent, env=env)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return "failed", [CheckResult(False, f"timed out after {timeout:.0f} s")]
    except (json.JSONDecodeError, IndexError):
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return "failed", [CheckResult(False, f"the notebook could not run: {tail[0]}")]
    results = [CheckResult(p, m, i, a) for i, p, a, m in data["results"]]
    return notebook_status(results, data["errors"]), results
