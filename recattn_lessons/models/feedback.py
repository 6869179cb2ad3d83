"""SASRec that reads dislikes: a learned "dislike" vector on flagged history items (lesson 09).

The data side (:func:`recattn_lessons.data.feedback.feedback_variant` with ``"dislike"``)
writes a disliked occurrence of item ``i`` as id ``i + N``. This model embeds a history id
``h`` in ``0..2N`` as

    e(h) = E[h]          if h <= N   (a liked item, or 0 = padding)
    e(h) = E[h - N] + d  if h > N    (item h - N, disliked)

with ``E`` SASRec's item embedding and ``d`` one learned ``(D,)`` vector, so attention sees
*which* item was disliked and *that* it was. Everything else is SASRec: the encoder never
learns a second table for disliked items, and the output scores are the real items'
``h E^T`` only. The id space is ``2N``, so ``score`` keeps the course's contract and returns
``(B, 2N + 1)`` columns, but columns ``N + 1 .. 2N`` are flags, not items: they score the
dtype's lowest finite value and never outrank an item (full ranking, top-k). A flagged id is
never a training target (its target is set to 0 = none): the model learns what users
*liked* next, with dislikes as context.

NOTE: the sampled protocol of :mod:`recattn_lessons.train.evaluate` draws negatives from
all ``2N`` ids, and flag columns never compete, so its numbers are not comparable to a
plain model's; lesson 09 reports the full protocol only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ..data.batching import Batch
from .base import check_history, gather_candidates
from .sasrec import SASRec, SASRecConfig

__all__ = ["DislikeSASRecConfig", "DislikeSASRec", "DislikeEmbedding"]


@dataclass(frozen=True)
class DislikeSASRecConfig(SASRecConfig):
    """SASRec's fields; ``n_items`` is the id space ``2N`` (``N`` real items)."""

    def __post_init__(self) -> None:
        if self.n_items < 2 or self.n_items % 2:
            raise ValueError(
                f"n_items={self.n_items} must be the even id space 2N: ids 1..N are items, "
                "N+1..2N the same items disliked; build the data with "
                "recattn_lessons.data.feedback.feedback_variant(data, 'dislike')")
        if self.loss != "ce":
            raise ValueError("DislikeSASRec trains with loss='ce' only: sampled negatives would be "
                             f"drawn from the 2N id space, got loss={self.loss!r}")
        super().__post_init__()

    @property
    def n_catalogue(self) -> int:
        return self.n_items // 2


class DislikeEmbedding(nn.Module):
    """``e(h) = E[h mod N] + [h > N] d`` for ids ``(...)`` in ``0..2N`` -> ``(..., D)``."""

    def __init__(self, items: nn.Embedding) -> None:
        super().__init__()
        self.items = items  # (N + 1, D), row 0 = padding
        self.n = items.num_embeddings - 1
        self.dislike = nn.Parameter(torch.randn(items.embedding_dim) * items.embedding_dim ** -0.5)

    @property
    def weight(self) -> Tensor:
        """``(N + 1, D)``: the real items' embeddings, what scores and the loss use."""
        return self.items.weight

    def forward(self, ids: Tensor) -> Tensor:
        flag = ids > self.n  # (...)
        x = self.items(torch.where(flag, ids - self.n, ids))  # (..., D)
        return x + flag[..., None].to(x.dtype) * self.dislike  # (..., D)


class DislikeSASRec(SASRec):
    """SASRec over the ``2N`` id space; see the module docstring."""

    uses_item_features = False  # ids and the dislike flag only

    def __init__(self, cfg: DislikeSASRecConfig) -> None:
        base = {f.name: getattr(cfg, f.name) for f in fields(SASRecConfig)}
        super().__init__(SASRecConfig(**{**base, "n_items": cfg.n_catalogue}))
        self.feedback_cfg = cfg
        self.n_catalogue = cfg.n_catalogue
        self.n_items = cfg.n_items  # histories may hold ids up to 2N (check_history)
        self.item_emb = DislikeEmbedding(self.item_emb)

    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, L)`` ids in ``0..2N`` -> ``(B, 2N + 1)`` (or ``(B, C)``) scores."""
        check_history(history, self.n_items, candidates)
        h = self.forward(history)[:, -1]  # (B, D)
        items = h @ self.item_emb.weight.T  # (B, N + 1)
        flags = items.new_full((h.shape[0], self.n_catalogue), torch.finfo(items.dtype).min)  # (B, N)
        return gather_candidates(torch.cat([items, flags], dim=1), candidates)  # (B, 2N + 1)

    def loss(self, batch: Batch) -> Tensor:
        """Full-softmax CE over the ``N`` items; flagged (disliked) targets are skipped."""
        targets = torch.where(batch.targets > self.n_catalogue, 0, batch.targets)  # (B, L)
        return super().loss(Batch(batch.inputs, targets, batch.users, batch.negatives))
