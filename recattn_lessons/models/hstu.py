"""HSTU: hierarchical sequential transduction units (lesson 08).

Zhai et al. (2024), "Actions Speak Louder than Words: Trillion-Parameter
Sequential Transducers for Generative Recommendations" (ICML). Each block,
on a left-padded ``(B, L, D)`` input ``X``:

    U, V, Q, K = split(SiLU(f1(LN(X))))                  one projection
    A = SiLU(Q K^T + rab^{p,t}) / n   (masked: j <= i, real items only)
    Y = f2(Dropout(LN(A V) * U))                         gating, no FFN
    X <- X + Y

``A`` is a *pointwise* attention: no softmax, so a row does not sum to 1
and the output grows with the number of (relevant) past actions, which the
paper argues suits recommendation, where that intensity is a signal.
``rab`` is a learned bias per relative position ``i - j`` (clipped at
``max_rel_distance``) plus, when timestamps are given, a bias per log
bucket of ``|t_i - t_j|``. Multi-head: ``Q, K`` are ``H x attn_dim``,
``U, V`` are ``H x linear_dim``; heads share ``rab`` and are concatenated
before the LayerNorm. As in SASRec, item embeddings are shared with the
output (``score = h_L . e_c``) and the last position scores the next item.

What we checked in Meta's code (github.com/facebookresearch/
generative-recommenders, ``generative_recommenders/research/modeling/
sequential/hstu.py``, the code behind the paper's experiments):

- **1/n** is a constant: ``F.silu(qk_attn) / n`` with ``n`` the padded
  length ``max_sequence_len + max_output_len`` of the model, not each
  user's real length. We divide by ``maxlen``, so more left padding never
  changes an output (tested). (The newer ``ops/pytorch/
  pt_hstu_attention.py`` divides by its ``max_seq_len`` argument, which
  ``modules/dlrm_hstu.py`` sets to the longest sequence of the batch.)
- the input of each block is layer-normed (``_norm_input``), U, V, Q, K
  all pass through SiLU, ``A V`` is layer-normed over all heads at once,
  and dropout acts on ``LN(A V) * U`` *before* ``f2`` (``_o``), then the
  residual ``+ x``. We do the same.
- ``RelativePositionalBias``: one weight per offset ``j - i`` (2n - 1 of
  them), shared by the heads, one module per block; the time bias buckets
  ``ts[i + 1] - ts[j]`` as ``floor(log(max(|dt|, 1)) / 0.301)``, clamped to
  ``num_buckets = 128``.

NOTE, departures: their LayerNorms have no learned gain/shift, f1 has no
bias, items are scaled by ``sqrt(D)`` and get learned absolute positions
too, outputs and items are l2-normalised with a temperature; here the
LayerNorms and f1, f2 are affine, there are no absolute positions (rab
alone carries order, as in the paper), no scaling, and a final LayerNorm
like SASRec's. Their rab is only added when timestamps exist; our
``Batch`` has none, so the position bias is always on and the time bias is
optional (``n_time_buckets > 0`` and ``forward(..., timestamps=...)``).
``timestamps[:, i]`` is the time of query ``i``; Meta uses the *next*
item's time (the request time): pass the timestamps shifted by one for
that. Clipping at ``max_rel_distance`` is ours (default: no clipping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SequentialRecommender, check_history, full_softmax_loss, score_last_position
from .losses import gbce_beta, gbce_loss, sampled_softmax_loss

__all__ = ["HSTUConfig", "HSTU", "hstu_mask", "time_buckets"]

TIME_BUCKET_DIVISOR = 0.301  # Meta's log-bucket width for time gaps


@dataclass(frozen=True)
class HSTUConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding
    maxlen: int = 50  # history length L; also the n of A = SiLU(.) / n
    d_model: int = 64  # embedding and hidden size D
    n_blocks: int = 2  # HSTU blocks
    n_heads: int = 1  # attention heads H
    dropout: float = 0.2  # on embeddings and on LN(AV) * U
    loss: Literal["ce", "sampled", "gbce"] = "ce"  # full softmax, sampled softmax (logQ), gBCE
    n_negatives: int | None = None  # per position; None: 0 for "ce", 100 otherwise
    attn_dim: int | None = None  # per-head Q, K size (None: d_model // n_heads)
    linear_dim: int | None = None  # per-head U, V size (None: d_model // n_heads)
    max_rel_distance: int | None = None  # offsets i - j beyond it share a bias (None: maxlen - 1)
    n_time_buckets: int = 0  # > 0: time bias over log buckets of |t_i - t_j| (Meta: 128)
    gbce_t: float = 0.75  # gSASRec calibration t for loss="gbce" (their default)

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "sampled", "gbce"):
            raise ValueError(f"loss must be 'ce', 'sampled' or 'gbce', got {self.loss!r}")
        if self.n_items < 1 or self.maxlen < 1 or self.n_blocks < 0 or self.n_heads < 1:
            raise ValueError("n_items, maxlen and n_heads must be positive, n_blocks >= 0")
        if (self.attn_dim is None or self.linear_dim is None) and self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                             "(or set attn_dim and linear_dim)")
        if self.loss != "ce" and self.n_negatives is not None and self.n_negatives < 1:
            raise ValueError(f"loss={self.loss!r} trains with sampled negatives: n_negatives must be >= 1")
        if self.max_rel_distance is not None and self.max_rel_distance < 0:
            raise ValueError("max_rel_distance must be >= 0")
        if self.n_time_buckets < 0:
            raise ValueError("n_time_buckets must be >= 0")
        if not 0.0 <= self.gbce_t <= 1.0:
            raise ValueError(f"gbce_t must lie in [0, 1], got {self.gbce_t}")


def hstu_mask(history: Tensor) -> Tensor:
    """``(B, 1, L, L)`` boolean, True = may attend: ``j <= i``, both real.

    No softmax, so an empty row (a padding query) is fine: its output is 0.
    """
    L = history.shape[1]
    real = history != 0  # (B, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=history.device).tril()  # (L, L)
    return (causal & real[:, :, None] & real[:, None, :])[:, None]  # (B, 1, L, L)


def time_buckets(timestamps: Tensor, n_buckets: int) -> Tensor:
    """``(B, L)`` times -> ``(B, L, L)`` bucket ids ``floor(log(max(|t_i - t_j|, 1)) / 0.301)``."""
    dt = (timestamps[:, :, None] - timestamps[:, None, :]).abs().double()  # (B, L, L)
    return (dt.clamp(min=1).log() / TIME_BUCKET_DIVISOR).long().clamp(0, n_buckets)


class RelativeBias(nn.Module):
    """``rab^{p,t}``: a weight per offset ``min(i - j, R)``, plus one per time bucket."""

    def __init__(self, max_rel_distance: int, n_time_buckets: int) -> None:
        super().__init__()
        self.R = max_rel_distance
        self.pos = nn.Parameter(torch.randn(max_rel_distance + 1) * 0.02)  # (R + 1,)
        self.time = nn.Parameter(torch.randn(n_time_buckets + 1) * 0.02) if n_time_buckets else None

    def forward(self, L: int, timestamps: Tensor | None = None) -> Tensor:
        """``(1, L, L)`` position bias, ``(B, L, L)`` with the time bias."""
        i = torch.arange(L, device=self.pos.device)  # (L,)
        offset = (i[:, None] - i[None, :]).clamp(0, self.R)  # (L, L) future: masked anyway
        bias = self.pos[offset][None]  # (1, L, L)
        if timestamps is not None:
            bias = bias + self.time[time_buckets(timestamps, len(self.time) - 1)]  # (B, L, L)
        return bias


class Block(nn.Module):
    """One HSTU layer (module docstring)."""

    def __init__(self, cfg: HSTUConfig, attn_dim: int, linear_dim: int, max_rel: int) -> None:
        super().__init__()
        H, D = cfg.n_heads, cfg.d_model
        self.H, self.dq, self.dv, self.n = H, attn_dim, linear_dim, cfg.maxlen
        self.ln_in = nn.LayerNorm(D)
        self.f1 = nn.Linear(D, 2 * H * (linear_dim + attn_dim))  # -> U, V, Q, K
        self.rab = RelativeBias(max_rel, cfg.n_time_buckets)
        self.ln_attn = nn.LayerNorm(H * linear_dim)
        self.f2 = nn.Linear(H * linear_dim, D)
        self.drop = nn.Dropout(cfg.dropout)
        for lin in (self.f1, self.f2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, mask: Tensor, real: Tensor,
                timestamps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B, L, _ = x.shape
        H, dq, dv = self.H, self.dq, self.dv
        u, v, q, k = F.silu(self.f1(self.ln_in(x))).split([H * dv, H * dv, H * dq, H * dq], -1)
        q = q.view(B, L, H, dq).transpose(1, 2)  # (B, H, L, dq)
        k = k.view(B, L, H, dq).transpose(1, 2)  # (B, H, L, dq)
        v = v.view(B, L, H, dv).transpose(1, 2)  # (B, H, L, dv)
        bias = self.rab(L, timestamps)[:, None]  # (1 or B, 1, L, L) shared by heads
        a = F.silu(q @ k.transpose(-1, -2) + bias) / self.n  # (B, H, L, L)
        a = a * mask  # masked entries contribute exactly 0
        av = (a @ v).transpose(1, 2).reshape(B, L, H * dv)  # (B, L, H*dv)
        y = self.f2(self.drop(self.ln_attn(av) * u))  # (B, L, D)
        return (x + y) * real[..., None], a  # padding stays zero


class HSTU(SequentialRecommender):
    """HSTU with SASRec's interface; see the module docstring."""

    def __init__(self, cfg: HSTUConfig) -> None:
        super().__init__()
        self.cfg, self.n_items = cfg, cfg.n_items
        default = 0 if cfg.loss == "ce" else 100
        self.n_negatives = 0 if cfg.loss == "ce" else (cfg.n_negatives or default)
        attn_dim = cfg.attn_dim or cfg.d_model // cfg.n_heads
        linear_dim = cfg.linear_dim or cfg.d_model // cfg.n_heads
        max_rel = cfg.maxlen - 1 if cfg.max_rel_distance is None else cfg.max_rel_distance
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, attn_dim, linear_dim, max_rel) for _ in range(cfg.n_blocks))
        self.ln = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.item_emb.weight, std=cfg.d_model ** -0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def _check(self, history: Tensor, timestamps: Tensor | None) -> None:
        check_history(history, self.n_items)
        if history.shape[1] > self.cfg.maxlen:
            raise ValueError(f"history has length {history.shape[1]} > maxlen={self.cfg.maxlen}; "
                             f"keep the last ones: history[:, -{self.cfg.maxlen}:]")
        if timestamps is None:
            return
        if not self.cfg.n_time_buckets:
            raise ValueError("timestamps were given but the model has no time bias; "
                             "build it with n_time_buckets > 0 (Meta: 128)")
        if timestamps.shape != history.shape:
            raise ValueError(f"timestamps must match history {tuple(history.shape)}, "
                             f"got {tuple(timestamps.shape)}")

    def forward(self, history: Tensor, return_attention: bool = False,
                timestamps: Tensor | None = None):
        """``(B, L)`` history -> hidden ``(B, L, D)`` (and per-block weights).

        With ``return_attention=True`` returns ``(hidden, attn)``, ``attn`` a
        list with one ``(B, H, L, L)`` tensor ``A`` per block (rows do not
        sum to 1; future and padding entries are 0). ``timestamps``
        ``(B, L)``: optional times of each position, for the time bias.
        """
        self._check(history, timestamps)
        real = history != 0  # (B, L)
        x = self.drop(self.item_emb(history)) * real[..., None]  # (B, L, D)
        mask = hstu_mask(history)  # (B, 1, L, L)
        attn = []
        for block in self.blocks:
            x, a = block(x, mask, real, timestamps)
            attn.append(a)
        hidden = self.ln(x) * real[..., None]  # (B, L, D)
        return (hidden, attn) if return_attention else hidden

    def score(self, history: Tensor, candidates: Tensor | None = None,
              timestamps: Tensor | None = None) -> Tensor:
        check_history(history, self.n_items, candidates)
        return score_last_position(self.forward(history, timestamps=timestamps), self.item_emb,
                                   candidates)

    def loss(self, batch) -> Tensor:
        hidden = self.forward(batch.inputs)  # (B, L, D)
        E = self.item_emb.weight  # (N+1, D)
        if self.cfg.loss == "ce":
            return full_softmax_loss(hidden, batch.targets, E)
        if batch.negatives is None:
            raise ValueError(f"loss={self.cfg.loss!r} needs batch.negatives; "
                             "build batches with n_negatives=model.n_negatives")
        if self.cfg.loss == "sampled":  # uniform negatives: log q = -log N for every draw
            return sampled_softmax_loss(hidden, batch.targets, E, batch.negatives,
                                        logq=-math.log(self.n_items))
        beta = gbce_beta(batch.negatives.shape[-1], self.n_items, self.cfg.gbce_t)
        return gbce_loss(hidden, batch.targets, E, batch.negatives, beta)
