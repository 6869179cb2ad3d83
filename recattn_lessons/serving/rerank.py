"""Re-ranking a model's candidates for diversity or calibration (lesson 09).

A model scores items one at a time; a list is more than its items. Both re-rankers take
each user's ``C`` best candidates with the model's scores and build a ``k``-item list
greedily, one slot at a time, trading the model's relevance for a property of the list:

- :func:`mmr_rerank`        Maximal Marginal Relevance (Carbonell & Goldstein, 1998):
  diversity, each pick penalised by its similarity to what is already in the list;
- :func:`calibrated_rerank` Steck (2018): the list's genre mix close to the user's history.

Relevance is the model's score min-max scaled per user over the candidates, to ``[0, 1]``:
the trade-off weight then means the same for every user and every model (raw logits have no
fixed scale). ``lam = 1`` (MMR) or ``lam = 0`` (calibrated) keeps the model's order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..metrics.beyond import jaccard_similarity as _jaccard

__all__ = ["mmr_rerank", "mmr_select", "calibrated_rerank", "jaccard_similarity", "relevance"]


def _check(items: Tensor, scores: Tensor, item_features: Tensor, k: int) -> None:
    if items.dim() != 2 or items.shape != scores.shape:
        raise ValueError(f"items and scores must both be (U, C); got {tuple(items.shape)} and {tuple(scores.shape)}")
    if not 1 <= k <= items.shape[1]:
        raise ValueError(f"k must lie in 1..C={items.shape[1]} (the candidates per user), got {k}")
    if item_features.dim() != 2 or int(items.max()) >= item_features.shape[0] or int(items.min()) < 1:
        raise ValueError(f"items must be ids 1..{item_features.shape[0] - 1} and item_features an "
                         f"(n_items + 1, F) matrix; got ids {int(items.min())}..{int(items.max())}, "
                         f"features {tuple(item_features.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores hold inf or NaN: pass the model's finite scores of real candidates")


def relevance(scores: Tensor) -> Tensor:
    """``(U, C)`` scores min-max scaled per row to ``[0, 1]`` (a constant row becomes all 1)."""
    lo = scores.min(dim=1, keepdim=True).values
    span = scores.max(dim=1, keepdim=True).values - lo
    return torch.where(span > 0, (scores - lo) / span.clamp_min(1e-12), torch.ones_like(scores))


def jaccard_similarity(items: Tensor, item_features: Tensor) -> Tensor:
    """``(U, C, C)`` float32 Jaccard similarity of the candidates' feature sets (two empty
    sets: 1): :func:`recattn_lessons.metrics.beyond.jaccard_similarity`, as MMR uses it."""
    return _jaccard(items, item_features, torch.float32)


def mmr_select(rel: Tensor, sim: Tensor, k: int, lam: float) -> Tensor:
    """``(U, k)`` candidate *positions* picked greedily by MMR (exercise 25's reference).

    next = argmax_{i not in S} [ lam * rel[i] - (1 - lam) * max_{j in S} sim[i, j] ]

    ``rel`` ``(U, C)`` relevance, ``sim`` ``(U, C, C)`` similarities; the max over an empty
    ``S`` is 0 and ties go to the lower position.
    """
    U, C = rel.shape
    rows = torch.arange(U)
    taken = torch.zeros(U, C, dtype=torch.bool)
    max_sim = torch.zeros_like(rel)  # (U, C) similarity to the closest pick so far
    picks = []
    for _ in range(k):
        gain = (lam * rel - (1 - lam) * max_sim).masked_fill(taken, float("-inf"))  # (U, C)
        best = gain.argmax(dim=1)  # (U,) first maximum
        picks.append(best)
        taken[rows, best] = True
        max_sim = torch.maximum(max_sim, sim[rows, best].to(rel.dtype))  # (U, C)
    return torch.stack(picks, dim=1)


def mmr_rerank(items: Tensor, scores: Tensor, item_features: Tensor, k: int = 10,
               lam: float = 0.7) -> Tensor:
    """``(U, k)`` lists chosen by Maximal Marginal Relevance (:func:`mmr_select`).

    ``rel`` is the scaled score (:func:`relevance`), ``sim`` the Jaccard similarity of
    genre sets. ``items``/``scores`` are ``(U, C)`` candidates (any order).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1] (1 = the model's order), got {lam}")
    _check(items, scores, item_features, k)
    rel = relevance(scores.to(torch.float32))  # (U, C)
    sim = jaccard_similarity(items, item_features)  # (U, C, C) float32
    return items.gather(1, mmr_select(rel, sim, k, lam))


def _genre_weights(item_features: Tensor) -> Tensor:
    """``(n_items + 1, G)`` w(g|i) = 1/|genres(i)| on item i's genres (Steck's p(g|i))."""
    f = (item_features > 0).to(torch.float64)
    return f / f.sum(-1, keepdim=True).clamp_min(1)


def calibrated_rerank(items: Tensor, scores: Tensor, histories: list[Tensor], item_features: Tensor,
                      k: int = 10, lam: float = 0.5, alpha: float = 0.01) -> Tensor:
    """``(U, k)`` lists chosen greedily for relevance and calibration (Steck, 2018).

    next = argmax_{i not in S} [ (1 - lam) * sum_{j in S+i} rel(j) - lam * KL(p_u || q~(S+i)) ]

    ``p_u`` the genre distribution of the user's history, ``q~`` the list's, smoothed by
    ``alpha`` towards ``p_u`` (the definitions of
    :func:`~recattn_lessons.metrics.genre_calibration`, which measures the result).
    ``histories``: one 1-D id tensor per user. ``lam = 0`` keeps the model's order. The sum
    over the items already in ``S`` is the same for every candidate of a step, so the greedy
    argmax only needs ``(1 - lam) * rel(i) - lam * KL``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1] (0 = the model's order), got {lam}")
    _check(items, scores, item_features, k)
    if len(histories) != items.shape[0]:
        raise ValueError(f"histories has {len(histories)} users but items has {items.shape[0]} rows")
    w = _genre_weights(item_features)  # (N+1, G)
    p = torch.stack([w[h[h > 0].long()].sum(0) for h in histories])  # (U, G)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    rel = relevance(scores.to(torch.float64))  # (U, C)
    cand = w[items]  # (U, C, G)
    U, C = items.shape
    rows = torch.arange(U)
    taken = torch.zeros(U, C, dtype=torch.bool)
    mass = torch.zeros_like(p)  # (U, G) sum of w(g|j) over the picks
    picks = []
    for n in range(1, k + 1):
        q = (mass[:, None, :] + cand) / n  # (U, C, G) the list's genres if candidate i is added
        q = (1 - alpha) * q + alpha * p[:, None, :]
        kl = torch.where(p[:, None, :] > 0, p[:, None, :] * torch.log(p[:, None, :] / q),
                         torch.zeros_like(q)).sum(-1)  # (U, C)
        gain = ((1 - lam) * rel - lam * kl).masked_fill(taken, float("-inf"))  # (U, C)
        best = gain.argmax(dim=1)  # (U,)
        picks.append(best)
        taken[rows, best] = True
        mass = mass + cand[rows, best]
    return items.gather(1, torch.stack(picks, dim=1))
