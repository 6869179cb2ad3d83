"""Run a learner's exercise notebook and collect its ``check(...)`` verdicts.

Introduced with the interview exercises; used by
``python -m recattn_lessons.grading list`` and by the tests. The notebooks
run in a fresh Python subprocess, each with a time limit, so a learner's
infinite loop or crash cannot take the listing down.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import nbformat

from recattn_lessons.grading.core import CheckResult

__all__ = ["run_notebook", "run_notebooks", "notebook_status", "execute_cells"]


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

    def recording_check(exercise_id, fn, **kw):  # e.g. timeout=60, as check() takes
        res = grading.check(exercise_id, fn, **kw)
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
    if any(r.attempted and not r.passed for r in results):
        return "failed"
    return "passed" if all(r.passed for r in results) else "not attempted"


class _Timeout(BaseException):  # not an Exception: cell-level handlers must not swallow it
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def _child(paths: list[str], timeout: int) -> None:
    """Run each notebook in turn; print one JSON line per notebook."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    for path in paths:
        if use_alarm:
            signal.alarm(timeout)
        try:
            _, results, errors = execute_cells(path)
            row = {"results": [[r.exercise_id, r.passed, r.attempted, r.message] for r in results],
                   "errors": errors}
        except _Timeout:
            row = {"results": [["", False, True, f"timed out after {timeout} s"]], "errors": ["timeout"]}
        finally:
            if use_alarm:
                signal.alarm(0)
        print(json.dumps(row), flush=True)


def run_notebooks(paths: list[str | Path], timeout: int = 120) -> Iterator[tuple[str, list[CheckResult]]]:
    """Run notebooks in one fresh subprocess (torch is imported once).

    Yields (status, check results) per notebook, in order, as each finishes;
    a notebook running longer than ``timeout`` seconds is stopped and failed.
    """
    paths = [str(Path(p).resolve()) for p in paths]
    cmd = [sys.executable, "-c", "import sys; from recattn_lessons.grading.runner import _child; "
           "_child(sys.argv[2:], int(sys.argv[1]))", str(int(timeout)), *paths]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(timeout * len(paths) + 60, proc.kill)  # a hang inside C code
    watchdog.start()
    try:
        done = 0
        for line in proc.stdout:
            if not line.startswith("{"):
                continue  # stray output from learner code at import time
            data = json.loads(line)
            results = [CheckResult(p, m, i, a) for i, p, a, m in data["results"]]
            done += 1
            yield notebook_status(results, data["errors"]), results
        proc.wait()
        if done < len(paths):
            tail = (proc.stderr.read() or "").strip().splitlines()[-1:] or ["no output"]
            for _ in range(len(paths) - done):
                yield "failed", [CheckResult(False, f"the notebook could not run: {tail[0]}")]
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()


def run_notebook(path: str | Path, timeout: int = 120) -> tuple[str, list[CheckResult]]:
    """Run one notebook in a subprocess; returns (status, check results)."""
    return next(iter(run_notebooks([path], timeout)))
