"""Ranking metrics for next-item recommendation (lessons 04, 05 and the exercises).

Everything starts from ``ranks``: a ``(U,)`` tensor holding, for each user,
the 0-based rank of the held-out item among the candidates (0 = top).

Two protocols produce those ranks (lesson 05):

- **full ranking** (:func:`ranks_full`): the target competes with every
  item in the catalogue except padding (column 0) and the user's other
  history items;
- **sampled** (:func:`sample_negatives` + :func:`ranks_sampled`): the target
  competes with 100 random items the user never interacted with, the
  protocol of the SASRec paper (Kang & McAuley, 2018).

Ties are **pessimistic** everywhere: an item scoring exactly the target's
score ranks above it. A model that gives every item the same score therefore
gets the worst possible rank, as it should, instead of rank 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "hit_rate_at_k",
    "ndcg_at_k",
    "mrr",
    "seen_mask",
    "ranks_full",
    "sample_negatives",
    "ranks_sampled",
    "summarize",
]


def _as_ranks(ranks: Tensor, k: int | None = None) -> Tensor:
    ranks = torch.as_tensor(ranks)
    if ranks.dim() != 1 or ranks.numel() == 0:
        raise ValueError(f"ranks must be a non-empty 1-D tensor (users,), got shape {tuple(ranks.shape)}")
    if (ranks < 0).any():
        raise ValueError("ranks are 0-based (0 = top of the list) and cannot be negative")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return ranks


def hit_rate_at_k(ranks: Tensor, k: int) -> float:
    """HR@K: share of users whose held-out item is in the top K (rank < K)."""
    ranks = _as_ranks(ranks, k)
    return (ranks < k).double().mean().item()


def ndcg_at_k(ranks: Tensor, k: int) -> float:
    """NDCG@K with one relevant item: 1 / log2(rank + 2) if rank < K, else 0.

    With a single relevant item the ideal DCG is 1, so NDCG equals DCG. The
    ``+ 2`` turns the 0-based rank into the 1-based position plus one.
    """
    ranks = _as_ranks(ranks, k).double()
    gain = 1.0 / torch.log2(ranks + 2.0)
    return torch.where(ranks < k, gain, torch.zeros_like(gain)).mean().item()


def mrr(ranks: Tensor) -> float:
    """Mean reciprocal rank: mean of 1 / (rank + 1)."""
    return (1.0 / (_as_ranks(ranks).double() + 1.0)).mean().item()


def summarize(ranks: Tensor, k: int = 10) -> dict[str, float]:
    """``{"hr@K", "ndcg@K", "mrr"}`` of a ``(U,)`` rank tensor (lesson 05).

    The keys are the ones ``metrics.json`` uses, e.g. ``"hr@10"``.
    """
    return {f"hr@{k}": hit_rate_at_k(ranks, k), f"ndcg@{k}": ndcg_at_k(ranks, k), "mrr": mrr(ranks)}


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def _check_targets(targets: Tensor, U: int, n_columns: int) -> Tensor:
    if not isinstance(targets, Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise TypeError("targets must be an integer (Long) tensor of item ids, shape (U,)")
    if targets.shape != (U,):
        raise ValueError(f"targets has shape {tuple(targets.shape)}; expected ({U},), one item id per user (row)")
    if ((targets < 1) | (targets >= n_columns)).any():
        raise ValueError(
            f"target item ids must lie in 1..{n_columns - 1} (0 is padding), "
            f"got min {int(targets.min())}, max {int(targets.max())}"
        )
    return targets.long()


def _check_finite(name: str, x: Tensor) -> None:
    if torch.isnan(x).any():
        raise ValueError(
            f"{name} contain NaN: a NaN compares False with everything, so the "
            f"rank would be silently optimistic; fix the model (check the loss "
            f"for NaN/inf) before evaluating"
        )


# --------------------------------------------------------------------------
# Full ranking
# --------------------------------------------------------------------------
def seen_mask(histories: Tensor, n_items: int) -> Tensor:
    """``(U, n_items + 1)`` boolean mask, True at every item in each history.

    ``histories`` is a ``(U, L)`` integer tensor of item ids padded with 0
    (either side); column 0 of the result is always True, so padding is
    excluded too. Use it as ``exclude`` in :func:`ranks_full` or ``seen`` in
    :func:`sample_negatives`.
    """
    if not isinstance(histories, Tensor) or histories.dim() != 2 or histories.is_floating_point():
        raise ValueError("histories must be an integer tensor (U, L) of item ids padded with 0")
    if histories.numel() and (int(histories.min()) < 0 or int(histories.max()) > n_items):
        raise ValueError(f"history item ids must lie in 0..{n_items} (0 = padding)")
    mask = torch.zeros(histories.shape[0], n_items + 1, dtype=torch.bool, device=histories.device)
    mask.scatter_(1, histories.long(), True)  # (U, N+1)
    mask[:, 0] = True
    return mask


def ranks_full(scores: Tensor, targets: Tensor, exclude: Tensor | None = None) -> Tensor:
    """0-based rank of each user's target among all items (lesson 05).

    rank_u = #{ j : j != 0, j != t_u, not exclude[u, j], s[u, j] >= s[u, t_u] }

    Args:
        scores: ``(U, N + 1)`` float scores, column ``j`` = item id ``j``;
            column 0 is padding and never competes.
        targets: ``(U,)`` held-out item ids in ``1..N``.
        exclude: optional ``(U, N + 1)`` boolean mask of items that do not
            compete (the user's other history items, see :func:`seen_mask`).
            The target itself is never excluded, even if marked.

    Returns:
        ``(U,)`` long ranks; ties count against the target (pessimistic).
    """
    if not isinstance(scores, Tensor) or scores.dim() != 2 or not scores.is_floating_point():
        raise ValueError(
            "scores must be a float tensor (U, n_items + 1) with one column per "
            "item id (column 0 = padding); got "
            + (f"shape {tuple(scores.shape)}" if isinstance(scores, Tensor) else type(scores).__name__)
        )
    U, C = scores.shape
    targets = _check_targets(targets, U, C).to(scores.device)
    _check_finite("scores", scores)
    target_scores = scores.gather(1, targets[:, None])  # (U, 1)
    competes = scores >= target_scores  # (U, N+1), includes ties
    competes[:, 0] = False
    if exclude is not None:
        if not isinstance(exclude, Tensor) or exclude.dtype != torch.bool or exclude.shape != scores.shape:
            raise ValueError(
                f"exclude must be a boolean tensor with the shape of scores {tuple(scores.shape)} "
                f"(True = item does not compete); build it with seen_mask(histories, n_items)"
            )
        competes &= ~exclude.to(scores.device)
    competes.scatter_(1, targets[:, None], False)  # the target does not outrank itself
    return competes.sum(dim=1)  # (U,)


# --------------------------------------------------------------------------
# Sampled protocol
# --------------------------------------------------------------------------
def sample_negatives(
    seen: Tensor,
    n_items: int,
    n: int = 100,
    generator: torch.Generator | int | None = None,
    targets: Tensor | None = None,
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """``(U, n)`` distinct random items per user that the user never saw.

    Each row is a uniform sample *without replacement* from the items in
    ``1..n_items`` outside the user's history and target (the SASRec paper's
    100 negatives). Vectorized: every allowed item gets a uniform random key,
    seen items get +inf, and the ``n`` smallest keys win.

    Args:
        seen: either a ``(U, n_items + 1)`` boolean mask (True = seen, see
            :func:`seen_mask`) or a ``(U, L)`` integer tensor of history item
            ids padded with 0.
        n_items: number of real items (ids ``1..n_items``).
        n: negatives per user.
        generator: a CPU ``torch.Generator`` or an int seed (required: the
            protocol must be reproducible).
        targets: optional ``(U,)`` item ids that are excluded too (pass the
            held-out item unless ``seen`` already contains it).
        chunk_elements: users are processed in chunks of about this many
            (user, item) keys, to bound memory on large catalogues.
    """
    if generator is None:
        raise ValueError(
            "sample_negatives needs a seed: pass generator=torch.Generator().manual_seed(s) "
            "or generator=s, so the sampled protocol is reproducible"
        )
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    if not isinstance(seen, Tensor) or seen.dim() != 2:
        raise ValueError("seen must be a (U, n_items + 1) boolean mask or a (U, L) tensor of item ids")
    if seen.dtype == torch.bool:
        if seen.shape[1] != n_items + 1:
            raise ValueError(
                f"seen mask has {seen.shape[1]} columns; expected n_items + 1 = {n_items + 1} (column 0 = padding)"
            )
        mask = seen.clone()
        mask[:, 0] = True
    else:
        mask = seen_mask(seen, n_items)
    if targets is not None:
        targets = _check_targets(targets, mask.shape[0], n_items + 1).to(mask.device)
        mask.scatter_(1, targets[:, None], True)
    mask = mask.cpu()
    free = n_items - (mask[:, 1:].sum(dim=1))  # (U,)
    if n < 1 or (free < n).any():
        worst = int(free.argmin())
        raise ValueError(
            f"cannot draw n={n} distinct negatives: user row {worst} has only "
            f"{int(free[worst])} unseen items; lower n or drop such users"
        )
    U = mask.shape[0]
    step = max(1, chunk_elements // (n_items + 1))
    out = []
    for start in range(0, U, step):
        m = mask[start : start + step]  # (u, N+1)
        keys = torch.rand(m.shape, generator=generator)  # (u, N+1) uniform keys
        keys.masked_fill_(m, float("inf"))
        out.append(keys.topk(n, dim=1, largest=False).indices)  # (u, n)
    return torch.cat(out).to(seen.device)


def ranks_sampled(target_scores: Tensor, negative_scores: Tensor) -> Tensor:
    """0-based rank of the target among itself and its sampled negatives.

    rank_u = #{ i : negative_scores[u, i] >= target_scores[u] }  (pessimistic)

    ``target_scores`` is ``(U,)``, ``negative_scores`` is ``(U, n)``; the
    rank lies in ``0..n``.
    """
    for name, t in (("target_scores", target_scores), ("negative_scores", negative_scores)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor")
    if target_scores.dim() != 1 or negative_scores.dim() != 2 or negative_scores.shape[0] != target_scores.shape[0]:
        raise ValueError(
            f"target_scores {tuple(target_scores.shape)} must be (U,) and negative_scores "
            f"{tuple(negative_scores.shape)} must be (U, n) with the same U; if your "
            f"model scores (U, 1 + n) candidates with the target first, pass "
            f"scores[:, 0] and scores[:, 1:]"
        )
    _check_finite("target_scores", target_scores)
    _check_finite("negative_scores", negative_scores)
    return (negative_scores >= target_scores[:, None]).sum(dim=1)  # (U,)
