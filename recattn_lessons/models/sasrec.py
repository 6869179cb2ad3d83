"""SASRec: self-attentive sequential recommendation (lesson 05).

Kang & McAuley (2018). Each position of a left-padded history attends to
itself and the earlier items (a causal mask); the hidden state at the last
position scores every item by a dot product with the (shared) item
embeddings.

Design choices (and where we depart from the paper):

- **Pre-LN blocks** ``x + Drop(MHA(LN(x)))``, ``x + Drop(FFN(LN(x)))`` and a
  final LayerNorm. This is the paper's block, g'(x) = x + Dropout(g(LN(x)))
  for g the self-attention or the FFN (Kang & McAuley 2018, section III-C,
  "Stacking Self-Attention Blocks"), with queries, keys and values all
  projected from that one input (section III-B). NOTE: the authors' TF code
  (kang205/SASRec, ``model.py``/``modules.py``) differs from its paper: it
  reads queries from LN(x) but keys/values from the un-normalised x, and its
  residuals add the *normalised* input: y = LN(x) + MHA(LN(x), x), then
  LN(y) + FFN(LN(y)). With z = LN(x) every sub-layer's input is
  LN(z + g(z)) of the previous one's: in effect post-LN. pmixer/SASRec.pytorch
  copied that design until May 2025 (issue #47, PR #48) and now offers
  post-LN ``LN(x + g(x))`` with Q = K = V = x (default) or pre-LN
  ``x + g(LN(x))`` with Q = K = V = LN(x) (``--norm_first``). Pre-LN keeps an
  identity residual path, so gradients reach the embeddings at full strength
  and training is stable at lr 3e-3 without warm-up (Xiong et al. 2020, "On
  Layer Normalization in the Transformer Architecture"); we did not train a
  post-LN variant here. Also unlike both codes (and like the paper's
  E + P), item embeddings are not multiplied by sqrt(D). Lesson 05 writes
  this forward pass out and checks it against this class
  (tests/test_lesson05_sasrec_by_hand.py).
- **Masks**, boolean with True = may attend: causal AND key is a real item.
  Each position may also attend to itself, so padding rows (which nobody
  reads) are never fully masked; real items never attend to padding.
  Hidden states at padding positions are reset to zero after every block.
- **Zero padding embedding** (``padding_idx=0``) and learned absolute
  positions. ``positions="right"`` (the default, every trained number of
  the course): counted back from the end of the window, so the most recent
  item always sits at position ``maxlen - 1``, wherever the history starts.
  ``positions="left"`` (lesson 07): counted from the first real item of the
  window, 0, 1, 2, ..., as language models count tokens. Then appending an
  item moves no earlier position, so a key/value cache is exact
  (:mod:`recattn_lessons.serving.session`); with ``"right"`` every append
  shifts every earlier position and the cache is impossible.
- **Two losses**: ``"ce"`` (default), the full softmax over all items
  (Klenitskiy & Vasilev 2023, "Turning Dross Into Gold Loss: is BERT4Rec
  really better than SASRec?"), and
  ``"bce"``, the paper's binary cross-entropy with sampled negatives.
- **Attention**: ``"fused"`` calls ``F.scaled_dot_product_attention``
  through the course's :class:`~recattn_lessons.attention.MultiHeadAttention`;
  ``"reference"`` runs the hand-written path of lesson 03. Both give the
  same output (tested). ``forward(..., return_attention=True)`` also returns
  the weights without changing the output in either mode.
- **Item features** (lesson 09): ``SASRec(cfg, item_tokens)`` with an
  ``(n_items + 1, T)`` token matrix
  (:func:`recattn_lessons.data.item_features.feature_tokens`) fuses each id
  embedding with its genre and title tokens
  (:class:`~recattn_lessons.models.item_encoder.ItemEncoder`, ``cfg.fusion``)
  into one table, computed once per forward and used both for the history
  and for scoring, so an item never trained on is scored by its features.
  ``SASRec(cfg, item_vectors=...)`` (lesson 10) adds a learned projection of
  fixed text embeddings (:class:`~recattn_lessons.models.item_encoder.ContentProjection`)
  to that table instead of, or after, the tokens. Without ``item_tokens`` and
  ``item_vectors`` the model is lesson 05's, parameter for parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiHeadAttention, masked_softmax, scaled_dot_scores
from .base import (SequentialRecommender, check_history, full_softmax_loss, gather_candidates,
                   score_last_position)
from .item_encoder import FUSIONS, ContentProjection, ItemEncoder

__all__ = ["SASRecConfig", "SASRec", "attention_mask"]


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding
    maxlen: int = 50  # history length L the model reads
    d_model: int = 64  # embedding and hidden size D
    n_heads: int = 1  # attention heads (the paper uses 1)
    n_blocks: int = 2  # self-attention blocks
    d_ff: int = 64  # feed-forward hidden size (the paper: D)
    dropout: float = 0.2  # on embeddings, attention weights, sub-layer outputs
    loss: Literal["ce", "bce"] = "ce"  # full softmax or sampled binary CE
    n_negatives: int = 1  # negatives per position for loss="bce"
    attention: Literal["fused", "reference"] = "fused"
    # "right": the most recent item at position maxlen - 1 (default);
    # "left": the first real item at position 0 (KV-cacheable, lesson 07)
    positions: Literal["right", "left"] = "right"
    # with item_tokens (lesson 09): how features join the id embedding
    fusion: Literal["sum", "concat", "cross"] = "sum"

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.positions not in ("right", "left"):
            raise ValueError(f"positions must be 'right' or 'left', got {self.positions!r}")
        if self.loss not in ("ce", "bce"):
            raise ValueError(f"loss must be 'ce' or 'bce', got {self.loss!r}")
        if self.attention not in ("fused", "reference"):
            raise ValueError(f"attention must be 'fused' or 'reference', got {self.attention!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_items < 1 or self.maxlen < 1:
            raise ValueError("n_items and maxlen must be positive")


def attention_mask(history: Tensor) -> Tensor:
    """``(B, 1, L, L)`` boolean mask, True = may attend.

    Query i may attend to key j if j <= i and j is a real item, and always
    to itself (so no row is empty; padding rows are discarded anyway).
    """
    B, L = history.shape
    real = history != 0  # (B, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=history.device).tril()  # (L, L)
    eye = torch.eye(L, dtype=torch.bool, device=history.device)  # (L, L)
    return (causal & (real[:, None, :] | eye))[:, None]  # (B, 1, L, L)


class Block(nn.Module):
    """One pre-LN causal self-attention block."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, dropout=cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ffn = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.ReLU(),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.fused = cfg.attention == "fused"

    def weights(self, h: Tensor, mask: Tensor) -> Tensor:
        """Attention weights ``(B, H, L, L)`` the block uses on input ``h``."""
        a, (B, L, D) = self.attn, h.shape
        q = a.W_q(h).view(B, L, a.n_heads, D // a.n_heads).transpose(1, 2)  # (B, H, L, Dh)
        k = a.W_k(h).view(B, L, a.n_heads, D // a.n_heads).transpose(1, 2)  # (B, H, L, Dh)
        return masked_softmax(scaled_dot_scores(q, k), mask)  # (B, H, L, L)

    def forward(self, x: Tensor, mask: Tensor, real: Tensor,
                capture: bool = False) -> tuple[Tensor, Tensor | None]:
        h = self.ln1(x)  # (B, L, D)
        out, w = self.attn(h, mask=mask, fused=self.fused)  # (B, L, D)
        if capture and w is None:  # fused path: compute the weights aside
            w = self.weights(h, mask)
        x = x + self.drop(out)
        x = x + self.drop(self.ffn(self.ln2(x)))
        return x * real[..., None], w  # padding stays zero


class SASRec(SequentialRecommender):
    """SASRec with the course's attention; see the module docstring."""

    uses_item_features = True  # models.build may pass item_tokens

    def __init__(self, cfg: SASRecConfig, item_tokens: Tensor | None = None,
                 item_vectors: Tensor | None = None) -> None:
        super().__init__()
        self.cfg, self.n_items = cfg, cfg.n_items
        self.n_negatives = cfg.n_negatives if cfg.loss == "bce" else 0
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.maxlen, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_blocks))
        self.ln = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.item_emb.weight, std=cfg.d_model ** -0.5)
        nn.init.normal_(self.pos_emb.weight, std=cfg.d_model ** -0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        # created last, so the parameters above are initialised as without features
        self.features = None
        if item_tokens is not None:
            if item_tokens.dim() != 2 or item_tokens.shape[0] != cfg.n_items + 1:
                raise ValueError(f"item_tokens must be (n_items + 1 = {cfg.n_items + 1}, T), "
                                 f"got {tuple(item_tokens.shape)}")
            n_tokens = int(item_tokens.max()) + 1 if item_tokens.numel() else 1
            self.features = ItemEncoder(item_tokens, n_tokens, cfg.d_model, cfg.fusion)
        self.content = None
        if item_vectors is not None:
            if item_vectors.dim() != 2 or item_vectors.shape[0] != cfg.n_items + 1:
                raise ValueError(f"item_vectors must be (n_items + 1 = {cfg.n_items + 1}, E), "
                                 f"got {tuple(item_vectors.shape)}")
            self.content = ContentProjection(item_vectors, cfg.d_model)

    @property
    def ids_only(self) -> bool:
        """True without item features or content: lesson 05's model."""
        return self.features is None and self.content is None

    def item_table(self) -> Tensor:
        """``(N + 1, D)``: every item's representation, for the input and the scores.

        The id embeddings, or with features their fusion, then plus the projected
        content vectors (recomputed at each call, so gradients reach those parameters).
        """
        table = self.item_emb.weight  # (N+1, D)
        if self.features is not None:
            table = self.features(table)
        if self.content is not None:
            table = self.content(table)
        return table

    def positions(self, real: Tensor) -> Tensor:
        """Position ids, ``(L,)`` for ``"right"``, ``(B, L)`` for ``"left"``.

        ``"right"``: ``maxlen - L .. maxlen - 1`` whatever the padding.
        ``"left"``: the number of real items before each one (padding
        positions get 0; their states are zeroed anyway).
        """
        L, maxlen = real.shape[1], self.cfg.maxlen
        if self.cfg.positions == "right":
            return torch.arange(maxlen - L, maxlen, device=real.device)  # (L,)
        return (real.long().cumsum(1) - 1).clamp(min=0)  # (B, L)

    def forward(self, history: Tensor, return_attention: bool = False, table: Tensor | None = None):
        """``(B, L)`` history -> hidden ``(B, L, D)`` (and per-layer weights).

        With ``return_attention=True`` returns ``(hidden, attn)``, ``attn`` a
        list with one ``(B, H, L, L)`` tensor per block. ``table``: a
        precomputed :meth:`item_table` (with features; computed if None).
        """
        check_history(history, self.n_items)
        B, L = history.shape
        if L > self.cfg.maxlen:
            raise ValueError(f"history has length {L} > maxlen={self.cfg.maxlen}; "
                             f"keep the last ones: history[:, -{self.cfg.maxlen}:]")
        real = history != 0  # (B, L)
        if self.ids_only:
            items = self.item_emb(history)  # (B, L, D)
        else:
            items = F.embedding(history, self.item_table() if table is None else table)  # (B, L, D)
        x = items + self.pos_emb(self.positions(real))  # (B, L, D)
        x = self.drop(x) * real[..., None]
        mask = attention_mask(history)  # (B, 1, L, L)
        attn = []
        for block in self.blocks:
            x, w = block(x, mask, real, capture=return_attention)
            attn.append(w)
        hidden = self.ln(x) * real[..., None]  # (B, L, D)
        return (hidden, attn) if return_attention else hidden

    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        check_history(history, self.n_items, candidates)
        if self.ids_only:
            return score_last_position(self.forward(history), self.item_emb, candidates)
        table = self.item_table()  # (N+1, D) once for input and output
        h = self.forward(history, table=table)[:, -1]  # (B, D)
        return gather_candidates(h @ table.T, candidates)  # (B, N+1) or (B, C)

    def loss(self, batch) -> Tensor:
        table = self.item_table()  # (N+1, D): item_emb.weight without features
        hidden = self.forward(batch.inputs, table=table)  # (B, L, D)
        if self.cfg.loss == "ce":
            return full_softmax_loss(hidden, batch.targets, table)
        has = batch.targets > 0  # (B, L) positions with a target
        if batch.negatives is None:
            raise ValueError("loss='bce' needs batch.negatives; build batches with n_negatives > 0")
        emb = self.item_emb if self.ids_only else (lambda ids: F.embedding(ids, table))
        pos = (hidden * emb(batch.targets)).sum(-1)  # (B, L)
        neg = (hidden[:, :, None] * emb(batch.negatives)).sum(-1)  # (B, L, K)
        lp = F.binary_cross_entropy_with_logits(pos[has], torch.ones_like(pos[has]), reduction="sum")
        ln = F.binary_cross_entropy_with_logits(neg[has], torch.zeros_like(neg[has]), reduction="sum")
        return (lp + ln) / has.sum().clamp(min=1)
