"""The one interface every recommender in the course follows (lesson 05).

A :class:`SequentialRecommender` reads a left-padded history ``(B, L)``
(item ids, 0 = padding, most recent item in the last column) and scores
candidate items:

- ``score(history, candidates)`` -> ``(B, C)`` scores of ``candidates``
  ``(B, C)``, or ``(B, n_items + 1)`` over all items when ``candidates`` is
  None (column 0 is padding; evaluators exclude it);
- ``loss(batch)`` -> a scalar training loss on a
  :class:`recattn_lessons.data.batching.Batch`;
- ``n_negatives`` says how many sampled negatives per position ``loss``
  needs in ``batch.negatives`` (0 = none);
- ``fit_counts(train_sequences)`` lets count-based models (popularity)
  learn from the data directly; a no-op for the others.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SequentialRecommender", "check_history", "gather_candidates", "score_last_position",
           "full_softmax_loss"]


def check_history(history: Tensor, n_items: int, candidates: Tensor | None = None) -> None:
    """Clear errors for the usual input mistakes."""
    if not isinstance(history, Tensor) or history.dim() != 2:
        shape = tuple(history.shape) if isinstance(history, Tensor) else type(history).__name__
        raise ValueError(f"history must be a (batch, length) LongTensor, got {shape}; "
                         "for one user use history.unsqueeze(0)")
    if history.dtype != torch.long:
        raise TypeError(f"history must hold int64 item ids, got {history.dtype}; use history.long()")
    if history.numel() and (history.min() < 0 or history.max() > n_items):
        raise ValueError(f"item ids must lie in 0..{n_items} (0 = padding), got "
                         f"{int(history.min())}..{int(history.max())}")
    if candidates is not None:
        if candidates.dim() != 2 or candidates.shape[0] != history.shape[0]:
            raise ValueError(f"candidates must be (batch={history.shape[0]}, C), got {tuple(candidates.shape)}")
        if candidates.numel() and (candidates.min() < 0 or candidates.max() > n_items):
            raise ValueError(f"candidate ids must lie in 0..{n_items}")


def gather_candidates(all_scores: Tensor, candidates: Tensor | None) -> Tensor:
    """``(B, N+1)`` scores -> ``(B, C)`` at ``candidates`` (or all if None)."""
    return all_scores if candidates is None else all_scores.gather(1, candidates)


def score_last_position(hidden: Tensor, item_emb: nn.Embedding, candidates: Tensor | None) -> Tensor:
    """Encoder scores: the last position's state dot each item's embedding.

    hidden ``(B, L, D)`` -> ``(B, N + 1)`` over all items, or ``(B, C)`` at
    ``candidates`` ``(B, C)`` (only their embeddings are looked up).
    """
    h = hidden[:, -1]  # (B, D) the most recent position
    if candidates is None:
        return h @ item_emb.weight.T  # (B, N+1)
    c = item_emb(candidates)  # (B, C, D)
    return (c @ h[:, :, None]).squeeze(-1)  # (B, C)


class SequentialRecommender(nn.Module, abc.ABC):
    """Base class: subclasses set ``n_items`` and implement score and loss."""

    n_items: int
    n_negatives: int = 0

    @abc.abstractmethod
    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, L)`` left-padded history -> ``(B, C)`` or ``(B, N + 1)`` scores."""

    @abc.abstractmethod
    def loss(self, batch) -> Tensor:
        """Scalar training loss of one batch."""

    def fit_counts(self, train_sequences: list[Tensor]) -> None:
        """Learn from counts before training (popularity); default: nothing."""

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())


def full_softmax_loss(hidden: Tensor, targets: Tensor, item_weight: Tensor,
                      chunk_elements: int = 1 << 21) -> Tensor:
    """Cross-entropy of the next item over **all** items (lesson 05).

    hidden ``(B, L, D)``, targets ``(B, L)`` (0 = no target), item_weight
    ``(N + 1, D)`` (row 0 = padding, left out of the softmax):

        loss = mean over targets of  -log softmax(h_t E^T)[y_t]

    The ``(targets, N)`` logits are built in row chunks of about
    ``chunk_elements`` numbers. Same loss, but each chunk stays small enough
    for the allocator to reuse memory: one 50 MB logits tensor per batch was
    returned to the OS and page-faulted back every step, which made half of
    a CPU epoch system time (measured, 1 thread, 1,370 targets: 0.13-0.16 s
    -> 0.064 s per forward + backward).
    """
    has = targets > 0  # (B, L)
    h, y = hidden[has], targets[has] - 1  # (M, D), (M,)
    W = item_weight[1:]  # (N, D): no padding column
    rows = max(1, chunk_elements // W.shape[0])
    if len(y) == 0:
        raise ValueError("the batch has no targets (every target is 0 = padding)")
    dtype = torch.promote_types(hidden.dtype, torch.float32)  # bf16 logits -> fp32 loss
    parts = [F.cross_entropy((hc @ W.T).to(dtype), yc, reduction="sum")  # (m, N) logits
             for hc, yc in zip(h.split(rows), y.split(rows))]
    return torch.stack(parts).sum() / len(y)
