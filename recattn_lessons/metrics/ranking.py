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

Histories for exclusion can be a :class:`CSRHistory` (one flat array of
item ids plus row offsets, memory O(interactions)): evaluation builds the
``(batch, n_items + 1)`` exclusion mask one batch at a time, never a dense
users x items or users x longest-history matrix (issue 12: ML-20M).

Ties are **pessimistic** everywhere: an item scoring exactly the target's
score ranks above it. A model that gives every item the same score therefore
gets the worst possible rank, as it should, instead of rank 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "hit_rate_at_k",
    "ndcg_at_k",
    "mrr",
    "seen_mask",
    "CSRHistory",
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


@dataclass(frozen=True)
class CSRHistory:
    """Every user's seen items in compressed sparse rows (CSR).

    Row ``u``'s items are ``indices[indptr[u]:indptr[u + 1]]``. Build it
    with :meth:`from_sequences`; :meth:`mask` gives the dense boolean mask
    of a few rows only, so memory stays O(interactions + batch x items).
    """

    indptr: Tensor  # (U + 1,) long offsets
    indices: Tensor  # (S,) long item ids in 1..n_items
    n_items: int

    @classmethod
    def from_sequences(cls, sequences: list[Tensor], n_items: int) -> "CSRHistory":
        """From one 1-D tensor of item ids per user (0 = padding is dropped)."""
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)  # (U,)
        indptr = torch.zeros(len(sequences) + 1, dtype=torch.long)
        indptr[1:] = torch.cumsum(lengths, 0)
        flat = torch.cat([s.long().view(-1) for s in sequences]) if sequences else torch.zeros(0, dtype=torch.long)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) > n_items):
            raise ValueError(f"history item ids must lie in 0..{n_items} (0 = padding)")
        return cls(indptr, flat, n_items)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def mask(self, lo: int, hi: int) -> Tensor:
        """``(hi - lo, n_items + 1)`` boolean mask of rows ``lo..hi-1``; column 0 True."""
        hi = min(hi, self.n_users)
        start, end = int(self.indptr[lo]), int(self.indptr[hi])
        counts = self.indptr[lo + 1:hi + 1] - self.indptr[lo:hi]  # (b,)
        rows = torch.repeat_interleave(torch.arange(hi - lo), counts)  # (nnz,)
        out = torch.zeros(hi - lo, self.n_items + 1, dtype=torch.bool)
        out[rows, self.indices[start:end]] = True
        out[:, 0] = True
        return out


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
        competes.masked_fill_(exclude.to(scores.device), False)  # no (U, N+1) temporary
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
    100 negatives). Vectorized rejection sampling (O(n) per user), with
    exact random keys for users who saw most of the catalogue.

    Args:
        seen: a ``(U, n_items + 1)`` boolean mask (True = seen, see
            :func:`seen_mask`), a ``(U, L)`` integer tensor of history item
            ids padded with 0, a list of per-user id tensors, or a
            :class:`CSRHistory` (the streaming form: masks are built one
            chunk of users at a time).
        n_items: number of real items (ids ``1..n_items``).
        n: negatives per user.
        generator: a CPU ``torch.Generator`` or an int seed (required: the
            protocol must be reproducible).
        targets: optional ``(U,)`` item ids that are excluded too (pass the
            held-out item unless ``seen`` already contains it).
        chunk_elements: users are processed in chunks of about this many
            (user, item) keys, to bound memory on large catalogues; the
            draws do not depend on the form of ``seen``.
    """
    if generator is None:
        raise ValueError(
            "sample_negatives needs a seed: pass generator=torch.Generator().manual_seed(s) "
            "or generator=s, so the sampled protocol is reproducible"
        )
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    rows_mask, U, device = _mask_source(seen, n_items)
    if targets is not None:
        targets = _check_targets(targets, U, n_items + 1).cpu()
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    step = max(1, chunk_elements // (n_items + 1))
    out = []
    for start in range(0, U, step):
        m = rows_mask(start, min(start + step, U))  # (u, N+1), built per chunk only
        if targets is not None:
            m.scatter_(1, targets[start:start + step, None], True)
        free = n_items - m[:, 1:].sum(dim=1)  # (u,)
        if (free < n).any():
            worst = int(free.argmin())
            raise ValueError(
                f"cannot draw n={n} distinct negatives: user row {start + worst} has only "
                f"{int(free[worst])} unseen items; lower n or drop such users"
            )
        out.append(_draw_unseen(m, n, generator))  # (u, n)
    return torch.cat(out).to(device)


def _draw_unseen(m: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``(u, n)`` distinct items per row, uniform among the False columns of ``m``.

    Rejection first: draw ``2n + 16`` ids with replacement per row and keep
    the first ``n`` that are allowed and not repeats, which is a uniform
    sample without replacement and costs O(n) per user, not O(items).
    Rows that did not collect ``n`` (users who saw most of the catalogue)
    fall back to exact random keys: every allowed item gets a uniform key,
    forbidden ones +inf, the ``n`` smallest win.
    """
    u, C = m.shape
    cand = torch.randint(1, C, (u, 2 * n + 16), generator=generator)  # (u, T)
    ok = ~m.gather(1, cand)  # (u, T) allowed
    srt, order = cand.sort(dim=1, stable=True)
    rep = torch.zeros_like(ok)
    rep[:, 1:] = srt[:, 1:] == srt[:, :-1]  # a repeat of an earlier draw (stable: first kept)
    ok &= ~torch.zeros_like(ok).scatter_(1, order, rep)
    taken = ok & (ok.cumsum(1) <= n)  # the first n allowed draws
    full = taken.sum(1) == n  # (u,)
    out = torch.empty(u, n, dtype=torch.long)
    out[full] = cand[full][taken[full]].view(-1, n)  # row-major order = draw order
    if (~full).any():
        keys = torch.rand(int((~full).sum()), C, generator=generator)  # (r, N+1)
        keys.masked_fill_(m[~full], float("inf"))
        out[~full] = keys.topk(n, dim=1, largest=False).indices
    return out


def _mask_source(seen, n_items: int):
    """``(rows_mask(lo, hi), U, device)`` for any accepted form of ``seen``."""
    if isinstance(seen, CSRHistory):
        if seen.n_items != n_items:
            raise ValueError(f"CSRHistory has n_items={seen.n_items}, expected {n_items}")
        return seen.mask, seen.n_users, torch.device("cpu")
    if isinstance(seen, (list, tuple)):
        csr = CSRHistory.from_sequences(list(seen), n_items)
        return csr.mask, csr.n_users, torch.device("cpu")
    if not isinstance(seen, Tensor) or seen.dim() != 2:
        raise ValueError("seen must be a (U, n_items + 1) boolean mask, a (U, L) tensor of item ids, "
                         "a list of per-user id tensors or a CSRHistory")
    if seen.dtype == torch.bool:
        if seen.shape[1] != n_items + 1:
            raise ValueError(
                f"seen mask has {seen.shape[1]} columns; expected n_items + 1 = {n_items + 1} (column 0 = padding)"
            )

        def rows_mask(lo, hi):
            m = seen[lo:hi].cpu().clone()
            m[:, 0] = True
            return m
    else:
        seen_mask(seen[:0], n_items)  # validates dtype and shape

        def rows_mask(lo, hi):
            return seen_mask(seen[lo:hi].cpu(), n_items)
        if seen.numel() and (int(seen.min()) < 0 or int(seen.max()) > n_items):
            raise ValueError(f"history item ids must lie in 0..{n_items} (0 = padding)")
    return rows_mask, seen.shape[0], seen.device


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
