"""A feedback loop, simulated: a recommender retrained on what it recommended (lesson 09).

A deployed recommender learns from clicks on the lists it showed, so its next version is
trained on data its last version chose. Does that narrow what anyone gets to see? We cannot
ask real users, so we simulate them:

1. **Ground truth.** A model trained once on the logged histories (``truth_model``) gives
   each user ``u`` a score ``s_ui`` for every item. User ``u`` accepts a shown item ``i``
   with probability

       p_ui = accept_max * exp((s_ui - max_j s_uj) / temperature)

   (a softmax normalised by its largest entry: the user's favourite item is accepted with
   ``accept_max``, the others in proportion to their softmax weight). Preferences are fixed
   by the logged history; they do not drift.
2. **Rounds.** In round ``r = 1..rounds`` the recommender (``model``, ``epochs`` epochs with
   :func:`recattn_lessons.train.run`, same seed every round) is trained from scratch on the
   logged histories plus every item users accepted in rounds ``1..r-1`` (appended in the
   order accepted). It shows every user ``k`` unseen items: its top ``k - m``, and
   ``m = round(explore * k)`` items drawn uniformly from the unseen items not already in
   the list (exploration). Each shown item is accepted independently with ``p_ui``.
3. **What drifts.** Per round: catalogue coverage and Gini index of exposure of the shown
   lists (:mod:`recattn_lessons.metrics.beyond`), the mean logged popularity and novelty of
   the shown items, the Gini index of the training data's item counts, and the acceptance
   rate (realised and expected).

NOTE: the loop holds out each user's last two items for its validation and test, so an
item accepted in round ``r`` may first be trained on in round ``r + 1``. Everything is
seeded (``seed``): the same config gives the same records.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from .. import metrics
from ..data.feedback import keep_popular_items
from ..data.movielens import Interactions, load_movielens
from ..data.splits import left_pad
from ..train.config import TrainConfig
from ..train.loop import run

__all__ = ["LoopConfig", "acceptance", "simulate", "compare", "unseen_scores"]


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 8  # retrain-and-show rounds
    k: int = 10  # items shown to every user per round
    explore: float = 0.0  # share of the k slots filled uniformly at random from unseen items
    model: str = "meanpool"  # the recommender retrained every round
    epochs: int = 4  # its epochs per round (fixed: no early stopping)
    truth_model: str = "sasrec"  # the ground truth, trained once
    truth_epochs: int = 12  # its epochs
    d_model: int = 32  # embedding size of both
    batch_size: int = 64  # training windows per batch
    accept_max: float = 0.5  # acceptance probability of a user's favourite item
    temperature: float = 1.0  # of the ground truth's softmax
    min_item_count: int = 20  # MovieLens: keep items with this many ratings (1,303 items)
    seed: int = 0  # training, exploration and acceptance draws
    # of both models; float64: CPU-independent digits, as TrainConfig.quick
    dtype: Literal["float32", "float64"] = "float64"

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.k < 1 or self.epochs < 1 or self.truth_epochs < 1:
            raise ValueError("rounds, k, epochs and truth_epochs must be >= 1, got "
                             f"{self.rounds}, {self.k}, {self.epochs}, {self.truth_epochs}")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"explore must lie in [0, 1], got {self.explore}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if not 0.0 < self.accept_max <= 1.0 or self.temperature <= 0:
            raise ValueError(f"need 0 < accept_max <= 1 and temperature > 0, got "
                             f"{self.accept_max}, {self.temperature}")

    @classmethod
    def quick(cls, **changes) -> "LoopConfig":
        """Lesson-sized: 453 items (50+ ratings), 6 rounds, 3 epochs a round."""
        return cls(**{**dict(rounds=6, epochs=3, truth_epochs=8, min_item_count=50), **changes})

    def to_dict(self) -> dict:
        return asdict(self)

    def train_config(self, model: str, epochs: int) -> TrainConfig:
        return TrainConfig.quick(model=model, epochs=epochs, min_epochs=epochs, seed=self.seed,
                                 d_model=self.d_model, batch_size=self.batch_size,
                                 dtype=self.dtype, progress=False,
                                 n_sampled=1)  # the sampled protocol is not read here


@torch.no_grad()
def unseen_scores(model, histories: list[Tensor], n_items: int, batch_size: int = 256) -> Tensor:
    """``(U, N + 1)`` float64 scores of every item after each user's whole history; the
    padding and the items in the history score ``-inf`` (they are never shown)."""
    model.eval()
    seen = metrics.CSRHistory.from_sequences(histories, n_items)
    out = []
    for lo in range(0, len(histories), batch_size):
        hist = left_pad(histories[lo:lo + batch_size], model.cfg.maxlen)  # (b, L)
        s = model.score(hist).double()  # (b, N+1)
        out.append(s.masked_fill(seen.mask(lo, lo + batch_size), float("-inf")))
    return torch.cat(out)


def acceptance(cfg: LoopConfig, data: Interactions) -> Tensor:
    """``(U, N + 1)`` probability that user ``u`` accepts item ``i`` (column 0: 0)."""
    truth = run(cfg.train_config(cfg.truth_model, cfg.truth_epochs), data).model
    s = unseen_scores(truth, data.sequences, data.n_items)  # (U, N+1)
    p = cfg.accept_max * torch.exp((s - s.max(1, keepdim=True).values) / cfg.temperature)
    return p  # (U, N+1), seen items and padding exp(-inf) = 0


def _explore(top: Tensor, blocked: Tensor, m: int, gen: torch.Generator) -> Tensor:
    """``(U, m)`` items drawn uniformly, without replacement, from each user's unseen items
    (``blocked`` ``(U, N + 1)`` False) that ``top`` ``(U, k - m)`` does not already show."""
    blocked = blocked.scatter(1, top, True)  # (U, N+1)
    noise = torch.rand(blocked.shape, generator=gen, dtype=torch.float64)  # (U, N+1)
    return noise.masked_fill(blocked, -1.0).topk(m, dim=1).indices  # (U, m)


def simulate(cfg: LoopConfig, data: Interactions | None = None,
             accept: Tensor | None = None) -> list[dict]:
    """One feedback loop; returns one record (a dict of floats) per round.

    ``data``: the logged interactions (default: MovieLens, items with ``min_item_count``+
    ratings). ``accept``: a precomputed :func:`acceptance` matrix (``compare`` shares one).
    """
    if data is None:
        data = keep_popular_items(load_movielens(), cfg.min_item_count)
    if accept is None:
        accept = acceptance(cfg, data)
    n, U = data.n_items, data.n_users
    if accept.shape != (U, n + 1):
        raise ValueError(f"accept must be (n_users, n_items + 1) = {(U, n + 1)}, "
                         f"got {tuple(accept.shape)}")
    m = round(cfg.explore * cfg.k)
    popularity = torch.bincount(torch.cat(data.sequences), minlength=n + 1)  # (N+1,) logged counts
    gen = torch.Generator().manual_seed(cfg.seed)
    histories = [s.clone() for s in data.sequences]
    records = []
    for r in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        model = run(cfg.train_config(cfg.model, cfg.epochs), replace(data, sequences=histories)).model
        scores = unseen_scores(model, histories, n)  # (U, N+1)
        if int((~scores.isinf()).sum(1).min()) < cfg.k:
            raise ValueError(f"round {r}: a user has fewer than k={cfg.k} unseen items left; "
                             "lower k or rounds")
        top = scores.topk(cfg.k - m, dim=1).indices  # (U, k - m) the model's picks
        shown = torch.cat([top, _explore(top, scores.isinf(), m, gen)], 1) if m else top  # (U, k)
        p = accept.gather(1, shown)  # (U, k)
        took = torch.rand(p.shape, generator=gen, dtype=torch.float64) < p  # (U, k)
        flat = torch.cat(histories)
        records.append({
            "round": r,
            "coverage": metrics.catalog_coverage(shown, n),
            "gini": metrics.gini_index(shown, n),
            "mean_popularity": float(popularity[shown].double().mean()),
            "novelty": metrics.novelty(shown, popularity),
            "train_gini": metrics.gini_index(flat[None], n),  # concentration of the training data
            "accept_rate": float(took.double().mean()),
            "expected_accept": float(p.mean()),
            "n_accepted": int(took.sum()),
            "seconds": round(time.perf_counter() - t0, 2),
        })
        histories = [torch.cat([h, s[t]]) for h, s, t in zip(histories, shown, took)]
    return records


def compare(cfg: LoopConfig, explore: tuple[float, ...] = (0.0, 0.1),
            data: Interactions | None = None) -> dict[float, list[dict]]:
    """``{eps: simulate(cfg with explore=eps)}``, one ground truth for all of them."""
    if data is None:
        data = keep_popular_items(load_movielens(), cfg.min_item_count)
    accept = acceptance(cfg, data)
    return {eps: simulate(replace(cfg, explore=eps), data, accept) for eps in explore}
