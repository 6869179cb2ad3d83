"""DIN-style target attention (lessons 04 and 05).

Zhou et al. (2018), Deep Interest Network: the *candidate* item is the
query and the user's history the keys, so the same history gives a
different user vector for every candidate:

    w_j = softmax_j a(h_j, c)            over the real history items
    u_c = sum_j w_j h_j                  (pooled interest, D)
    score(c) = u_c . e_c + b_c

Two attention scores ``a`` to compare:

- ``"mlp"`` - DIN's activation unit, ``v^T ReLU(W [h, c, h - c, h * c] + b)``.
  The first layer is one ``Linear(4D, A)`` (``A = att_hidden`` hidden
  units, lesson 04's name: ``K`` names the keys); we apply it in pieces,
  ``(W1 + W3) h + (W2 - W3) c + W4 (h * c)``, which is the same number but
  never builds the ``(B, C, L, 4D)`` concatenation.
- ``"dot"`` - scaled dot product of projected candidate and history,
  ``(W_q c) . (W_k h) / sqrt(d)`` (the course's reference attention).

NOTE, departures from the paper: we normalise the weights with a softmax
(DIN keeps them unnormalised to preserve interest intensity) so lessons can
read them as shares of attention, the score is a dot product plus item bias
instead of an MLP over ``[u, c, profile]`` (no user or context features
here), and we use ReLU instead of Dice. Training uses every position of the
SASRec windows, attending over the window's items up to that position.

Two losses (``loss``):

- ``"ce"`` (the default of ``run()``, the CLI and the benchmark, issue 12): the **full softmax** over every item, the
  loss SASRec, GRU4Rec and mean-pool train with, so the benchmark compares
  architectures, not losses. Every item is a candidate at every position.
  Because ``a(h_j, c)`` does not depend on the position, the causal softmax
  is a running sum over ``j``: with ``e_jc = exp(a(h_j, c) - m_c)``,
  ``score_t(c) = cumsum_j(e_jc h_j . e_c) / cumsum_j(e_jc) + b_c``, so a
  batch needs ``(B, L, N+1)`` numbers, never ``(B, L, N+1, L)``. Cheap
  for ``"dot"``; for ``"mlp"`` the activation unit runs on every (history
  item, catalogue item) pair, far costlier.
- ``"sampled"`` (the class default, used by lesson 04): the position's next item competes with ``n_negatives``
  sampled unseen items (sampled softmax), as the course's first DIN did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import masked_softmax, scaled_dot_scores
from .base import SequentialRecommender, check_history

__all__ = ["DINConfig", "DIN"]


@dataclass(frozen=True)
class DINConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding
    maxlen: int = 50  # history length L
    d_model: int = 64  # embedding size D
    attention: Literal["mlp", "dot"] = "mlp"  # DIN's activation unit or scaled dot
    att_hidden: int = 16  # hidden units K of the activation unit (cost ~ K)
    dropout: float = 0.2  # on history embeddings
    # "ce": full softmax, like the other models; the training CLI / run() /
    # benchmark pass TrainConfig.loss = "ce". The class default stays
    # "sampled" so lesson 04's hand-rolled loop keeps its cheap loss.
    loss: Literal["ce", "sampled"] = "sampled"
    n_negatives: int = 16  # sampled negatives per position (loss="sampled" only)
    chunk_elements: int = 1 << 24  # memory bound when scoring many candidates

    def __post_init__(self) -> None:
        if self.attention not in ("mlp", "dot"):
            raise ValueError(f"attention must be 'mlp' or 'dot', got {self.attention!r}")
        if self.loss not in ("ce", "sampled"):
            raise ValueError(f"DIN's loss must be 'ce' (full softmax) or 'sampled', got {self.loss!r}")
        if self.loss == "sampled" and self.n_negatives < 1:
            raise ValueError("loss='sampled' trains with sampled negatives: n_negatives must be >= 1")


class DIN(SequentialRecommender):
    """Candidate-to-history attention; see the module docstring."""

    def __init__(self, cfg: DINConfig) -> None:
        super().__init__()
        self.cfg, self.n_items = cfg, cfg.n_items
        self.n_negatives = cfg.n_negatives if cfg.loss == "sampled" else 0  # the loop samples these
        D, K = cfg.d_model, cfg.att_hidden
        self.item_emb = nn.Embedding(cfg.n_items + 1, D, padding_idx=0)
        self.item_bias = nn.Embedding(cfg.n_items + 1, 1, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=D ** -0.5)
        nn.init.zeros_(self.item_bias.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.attention == "mlp":
            self.unit = nn.Linear(4 * D, K)  # on [h, c, h - c, h * c]
            self.v = nn.Linear(K, 1, bias=False)
        else:
            self.W_q = nn.Linear(D, D, bias=False)
            self.W_k = nn.Linear(D, D, bias=False)

    def attention_scores(self, h: Tensor, c: Tensor) -> Tensor:
        """history ``(B, L, D)``, candidates ``(B, Q, D)`` -> ``(B, Q, L)``."""
        if self.cfg.attention == "dot":
            return scaled_dot_scores(self.W_q(c), self.W_k(h))  # (B, Q, L)
        B, L, D = h.shape
        Q = c.shape[1]
        W1, W2, W3, W4 = self.unit.weight.split(D, dim=1)  # each (K, D)
        K = W1.shape[0]
        hh = h @ (W1 + W3).T  # (B, L, K)
        cc = c @ (W2 - W3).T + self.unit.bias  # (B, Q, K)
        hw = (h[:, :, None, :] * W4).reshape(B, L * K, D)  # (B, L*K, D)
        a = (c @ hw.transpose(1, 2)).view(B, Q, L, K)  # (B, Q, L, K): W4 (h * c)
        if torch.is_grad_enabled():
            a = torch.relu(a + hh[:, None] + cc[:, :, None])
        else:  # evaluation: same numbers, no extra (B, Q, L, K) copies
            a.add_(hh[:, None]).add_(cc[:, :, None]).relu_()
        return (a @ self.v.weight.T).squeeze(-1)  # (B, Q, L)

    def attend(self, history: Tensor, cand: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Scores ``(B, Q)`` and weights ``(B, Q, L)`` of candidates ``(B, Q)``."""
        h = self.drop(self.item_emb(history))  # (B, L, D)
        c = self.item_emb(cand)  # (B, Q, D)
        w = masked_softmax(self.attention_scores(h, c), mask)  # (B, Q, L)
        u = w @ h  # (B, Q, D) pooled interest per candidate
        return (u * c).sum(-1) + self.item_bias(cand).squeeze(-1), w

    def score(self, history: Tensor, candidates: Tensor | None = None,
              return_attention: bool = False):
        """``(B, C)`` scores (``(B, N+1)`` when candidates is None).

        With ``return_attention=True`` returns ``(scores, weights)``, weights
        ``(B, C, L)``: how much each candidate attends to each history item.
        """
        check_history(history, self.n_items, candidates)
        B, L = history.shape
        if candidates is None:
            candidates = torch.arange(self.n_items + 1, device=history.device).expand(B, -1)
        real = (history != 0)[:, None, :]  # (B, 1, L)
        per = max(1, self.cfg.chunk_elements // max(1, B * L * self.cfg.att_hidden))
        scores, weights = [], []
        for lo in range(0, candidates.shape[1], per):
            cand = candidates[:, lo:lo + per]  # (B, c)
            s, w = self.attend(history, cand, real.expand(-1, cand.shape[1], -1))
            scores.append(s)
            if return_attention:
                weights.append(w)
        scores = torch.cat(scores, 1)  # (B, C)
        return (scores, torch.cat(weights, 1)) if return_attention else scores

    def all_item_scores(self, h: Tensor) -> Tensor:
        """``(B, L, N+1)`` attention scores ``a(h_j, c)`` of every item ``c``."""
        E = self.item_emb.weight  # (N+1, D)
        B, L, D = h.shape
        if self.cfg.attention == "dot":
            return (self.W_k(h) @ self.W_q(E).T) / D ** 0.5  # (B, L, N+1)
        per = max(1, self.cfg.chunk_elements // max(1, B * L * self.cfg.att_hidden))
        parts = [self.attention_scores(h, E[lo:lo + per].expand(B, -1, -1)).transpose(1, 2)
                 for lo in range(0, E.shape[0], per)]  # each (B, L, c)
        return torch.cat(parts, 2)

    def causal_logits(self, x: Tensor) -> Tensor:
        """``(B, L, N+1)``: score of every item at every position ``t``,
        attending over the real items ``x_0..x_t`` (the running-sum softmax)."""
        h = self.drop(self.item_emb(x))  # (B, L, D)
        dt = torch.promote_types(h.dtype, torch.float32)  # bf16 -> fp32, fp64 stays
        a = self.all_item_scores(h).to(dt)  # (B, L, N+1)
        real = (x != 0)[:, :, None]  # (B, L, 1)
        a = a.masked_fill(~real, float("-inf"))
        m = a.amax(dim=1, keepdim=True).detach()  # (B, 1, N+1) per-candidate max
        e = torch.exp(a - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))  # 0 at padding
        pair = (h @ self.item_emb.weight.T).to(dt)  # (B, L, N+1): h_j . e_c
        num, den = (e * pair).cumsum(1), e.cumsum(1)  # (B, L, N+1)
        return num / den.clamp_min(1e-30) + self.item_bias.weight.T.to(dt)  # (B, L, N+1)

    def loss(self, batch) -> Tensor:
        if self.cfg.loss == "ce":
            y = batch.targets  # (B, L)
            has = y > 0
            if not has.any():
                raise ValueError("the batch has no targets (every target is 0 = padding)")
            logits = self.causal_logits(batch.inputs)[has][:, 1:]  # (M, N): no padding column
            return F.cross_entropy(logits, y[has] - 1)
        if batch.negatives is None:
            raise ValueError("DIN needs batch.negatives; build batches with n_negatives > 0")
        x, y = batch.inputs, batch.targets  # (B, L)
        B, L = x.shape
        cand = torch.cat([y[..., None], batch.negatives], -1)  # (B, L, 1+K) target first
        n_c = cand.shape[-1]
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()  # (Lq, Lk)
        mask = causal[None] & (x != 0)[:, None, :]  # (B, L, L): keys up to t
        mask = mask[:, :, None, :].expand(-1, -1, n_c, -1).reshape(B, L * n_c, L)
        s, _ = self.attend(x, cand.reshape(B, L * n_c), mask)  # (B, L*(1+K))
        s = s.view(B, L, n_c)[y > 0]  # (M, 1+K)
        s = s.to(torch.promote_types(s.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
        return F.cross_entropy(s, torch.zeros(len(s), dtype=torch.long, device=s.device))
