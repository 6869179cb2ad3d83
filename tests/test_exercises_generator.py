"""The exercise generator: exercises/ is exactly what solutions/ generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recattn_lessons.exercises import SAFE_REBUILD, STUB, build, check, strip_solutions

ROOT = Path(__file__).resolve().parents[1]


def test_exercises_folder_matches_generator():
    """Green on a clone where a learner solved exercises: their edited notebooks are
    compared through the committed version, and the advice never erases work."""
    problems = check(ROOT / "solutions", ROOT / "exercises")
    assert problems == [], "\n".join(problems) + f"\nto regenerate: {SAFE_REBUILD}"
    assert "--force" not in SAFE_REBUILD


def test_every_solution_has_an_exercise_and_answer_regions():
    sols = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert len(sols) >= 15
    for sol in sols:
        text = sol.read_text(encoding="utf-8")
        assert "### BEGIN SOLUTION" in text, sol.name
        assert (ROOT / "exercises" / sol.name).exists(), sol.name


def _toy():
    code = new_code_cell("def f(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return x + 1\n"
                         "    ### END SOLUTION\n\nprint(f)")
    code.outputs = [nbformat.v4.new_output("stream", text="hi")]
    code.execution_count = 3
    only = new_markdown_cell("the answer explained")
    only.metadata["tags"] = ["solution-only"]
    answer = new_markdown_cell("Q?\n<!-- ### BEGIN SOLUTION -->\nsecret\n<!-- ### END SOLUTION -->")
    return new_notebook(cells=[code, only, answer])


def test_strip_solutions_replaces_regions_and_strips_outputs():
    nb = strip_solutions(_toy())
    code, answer = nb.cells
    assert code.source == f"def f(x):\n    \"\"\"doc\"\"\"\n    {STUB}\n\nprint(f)"
    assert code.outputs == [] and code.execution_count is None
    assert "secret" not in answer.source and "Write your answer here" in answer.source
    ns: dict = {}
    exec(code.source.replace("print(f)", ""), ns)
    with pytest.raises(NotImplementedError):
        ns["f"](1)


@pytest.mark.parametrize("src, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
])
def test_malformed_regions_give_clear_errors(src, problem):
    with pytest.raises(ValueError, match=problem) as err:
        strip_solutions(new_notebook(cells=[new_code_cell(src)]), "toy.ipynb")
    assert "toy.ipynb, cell 0" in str(err.value)


def test_check_reports_stale_missing_and_orphan(tmp_path):
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    nbformat.write(_toy(), str(sols / "01_toy.ipynb"))
    assert check(sols, exs) == [f"{exs / '01_toy.ipynb'} is missing"]
    build(sols, exs)
    assert check(sols, exs) == []
    nb = _toy()
    nb.cells[0].source = nb.cells[0].source.replace("print", "pront")
    nbformat.write(nb, str(sols / "01_toy.ipynb"))  # solution changed, no rebuild
    nbformat.write(_toy(), str(exs / "02_orphan.ipynb"))
    problems = check(sols, exs)
    assert any("stale" in p for p in problems) and any("no solution" in p for p in problems)
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.exercises", "check",
                          "--solutions", str(sols), "--exercises", str(exs)],
                         capture_output=True, text=True)
    assert cli.returncode == 1 and "never overwrites a notebook you have edited" in cli.stderr
    assert "--force" not in cli.stderr


def _solve(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(STUB.replace('"', '\\"'),
                                                             "return x + 1  # my answer"),
                    encoding="utf-8")


def test_build_never_overwrites_a_learners_answers(tmp_path):
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    nbformat.write(_toy(), str(sols / "01_toy.ipynb"))
    build(sols, exs)
    _solve(exs / "01_toy.ipynb")
    assert "my answer" in (exs / "01_toy.ipynb").read_text()
    assert check(sols, exs) == []  # solved work is not a sync problem
    kept: list = []
    build(sols, exs, kept=kept)
    assert kept == [exs / "01_toy.ipynb"] and "my answer" in (exs / "01_toy.ipynb").read_text()
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.exercises", "build",
                          "--solutions", str(sols), "--exercises", str(exs)],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "kept your edited" in cli.stdout
    assert "my answer" in (exs / "01_toy.ipynb").read_text()
    build(sols, exs, force=True)
    assert "my answer" not in (exs / "01_toy.ipynb").read_text()


def test_build_keeps_answers_the_learner_committed(tmp_path):
    """Issue 13: an answered exercise that git has committed is still the learner's work;
    only the generator's own output (the fresh stub) counts as untouched."""
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    nbformat.write(_toy(), str(sols / "01_toy.ipynb"))
    build(sols, exs)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    _solve(exs / "01_toy.ipynb")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "learner commits the answer"], check=True)
    kept: list = []
    build(sols, exs, kept=kept)
    assert kept == [exs / "01_toy.ipynb"] and "my answer" in (exs / "01_toy.ipynb").read_text()
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.exercises", "build",
                          "--solutions", str(sols), "--exercises", str(exs)],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "kept your edited" in cli.stdout
    assert "my answer" in (exs / "01_toy.ipynb").read_text()
    nb = _toy()  # the solutions change: the committed answer still survives
    nb.cells[0].source = nb.cells[0].source.replace("print(f)", "print(f, 1)")
    nbformat.write(nb, str(sols / "01_toy.ipynb"))
    build(sols, exs)
    assert "my answer" in (exs / "01_toy.ipynb").read_text()


def test_build_regenerates_an_untouched_stub_after_the_solutions_change(tmp_path):
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    nbformat.write(_toy(), str(sols / "01_toy.ipynb"))
    build(sols, exs)
    nb = _toy()
    nb.cells[0].source = nb.cells[0].source.replace("print(f)", "print(f, 1)")
    nbformat.write(nb, str(sols / "01_toy.ipynb"))
    kept: list = []
    assert build(sols, exs, kept=kept) == [exs / "01_toy.ipynb"] and kept == []
    assert "print(f, 1)" in (exs / "01_toy.ipynb").read_text()


def test_a_solved_clone_stays_green(tmp_path):
    """In a git clone, an answered exercise differs from the generator but the
    committed one does not: check() is clean; a committed drift is reported."""
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    nbformat.write(_toy(), str(sols / "01_toy.ipynb"))
    build(sols, exs)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    _solve(exs / "01_toy.ipynb")
    assert check(sols, exs) == []
    subprocess.run(git + ["commit", "-qam", "learner commits the answer"], check=True)
    assert check(sols, exs) == []  # committed answers are still the learner's work
    build(sols, exs, force=True)
    ex = exs / "01_toy.ipynb"
    ex.write_text(ex.read_text().replace("print", "pront"))  # a hand edit, stubs kept
    subprocess.run(git + ["commit", "-qam", "maintainer edits the generated file"], check=True)
    problems = check(sols, exs)
    assert len(problems) == 1 and "as committed differs" in problems[0]
