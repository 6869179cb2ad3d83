"""From a score row to ``[(item_id, score), ...]``: checks and top-k (issue 9).

Shared by :class:`~recattn_lessons.serving.Recommender` (one request),
its batched path (:mod:`.batcher`) and KV-cached sessions
(:mod:`.session`), so all three rank exactly alike:

- :func:`check_ids` turns a history into a list of ints ``1..n_items``
  or raises a ValueError naming the bad ids;
- :func:`check_k` accepts integers ``1..n_items``;
- :func:`top_items` masks padding (and seen items), then returns the
  ``k`` best pairs, best first, **ties to the lower id**;
  :func:`top_items_many` does the same for a ``(B, N + 1)`` batch.

Neither sorts the whole catalogue: ``torch.topk`` picks the k best, which
are put in id order and then sorted stably by score (ties: lower id
first). If a tie straddles the k-th place, topk's choice among the tied
items is arbitrary, so that row keeps every item scoring at least the
k-th score and sorts those. Same answer as a stable full sort (tested),
about 20x less work on 9,066 items.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

__all__ = ["check_ids", "check_k", "top_items", "top_items_many"]


def check_ids(history, n_items: int) -> list[int]:
    """The history as a list of ints, or a ValueError naming the bad ids."""
    if isinstance(history, (str, bytes)) or not hasattr(history, "__iter__"):
        raise ValueError(f"history must be a list of item ids, got {type(history).__name__}")
    items = list(history.tolist() if isinstance(history, Tensor) else history)
    if all(type(x) is int for x in items) and (not items or 1 <= min(items)
                                                and max(items) <= n_items):
        return items  # the usual case, without the slow isinstance checks below
    bad = [x for x in items if isinstance(x, bool) or not isinstance(x, numbers.Integral)
           or not 1 <= x <= n_items]
    if bad:
        shown = ", ".join(repr(x) for x in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise ValueError(f"unknown item ids [{shown}]: valid ids are integers 1..{n_items} "
                         "(internal ids; 0 is padding)")
    return [int(x) for x in items]


def check_k(k, n_items: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an integer in 1..{n_items} (n_items), got {k!r}")
    return int(k)


def top_items(scores: Tensor, history: list[int], k: int,
              exclude_seen: bool = True) -> list[tuple[int, float]]:
    """The ``k`` best ``(item_id, score)`` of a ``(N + 1,)`` row, best first.

    ``scores`` is modified in place (padding and, with ``exclude_seen``,
    the history's items set to -inf). Fewer than ``k`` pairs come back
    only when exclusion leaves fewer items.
    """
    return top_items_many(scores[None], [history], [k], [exclude_seen])[0]


def top_items_many(scores: Tensor, histories: list[list[int]], ks: list[int],
                   exclude_seen: list[bool]) -> list[list[tuple[int, float]]]:
    """:func:`top_items` for every row of ``(B, N + 1)`` scores at once."""
    B, n_items = scores.shape[0], scores.shape[1] - 1
    scores[:, 0] = float("-inf")  # padding is never recommended
    rows = [r for r in range(B) if exclude_seen[r] and histories[r]]
    if rows:
        r_ids = [r for r in rows for _ in histories[r]]
        scores[r_ids, [i for r in rows for i in histories[r]]] = float("-inf")
    kk = [min(int(k), n_items - (len(set(h)) if ex else 0))
          for h, k, ex in zip(histories, ks, exclude_seen)]
    if max(kk) <= 0:
        return [[] for _ in range(B)]
    idx = torch.topk(scores, max(kk), dim=1, sorted=False).indices.sort(dim=1).values  # (B, K)
    vals = scores.gather(1, idx)  # (B, K) ids ascending
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices  # ties: lower id
    idx, vals = idx.gather(1, order), vals.gather(1, order)  # (B, K) best first
    kth = vals[torch.arange(B), torch.tensor(kk).clamp(min=1) - 1]  # (B,)
    straddles = ((scores >= kth[:, None]).sum(1) > torch.tensor(kk)).tolist()  # (B,)
    ids, values, out = idx.tolist(), vals.tolist(), []
    for r, k in enumerate(kk):
        if k > 0 and straddles[r]:  # a tie across the k-th place: keep all, lowest ids first
            keep = torch.nonzero(scores[r] >= kth[r]).squeeze(1)  # (m,) ascending ids
            pick = keep[torch.sort(scores[r, keep], descending=True, stable=True).indices[:k]]
            ids[r], values[r] = pick.tolist(), scores[r, pick].tolist()
        out.append(list(zip(ids[r][:max(k, 0)], values[r][:max(k, 0)])))
    return out
