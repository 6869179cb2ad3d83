"""A trained model behind one call: ``recommend(history, k)`` (issue 9).

:class:`Recommender` wraps any
:class:`~recattn_lessons.models.SequentialRecommender` for serving:

- ``history`` is a list of the course's **internal** item ids
  ``1..n_items``, oldest first (the ids of
  :class:`~recattn_lessons.data.Interactions`, not the dataset's raw ids);
- only the most recent ``maxlen`` items are read: they are left-padded
  into ``(1, maxlen)`` exactly as evaluation does
  (:func:`recattn_lessons.data.left_pad`), so a recommendation is the
  model's ``score`` row, sorted best first;
- an empty history gets the training popularity (scores = counts);
- items of the history are left out (``exclude_seen=True``), like the
  full-ranking protocol of lesson 05.

Lesson 07 adds two faster paths with the same answers:

- ``recommend_many(histories, k)`` scores many users in **one** batched
  forward pass (what the server's micro-batcher, :mod:`.batcher`, calls);
- ``session(history)`` keeps a key/value cache per block so each new
  event costs O(L) (:mod:`.session`; exact only for SASRec trained with
  ``positions="left"``, otherwise it recomputes and says so).

One lock (``rec.lock``) guards the model: ``score`` runs under
``torch.no_grad`` in eval mode (not ``inference_mode``: its tensors
refuse the in-place masking of :func:`.ranking.top_items`), and the lock
keeps concurrent server threads from sharing torch's intra-op thread
pool mid-call (and any model that keeps state between calls safe), at
the price of one forward pass at a time per process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .. import models
from ..data.movielens import Interactions
from ..data.splits import leave_one_out, left_pad
from .ranking import check_ids, check_k, top_items, top_items_many
from .session import Session

__all__ = ["Recommender", "popularity_counts"]


def popularity_counts(train_sequences: list[Tensor], n_items: int) -> Tensor:
    """``(N + 1,)`` float counts of every item in the training sequences."""
    if not train_sequences:
        return torch.zeros(n_items + 1)
    flat = torch.cat([s.long() for s in train_sequences])
    return torch.bincount(flat, minlength=n_items + 1).float()


class Recommender:
    """Top-k recommendations from a trained model (issue 9; lesson 07).

    ``Recommender(model, titles=None, popularity=None, n_items=None)``:
    ``titles[i]`` names item ``i`` (``titles[0]`` is the pad), popularity
    is a ``(N + 1,)`` tensor of training counts for empty histories
    (:func:`popularity_counts`; a Popularity model's own counts are used
    if none is given), ``n_items`` defaults to ``model.n_items``.
    See :meth:`from_run` and :meth:`from_result` for trained runs.
    """

    def __init__(self, model: models.SequentialRecommender, titles: list[str] | None = None,
                 popularity: Tensor | None = None, n_items: int | None = None,
                 maxlen: int | None = None, name: str | None = None) -> None:
        self.model = model.eval()
        self.n_items = int(model.n_items if n_items is None else n_items)
        if self.n_items != model.n_items:
            raise ValueError(f"n_items={self.n_items} but the model scores {model.n_items} items")
        cfg = getattr(model, "cfg", None)
        self.maxlen = int(maxlen or getattr(cfg, "maxlen", None) or 50)
        self.name = name or type(model).__name__.lower()
        if titles is not None and len(titles) != self.n_items + 1:
            raise ValueError(f"titles must have n_items + 1 = {self.n_items + 1} entries "
                             f"(titles[0] is the pad), got {len(titles)}")
        self.titles = titles
        if popularity is None and isinstance(model, models.Popularity):
            popularity = model.counts
        if popularity is not None and tuple(popularity.shape) != (self.n_items + 1,):
            raise ValueError(f"popularity must have shape ({self.n_items + 1},), "
                             f"got {tuple(popularity.shape)}")
        self.popularity = None if popularity is None else popularity.detach().float().cpu()
        self.lock = threading.Lock()
        self._device = next((p.device for p in model.parameters()), torch.device("cpu"))

    @classmethod
    def from_result(cls, result) -> "Recommender":
        """From what :func:`recattn_lessons.train.run` returns (in memory)."""
        n = result.data.n_items
        return cls(result.model, titles=result.data.titles, name=result.config.model,
                   popularity=popularity_counts(result.split.train, n),
                   maxlen=result.config.maxlen)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, data: Interactions | None = None,
                 device: str = "cpu") -> "Recommender":
        """Load what ``python -m recattn_lessons.train --out DIR`` wrote.

        Reads ``DIR/metrics.json`` (its ``config`` rebuilds the model),
        loads the run's dataset (or ``data``, for runs made with
        ``run(config, data=...)``), splits it as training did (training
        counts = popularity, titles) and loads the **best** weights from
        ``DIR/last.pt`` (what ``run`` restores at the end). Popularity
        runs have no checkpoint: their counts are refitted.
        """
        from ..train.config import TrainConfig
        from ..train.loop import build_model, load_dataset

        run_dir = Path(run_dir)
        path = run_dir / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"no metrics.json in {run_dir}: train with "
                                    f"python -m recattn_lessons.train --out {run_dir} "
                                    "(in the course folder: .venv/bin/python -m ...)")
        cfg = TrainConfig(**{**json.loads(path.read_text())["config"], "progress": False})
        data = load_dataset(cfg.dataset, cfg.tie_seed) if data is None else data
        split = leave_one_out(data)
        model = build_model(cfg, data)  # with the run's item features, if it had any
        model.fit_counts(split.train)
        if model.trainable:
            ck = run_dir / "last.pt"
            if not ck.exists():
                raise FileNotFoundError(f"no checkpoint {ck}: the run wrote no weights")
            state = torch.load(ck, map_location="cpu", weights_only=True)["best_model"]
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                raise ValueError(f"the weights in {ck} do not fit {cfg.model} on "
                                 f"{data.n_items} items (was the run trained on other data? "
                                 f"pass data=): {str(err).splitlines()[-1].strip()}") from err
        return cls(model.to(device), titles=data.titles, name=cfg.model, maxlen=cfg.maxlen,
                   popularity=popularity_counts(split.train, data.n_items))

    def title(self, item: int) -> str | None:
        return None if self.titles is None else self.titles[item]

    def scores(self, history: list[int]) -> Tensor:
        """``(N + 1,)`` fp32 scores after ``history`` (checked ids, oldest first)."""
        if not history:
            if self.popularity is None:
                raise ValueError("empty history and no popularity counts to fall back on; "
                                 "give Recommender(..., popularity=popularity_counts(...))")
            return self.popularity.clone()
        x = left_pad([torch.tensor(history[-self.maxlen:])], self.maxlen)  # (1, L)
        with self.lock, torch.no_grad():
            return self.model.score(x.to(self._device))[0].float().cpu()  # (N+1,)

    def recommend(self, history, k: int = 10, exclude_seen: bool = True) -> list[tuple[int, float]]:
        """The ``k`` best ``(item_id, score)`` pairs, best first.

        ``history``: internal item ids ``1..n_items``, oldest first; only
        the last ``maxlen`` are read, but all are excluded when
        ``exclude_seen``. Ties go to the lower id. Fewer than ``k`` pairs
        come back only when exclusion leaves fewer items. Raises
        ValueError for ids outside ``1..n_items`` (naming them) and for
        ``k`` outside ``1..n_items``.
        """
        k = check_k(k, self.n_items)
        items = check_ids(history, self.n_items)
        return top_items(self.scores(items), items, k, exclude_seen)

    def scores_many(self, histories: list[list[int]]) -> Tensor:
        """``(B, N + 1)`` fp32 scores of checked histories, one forward pass.

        Each non-empty history is left-padded to ``maxlen`` as in
        :meth:`scores`; empty ones get the popularity row. A row agrees
        with :meth:`scores` to float error (about 1e-6: BLAS blocks a
        batch differently from one row), not bit for bit.
        """
        out = torch.empty(len(histories), self.n_items + 1)
        real = [i for i, h in enumerate(histories) if h]
        for i, h in enumerate(histories):
            if not h:
                out[i] = self.scores([])  # popularity
        if real:
            x = left_pad([torch.tensor(histories[i][-self.maxlen:]) for i in real],
                         self.maxlen)  # (b, L)
            with self.lock, torch.no_grad():
                out[real] = self.model.score(x.to(self._device)).float().cpu()  # (b, N+1)
        return out

    def recommend_many(self, histories: Sequence, k: int | Sequence[int] = 10,
                       exclude_seen: bool | Sequence[bool] = True) -> list[list[tuple[int, float]]]:
        """:meth:`recommend` for many histories in one batched forward pass.

        ``k`` and ``exclude_seen`` are one value for all or one per
        history. Raises the ValueError of the first bad history or k.
        """
        B = len(histories)
        ks = [k] * B if isinstance(k, (int, bool)) or not isinstance(k, Sequence) else list(k)
        ex = [exclude_seen] * B if isinstance(exclude_seen, bool) else list(exclude_seen)
        if len(ks) != B or len(ex) != B:
            raise ValueError(f"{B} histories but {len(ks)} k values and {len(ex)} exclude_seen")
        ks = [check_k(x, self.n_items) for x in ks]
        return self.recommend_checked([check_ids(h, self.n_items) for h in histories], ks, ex)

    def recommend_checked(self, histories: list[list[int]], ks: list[int],
                          exclude_seen: list[bool]) -> list[list[tuple[int, float]]]:
        """:meth:`recommend_many` for histories and ks already checked
        (by :func:`.ranking.check_ids` / ``check_k``): the batcher's call."""
        return top_items_many(self.scores_many(histories), histories, ks, exclude_seen)

    def session(self, history=()) -> Session:
        """A running history with a KV cache: see :mod:`.session`."""
        return Session(self, history)
