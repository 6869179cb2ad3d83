"""Ranking metrics for next-item recommendation (lessons 05 and the exercises).

Everything starts from ``ranks``: a ``(U,)`` tensor holding, for each user,
the 0-based rank of the held-out item among the candidates (0 = top).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hit_rate_at_k", "ndcg_at_k", "mrr"]


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
