"""environment.yml (conda) names every package pyproject.toml needs, so a conda
learner gets the same course as a pip one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name, where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_lists_every_runtime_and_dev_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = project["dependencies"] + project["optional-dependencies"]["dev"]
    listed = {_name(line.strip().lstrip("-").strip())
              for line in (ROOT / "environment.yml").read_text().splitlines()
              if line.strip().startswith("- ")}
    missing = [n for n in map(_name, needed) if CONDA_NAMES.get(n, n) not in listed]
    assert not missing, f"add to environment.yml: {missing}"
