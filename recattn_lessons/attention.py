"""Reference attention: readable first, checked against PyTorch's own.

Introduced in lessons 01 (scaled dot-product), 02 (scoring functions) and
03 (masks and multi-head attention).

Conventions used everywhere in the course:

- Shapes are batch-first. ``q`` is ``(..., Lq, d_k)``, ``k`` is
  ``(..., Lk, d_k)``, ``v`` is ``(..., Lk, d_v)``; ``...`` is any number of
  leading batch (and head) dimensions, which must broadcast.
- Masks are boolean and **True = may attend**, as in
  ``torch.nn.functional.scaled_dot_product_attention``. A query row whose
  keys are all masked gets all-zero weights and a zero output (PyTorch's
  fused kernels may return NaN there instead).
- Attention functions are pure and return ``(output, weights)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "softmax",
    "dot_scores",
    "scaled_dot_scores",
    "MultiplicativeScore",
    "AdditiveScore",
    "masked_softmax",
    "attend",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "MultiHeadAttention",
]


# --------------------------------------------------------------------------
# Softmax
# --------------------------------------------------------------------------
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Numerically stable softmax along ``dim``.

    softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m), with m = max_j x_j.
    Subtracting the maximum changes nothing mathematically but keeps
    ``exp`` from overflowing (exp(1000.) is inf in any float type).
    A slice that is entirely ``-inf`` (every key masked) gives zeros, not NaN.
    """
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total == 0, torch.ones_like(total), total)


# --------------------------------------------------------------------------
# Shape checks: clear errors instead of a matmul failure deep inside
# --------------------------------------------------------------------------
def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_qk(q: Tensor, k: Tensor) -> None:
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(
                f"{name} has shape {_shape(t)}: attention needs at least 2 "
                f"dims (..., length, features); add one with {name}.unsqueeze(0)"
            )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q has shape {_shape(q)} and k has shape {_shape(k)}: their last "
            f"dims (d_k) must be equal, because scores = q @ k^T compares "
            f"each query with each key feature by feature"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"q has shape {_shape(q)} and k has shape {_shape(k)}: their "
            f"leading (batch, head) dims {tuple(q.shape[:-2])} and "
            f"{tuple(k.shape[:-2])} do not broadcast"
        ) from None


def _check_kv(k: Tensor, v: Tensor) -> None:
    if not isinstance(v, Tensor) or v.dim() < 2:
        raise ValueError("v must be a tensor of shape (..., Lk, d_v)")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k has shape {_shape(k)} and v has shape {_shape(v)}: they must "
            f"have the same length Lk (dim -2), one value per key"
        )


def _check_mask(mask: Tensor, scores_shape: torch.Size) -> None:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(
            f"mask must be a boolean tensor with True = may attend, got {got}; "
            f"from a 0/1 mask use mask.bool(), from an additive mask "
            f"(0 / -inf) use mask == 0"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask has shape {_shape(mask)} but the scores have shape "
            f"{_shape(torch.empty(scores_shape, device='meta'))} "
            f"(..., Lq, Lk): the mask must broadcast to it; a key-padding "
            f"mask of shape (B, Lk) becomes mask[:, None, :] (or "
            f"mask[:, None, None, :] with a head dim)"
        )


# --------------------------------------------------------------------------
# Scoring functions: (..., Lq, d) x (..., Lk, d) -> (..., Lq, Lk)
# --------------------------------------------------------------------------
def dot_scores(q: Tensor, k: Tensor) -> Tensor:
    """score(q, k) = q . k  -> ``(..., Lq, Lk)``."""
    _check_qk(q, k)
    return q @ k.transpose(-2, -1)


def scaled_dot_scores(q: Tensor, k: Tensor, scale: float | None = None) -> Tensor:
    """score(q, k) = q . k / sqrt(d_k) (or ``* scale`` if given)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return dot_scores(q, k) * scale


class MultiplicativeScore(nn.Module):
    """Luong's "general" score: score(q, k) = q^T W k with a learned W.

    q is ``(..., Lq, d_q)``, k is ``(..., Lk, d_k)``; W is ``(d_q, d_k)``, so
    queries and keys may live in spaces of different sizes.
    """

    def __init__(self, d_q: int, d_k: int) -> None:
        super().__init__()
        self.W = nn.Linear(d_k, d_q, bias=False)  # maps keys into query space

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return dot_scores(q, self.W(k))  # (..., Lq, Lk)


class AdditiveScore(nn.Module):
    """Bahdanau's score: score(q, k) = v^T tanh(W_q q + W_k k).

    q is ``(..., Lq, d_q)``, k is ``(..., Lk, d_k)``; the hidden size
    ``d_hidden`` is free. Costs O(Lq * Lk * d_hidden) memory, which is why
    dot-product scores won for long sequences.
    """

    def __init__(self, d_q: int, d_k: int, d_hidden: int) -> None:
        super().__init__()
        self.W_q = nn.Linear(d_q, d_hidden, bias=False)
        self.W_k = nn.Linear(d_k, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        for name, t in (("q", q), ("k", k)):
            if t.dim() < 2:
                raise ValueError(f"{name} has shape {_shape(t)}: need (..., L, d)")
        hq = self.W_q(q).unsqueeze(-2)  # (..., Lq, 1, h)
        hk = self.W_k(k).unsqueeze(-3)  # (..., 1, Lk, h)
        return self.v(torch.tanh(hq + hk)).squeeze(-1)  # (..., Lq, Lk)


# --------------------------------------------------------------------------
# From scores to outputs
# --------------------------------------------------------------------------
def masked_softmax(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over keys (last dim) with masked keys set to weight exactly 0.

    scores ``(..., Lq, Lk)``; mask boolean, broadcastable, True = may attend.
    Masking happens *before* the softmax (filling with -inf), so the allowed
    weights still sum to 1. Fully-masked rows get all-zero weights.
    """
    if mask is not None:
        _check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1)


def attend(scores: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Turn any scores ``(..., Lq, Lk)`` into ``(output, weights)``.

    output = softmax(scores) @ v is ``(..., Lq, d_v)``: each output row is a
    convex combination of v's rows (or zero for a fully-masked row).
    """
    if v.shape[-2] != scores.shape[-1]:
        raise ValueError(
            f"scores have shape {_shape(scores)} and v has shape {_shape(v)}: "
            f"v needs one row per key (Lk = {scores.shape[-1]})"
        )
    weights = masked_softmax(scores, mask)  # (..., Lq, Lk)
    return weights @ v, weights


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V.

    Args:
        q: ``(..., Lq, d_k)`` queries.
        k: ``(..., Lk, d_k)`` keys.
        v: ``(..., Lk, d_v)`` values.
        mask: boolean, broadcastable to ``(..., Lq, Lk)``, True = may attend.
        scale: multiplier of the scores; default ``1 / sqrt(d_k)`` (the same
            meaning as ``scale`` in PyTorch's function).

    Returns:
        ``(output, weights)`` with output ``(..., Lq, d_v)`` and weights
        ``(..., Lq, Lk)``.
    """
    _check_qk(q, k)
    _check_kv(k, v)
    return attend(scaled_dot_scores(q, k, scale), v, mask)


# --------------------------------------------------------------------------
# Masks (boolean, True = may attend)
# --------------------------------------------------------------------------
def causal_mask(L: int, device: torch.device | str | None = None) -> Tensor:
    """``(L, L)`` lower-triangular mask: position i may attend to j <= i."""
    return torch.ones(L, L, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Tensor, L: int, side: str = "right") -> Tensor:
    """``(B, L)`` mask, True at real positions, False at padding.

    ``side="right"`` puts the ``lengths[b]`` real items first (NLP style);
    ``side="left"`` puts them last, as SASRec does with item histories.
    Use it as a key mask with ``mask[:, None, :]`` -> ``(B, 1, L)``.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {_shape(lengths)}")
    if (lengths < 0).any() or (lengths > L).any():
        raise ValueError(f"every length must lie in [0, {L}], got {lengths.tolist()}")
    pos = torch.arange(L, device=lengths.device)  # (L,)
    if side == "right":
        return pos[None, :] < lengths[:, None]
    if side == "left":
        return pos[None, :] >= (L - lengths)[:, None]
    raise ValueError(f"side must be 'right' or 'left', got {side!r}")


# --------------------------------------------------------------------------
# Multi-head attention
# --------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """Multi-head attention, written out (lesson 03).

    Each of the ``n_heads`` heads attends in its own ``d_model / n_heads``
    subspace; the heads are concatenated and mixed by ``W_o``.

    forward(query ``(B, Lq, D)``, key ``(B, Lk, D)``, value ``(B, Lk, D)``,
    mask broadcastable to ``(B, H, Lq, Lk)``) -> (output ``(B, Lq, D)``,
    weights ``(B, H, Lq, Lk)`` or None when ``fused=True``).

    ``fused=True`` calls ``F.scaled_dot_product_attention`` (fast, no weights
    returned); outputs of fully-masked query rows are set to zero there too.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}: "
                f"each head gets d_model / n_heads features"
            )
        self.d_model, self.n_heads = d_model, n_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        return x.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, H, L, Dh)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        fused: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} has shape {_shape(t)}; expected (batch, length, "
                    f"d_model={self.d_model})"
                )
        B, Lq, D = query.shape
        q = self._split(self.W_q(query))  # (B, H, Lq, Dh)
        k = self._split(self.W_k(key))  # (B, H, Lk, Dh)
        v = self._split(self.W_v(value))  # (B, H, Lk, Dh)
        if fused:
            p = self.dropout.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            if mask is not None:  # zero rows with no allowed key, like the reference
                out = out.masked_fill(~mask.any(-1, keepdim=True), 0.0)
            weights = None
        else:
            weights = masked_softmax(scaled_dot_scores(q, k), mask)  # (B, H, Lq, Lk)
            out = self.dropout(weights) @ v  # (B, H, Lq, Dh)
        out = out.transpose(1, 2).reshape(B, Lq, D)  # (B, Lq, D)
        return self.W_o(out), weights

    @torch.no_grad()
    def load_from_torch(self, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of a batch-first ``nn.MultiheadAttention``."""
        if mha.embed_dim != self.d_model or mha.num_heads != self.n_heads:
            raise ValueError("nn.MultiheadAttention must have the same d_model and n_heads")
        for i, lin in enumerate((self.W_q, self.W_k, self.W_v)):
            rows = slice(i * self.d_model, (i + 1) * self.d_model)
            lin.weight.copy_(mha.in_proj_weight[rows])
            if lin.bias is not None:
                lin.bias.copy_(mha.in_proj_bias[rows])
        self.W_o.weight.copy_(mha.out_proj.weight)
        if self.W_o.bias is not None:
            self.W_o.bias.copy_(mha.out_proj.bias)
        return self
