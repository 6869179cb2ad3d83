"""Baselines with the same interface as SASRec (lesson 05).

So that "does attention help?" is measured, not claimed:

- :class:`Popularity` scores every item by how often it appears in the
  training sequences; it ignores the history (a floor every model must
  beat).
- :class:`MeanPool` averages the embeddings of the history items seen so far
  (order-blind, no attention) and scores items by dot product.
- :class:`GRU4Rec` (Hidasi et al. 2016) runs a GRU over the history, an
  order-aware sequential model without attention. NOTE: trained with the
  same full-softmax loss and windows as SASRec, not the paper's
  session-parallel mini-batches, so the comparison isolates the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .base import SequentialRecommender, check_history, full_softmax_loss

__all__ = ["PopularityConfig", "Popularity", "MeanPoolConfig", "MeanPool", "GRU4RecConfig", "GRU4Rec"]


@dataclass(frozen=True)
class PopularityConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding


class Popularity(SequentialRecommender):
    """score(u, i) = number of training interactions with item i."""

    def __init__(self, cfg: PopularityConfig) -> None:
        super().__init__()
        self.cfg, self.n_items = cfg, cfg.n_items
        self.register_buffer("counts", torch.zeros(cfg.n_items + 1))

    def fit_counts(self, train_sequences: list[Tensor]) -> None:
        flat = torch.cat([s.long() for s in train_sequences])
        self.counts.copy_(torch.bincount(flat, minlength=self.n_items + 1).float())

    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        check_history(history, self.n_items, candidates)
        scores = self.counts.expand(history.shape[0], -1)  # (B, N+1)
        return scores.clone() if candidates is None else scores.gather(1, candidates)

    def loss(self, batch) -> Tensor:
        raise RuntimeError("Popularity has nothing to train: call fit_counts(train_sequences)")


@dataclass(frozen=True)
class MeanPoolConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding
    maxlen: int = 50  # history length L
    d_model: int = 64  # embedding size D
    dropout: float = 0.2  # on the item embeddings


class _Encoder(SequentialRecommender):
    """Shared parts: item embeddings, full-softmax loss, last-position scores."""

    def _init_items(self, n_items: int, d: int, dropout: float) -> None:
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=d ** -0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.drop = nn.Dropout(dropout)

    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        check_history(history, self.n_items, candidates)
        h = self.forward(history)[:, -1]  # (B, D)
        if candidates is None:
            return h @ self.item_emb.weight.T  # (B, N+1)
        return (self.item_emb(candidates) @ h[:, :, None]).squeeze(-1)  # (B, C)

    def loss(self, batch) -> Tensor:
        return full_softmax_loss(self.forward(batch.inputs), batch.targets, self.item_emb.weight)


class MeanPool(_Encoder):
    """h_t = LayerNorm(W mean(e_1..e_t)): the order-blind average of the history."""

    def __init__(self, cfg: MeanPoolConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._init_items(cfg.n_items, cfg.d_model, cfg.dropout)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, history: Tensor) -> Tensor:
        check_history(history, self.n_items)
        real = (history != 0).float()  # (B, L)
        x = self.drop(self.item_emb(history))  # (B, L, D); padding rows are 0
        mean = x.cumsum(1) / real.cumsum(1).clamp(min=1)[..., None]  # (B, L, D)
        return self.ln(self.proj(mean)) * real[..., None]


@dataclass(frozen=True)
class GRU4RecConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding
    maxlen: int = 50  # history length L
    d_model: int = 64  # embedding and GRU hidden size D
    n_layers: int = 1  # stacked GRU layers
    dropout: float = 0.2  # on the item embeddings


class GRU4Rec(_Encoder):
    """A GRU over the real items only (padding is packed away)."""

    def __init__(self, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._init_items(cfg.n_items, cfg.d_model, cfg.dropout)
        self.gru = nn.GRU(cfg.d_model, cfg.d_model, cfg.n_layers, batch_first=True)

    def forward(self, history: Tensor) -> Tensor:
        check_history(history, self.n_items)
        B, L = history.shape
        n = (history != 0).sum(1)  # (B,) real items per row
        cols = torch.arange(L, device=history.device)
        left = (cols[None] + (L - n)[:, None]) % L  # (B, L) right-aligned -> left-aligned
        x = self.drop(self.item_emb(history.gather(1, left)))  # (B, L, D)
        packed = pack_padded_sequence(x, n.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # (B, L, D)
        back = (cols[None] - (L - n)[:, None]) % L  # (B, L) left-aligned -> right-aligned
        out = out.gather(1, back[..., None].expand(-1, -1, out.shape[-1]))
        return out * (history != 0)[..., None]  # (B, L, D)
