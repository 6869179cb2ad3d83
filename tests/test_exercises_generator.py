"""The exercise generator: exercises/ is exactly what solutions/ generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recattn_lessons.exercises import STUB, build, check, strip_solutions

ROOT = Path(__file__).resolve().parents[1]


def test_exercises_folder_matches_generator():
    problems = check(ROOT / "solutions", ROOT / "exercises")
    assert problems == [], "run: python -m recattn_lessons.exercises build\n" + "\n".join(problems)


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
    (exs / "01_toy.ipynb").write_text((exs / "01_toy.ipynb").read_text().replace("print", "pront"))
    nbformat.write(_toy(), str(exs / "02_orphan.ipynb"))
    problems = check(sols, exs)
    assert any("differs" in p for p in problems) and any("no solution" in p for p in problems)
    cli = subprocess.run([sys.executable, "-m", "recattn_lessons.exercises", "check",
                          "--solutions", str(sols), "--exercises", str(exs)],
                         capture_output=True, text=True)
    assert cli.returncode == 1 and "exercises build" in cli.stderr
