"""Every solution passes its check; every generated exercise is "not attempted";
the terminal list command reports both; each check is fast."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recattn_lessons.exercises import render, strip_solutions
from recattn_lessons.grading import EXERCISES, check
from recattn_lessons.grading.runner import execute_cells, notebook_status

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
GRADED = [p for p in SOLUTIONS if not p.name.startswith("00_")]


@pytest.fixture(scope="module")
def solved():
    """Run every solution notebook's cells once; map notebook name -> (namespace, results)."""
    out, threads = {}, torch.get_num_threads()
    try:
        for path in GRADED:
            ns, results, errors = execute_cells(path)
            assert errors == [], f"{path.name}: {errors}"
            out[path.name] = (ns, results)
    finally:  # some demos pin one thread; do not leak that into other tests
        torch.set_num_threads(threads)
    return out


def test_every_exercise_id_has_a_notebook_with_its_check():
    stems = {p.stem for p in GRADED}
    for ex in EXERCISES.values():
        assert ex.notebook in stems, ex.id
        text = (ROOT / "solutions" / f"{ex.notebook}.ipynb").read_text(encoding="utf-8")
        assert f'check(\\"{ex.id}\\"' in text and f'hint(\\"{ex.id}\\"' in text, ex.id


def test_every_solution_passes_its_checks(solved):
    seen = set()
    for name, (_, results) in solved.items():
        assert results, f"{name} has no check cell"
        for r in results:
            assert r.passed, f"{name}: {r.message}"
            seen.add(r.exercise_id)
    assert seen == set(EXERCISES)


def test_each_check_takes_under_two_seconds(solved):
    """The learner's verdict must come back in under 2 s on a CPU."""
    import nbformat

    slow = {}
    for name, (ns, results) in solved.items():
        nb = nbformat.read(str(ROOT / "solutions" / name), as_version=4)
        calls = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("check(")]
        for call in calls:
            eid, fn_name = call[len('check("'):-1].split('", ')
            t0 = time.perf_counter()
            assert check(eid, ns[fn_name]).passed
            elapsed = time.perf_counter() - t0
            if elapsed > 2.0:
                slow[eid] = round(elapsed, 2)
    assert not slow, f"checks slower than 2 s: {slow}"


def _fresh_exercise(name: str) -> str:
    """The exercise notebook as the generator writes it (never the learner's working copy)."""
    import nbformat

    src = ROOT / "solutions" / name
    return render(strip_solutions(nbformat.read(str(src), as_version=4), name))


@pytest.mark.parametrize("src", GRADED, ids=lambda p: p.stem)
def test_generated_exercise_reports_not_attempted(src, tmp_path):
    """On the exercise rendered fresh from solutions/, not the learner's working copy in
    exercises/ (issue 13: solving an exercise must never turn `make test` red)."""
    path = tmp_path / src.name
    path.write_text(_fresh_exercise(src.name), encoding="utf-8")
    _, results, _ = execute_cells(path)
    assert results and all(r.status == "not attempted" for r in results), \
        [(r.exercise_id, r.message) for r in results]
    assert notebook_status(results, []) == "not attempted"


def test_list_command_shows_progress(tmp_path):
    work = tmp_path / "exercises"
    work.mkdir()
    (work / "01_stable_softmax.ipynb").write_text(_fresh_exercise("01_stable_softmax.ipynb"),
                                                  encoding="utf-8")
    shutil.copy(ROOT / "solutions" / "06_hit_rate_ndcg.ipynb", work)  # a solved copy
    broken = _fresh_exercise("16_bug_attention_scores.ipynb")
    stub = 'raise NotImplementedError(\\"Exercise: replace this line with your solution\\")'
    assert stub in broken
    (work / "16_bug_attention_scores.ipynb").write_text(
        broken.replace(stub, "return torch.bmm(input_seq, query_seq.transpose(1, 2))"),
        encoding="utf-8")
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.grading", "list", str(work)],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert any("01_stable_softmax" in ln and "not attempted" in ln for ln in lines)
    assert any("06_hit_rate_ndcg" in ln and "passed" in ln for ln in lines)
    assert any("16_bug_attention_scores" in ln and "failed" in ln for ln in lines)
    assert any("result transposed" in ln for ln in lines)  # the named bug is shown
    assert "1/3 exercises passed" in cli.stdout


def test_list_command_on_an_empty_folder_explains(tmp_path):
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.grading", "list", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "no exercise notebooks" in cli.stderr


def test_list_command_stops_a_runaway_notebook(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell("from recattn_lessons.grading import check"),
             new_code_cell("while True:\n    pass"),
             new_code_cell("check('softmax', lambda x, dim=-1: x.softmax(dim))")]
    nbformat.write(new_notebook(cells=cells), str(tmp_path / "01_loop.ipynb"))
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.grading", "list", str(tmp_path),
                          "--timeout", "2"], capture_output=True, text=True, timeout=120)
    assert "01_loop" in cli.stdout and "failed" in cli.stdout
    assert "timed out after 2 s" in cli.stdout
