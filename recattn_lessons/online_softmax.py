"""Attention without the (Lq, Lk) matrix: online softmax and its neighbours.

Lesson 07 (cost and serving). The reference ``attention.py`` builds the whole
score matrix, ``O(Lq * Lk)`` memory, so that lessons can plot the weights.
Fused kernels (FlashAttention, PyTorch's SDPA backends) never build it: they
walk over the keys in blocks and keep three running quantities per query.
This module writes that walk out by hand, then two ways to change the cost:

- ``online_softmax``: the softmax itself, one block of columns at a time.
- ``tiled_attention``: the same idea inside attention (exact).
- ``linear_attention``: a *different* model, kernelised attention, O(L).
- ``local_window_attention``: exact softmax attention restricted to a band.

Shapes and masks follow ``attention.py``: batch-first ``(..., L, D)``,
boolean masks with True = may attend, fully-masked rows give zeros.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from recattn_lessons.attention import _check_kv, _check_mask, _check_qk, scaled_dot_product_attention

__all__ = [
    "online_softmax",
    "tiled_attention",
    "linear_attention",
    "band_mask",
    "local_window_attention",
]


def _check_block(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (columns per step), got {value!r}; "
                         f"use e.g. {name}=64, or {name}=1 for one column at a time")


def _safe(m: Tensor) -> Tensor:
    """The running max, with -inf (nothing seen yet) replaced by 0 so exp(x - m) stays 0, not NaN."""
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


# --------------------------------------------------------------------------
# Online softmax (Milakov and Gimelshein, 2018)
# --------------------------------------------------------------------------
# After a block of columns x_b, with running max m and running sum l:
#     m' = max(m, max_j x_bj)
#     l' = l * exp(m - m') + sum_j exp(x_bj - m')
# so l' = sum over all columns seen so far of exp(x_j - m'): the old sum is
# *rescaled* whenever the max grows. At the end softmax(x)_j = exp(x_j - m) / l.
def online_softmax(x: Tensor, block_size: int = 64) -> Tensor:
    """Softmax over the last dim, reading ``block_size`` columns at a time (Lesson 07).

    The normaliser (max and sum) comes from a single sweep over the columns
    instead of two (max first, then the sum): this is the recurrence that
    lets fused attention kernels stream keys. Writing the outputs needs the
    final (m, l), hence a second elementwise step; ``tiled_attention`` avoids
    it by accumulating the output in the same sweep.

    ``-inf`` entries get weight exactly 0; a row that is entirely ``-inf``
    gets all-zero weights (the course convention; ``torch.softmax`` gives NaN).
    """
    if not isinstance(x, Tensor) or x.dim() < 1 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor with at least 1 dim; "
                         "convert integer scores with x.double()")
    _check_block("block_size", block_size)
    L = x.shape[-1]
    m = x.new_full(x.shape[:-1] + (1,), float("-inf"))  # (..., 1) running max
    l = x.new_zeros(x.shape[:-1] + (1,))  # (..., 1) running sum of exp(x - m)
    for start in range(0, L, block_size):
        xb = x[..., start:start + block_size]  # (..., b)
        m_new = torch.maximum(m, xb.amax(dim=-1, keepdim=True))
        l = l * torch.exp(m - _safe(m_new)) + torch.exp(xb - _safe(m_new)).sum(-1, keepdim=True)
        m = m_new
    return torch.exp(x - _safe(m)) / torch.where(l == 0, torch.ones_like(l), l)


# --------------------------------------------------------------------------
# Tiled (flash-style) attention
# --------------------------------------------------------------------------
# For each key block K_b, V_b and every query, with s = q K_b^T * scale:
#     m'   = max(m, max_j s_j)
#     l'   = l   * exp(m - m') + sum_j exp(s_j - m')
#     acc' = acc * exp(m - m') + sum_j exp(s_j - m') v_j
# and the output is acc / l. Only a (Lq, block_size) slice of scores exists.
def tiled_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    block_size: int = 64,
    scale: float | None = None,
) -> Tensor:
    """softmax(q k^T * scale) v, computed over key blocks (Lesson 07).

    Args:
        q: ``(..., Lq, d_k)``; k: ``(..., Lk, d_k)``; v: ``(..., Lk, d_v)``.
        mask: boolean, broadcastable to ``(..., Lq, Lk)``, True = may attend.
        block_size: keys per step; any value >= 1 gives the same output.
        scale: default ``1 / sqrt(d_k)``.

    Returns:
        The output ``(..., Lq, d_v)`` only. The weights are never stored, which
        is the whole point: storing them is the ``O(Lq * Lk)`` memory this
        algorithm removes (and the reason fused kernels return no weights).
        For weights to plot, call ``attention.scaled_dot_product_attention``.

    Memory is ``O(Lq * (block_size + d_v))`` beyond the inputs. Real kernels
    also split the queries into blocks, one per GPU thread block, and keep
    each tile in fast on-chip memory; in Python the loop shows the
    arithmetic, not the speed (see ``benchmarks/attention_cost.py``).
    """
    _check_qk(q, k)
    _check_kv(k, v)
    _check_block("block_size", block_size)
    Lq, Lk = q.shape[-2], k.shape[-2]
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if mask is not None:
        _check_mask(mask, batch + (Lq, Lk))
        mask = mask.expand(*mask.shape[:-1], Lk)  # a view: slicing keys needs a real Lk dim
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    m = q.new_full(batch + (Lq, 1), float("-inf"))  # (..., Lq, 1) running max
    l = q.new_zeros(batch + (Lq, 1))  # (..., Lq, 1) running denominator
    acc = q.new_zeros(batch + (Lq, v.shape[-1]))  # (..., Lq, d_v) running numerator
    for start in range(0, Lk, block_size):
        stop = start + block_size
        s = (q @ k[..., start:stop, :].transpose(-2, -1)) * scale  # (..., Lq, b)
        if mask is not None:
            s = s.masked_fill(~mask[..., start:stop], float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(m - _safe(m_new))  # (..., Lq, 1) rescales the old sums
        p = torch.exp(s - _safe(m_new))  # (..., Lq, b) unnormalised weights
        l = l * alpha + p.sum(-1, keepdim=True)
        acc = acc * alpha + p @ v[..., start:stop, :]  # (..., Lq, d_v)
        m = m_new
    return acc / torch.where(l == 0, torch.ones_like(l), l)  # fully-masked rows: 0


# --------------------------------------------------------------------------
# Linear attention (Katharopoulos et al., 2020, "Transformers are RNNs")
# --------------------------------------------------------------------------
# Replace exp(q . k) by phi(q) . phi(k) with phi(x) = elu(x) + 1 > 0. Then
#     out_i = phi(q_i)^T [sum_j phi(k_j) v_j^T] / (phi(q_i)^T [sum_j phi(k_j)] + eps)
# and both brackets are shared by all queries: O(L d_k d_v), never (Lq, Lk).
# Causal: the brackets become prefix sums over j <= i (the "RNN" view).
def _phi(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


def linear_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False,
                     eps: float = 1e-6) -> Tensor:
    """Kernelised attention with phi = elu + 1 (Lesson 07). Returns ``(..., Lq, d_v)``.

    NOTE: this is *not* softmax attention and does not approximate it to any
    tolerance: it is another model whose similarity is phi(q) . phi(k), so a
    model must be trained with it. What it keeps: each output is a convex
    combination of the (allowed) values. What it loses: arbitrary masks
    (only ``causal``, via prefix sums) and the sharpness of exp. There is no
    1 / sqrt(d_k) scale, as in the paper; ``eps`` (the paper code's 1e-6)
    guards the denominator.

    The causal form materialises the prefix sums, ``(..., L, d_k, d_v)``:
    O(L) in length but d_k * d_v per position; real kernels go chunk by chunk.
    """
    _check_qk(q, k)
    _check_kv(k, v)
    fq, fk = _phi(q), _phi(k)  # (..., Lq, d_k), (..., Lk, d_k)
    if not causal:
        kv = fk.transpose(-2, -1) @ v  # (..., d_k, d_v)
        z = fk.sum(dim=-2, keepdim=True)  # (..., 1, d_k)
        return (fq @ kv) / ((fq * z).sum(-1, keepdim=True) + eps)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal linear attention needs Lq == Lk (query i sees keys j <= i), "
                         f"got Lq={q.shape[-2]} and Lk={k.shape[-2]}; use causal=False")
    kv = torch.cumsum(fk.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # (..., L, d_k, d_v)
    z = torch.cumsum(fk, dim=-2)  # (..., L, d_k)
    num = (fq.unsqueeze(-2) @ kv).squeeze(-2)  # (..., L, d_v)
    return num / ((fq * z).sum(-1, keepdim=True) + eps)


# --------------------------------------------------------------------------
# Local (sliding-window) attention
# --------------------------------------------------------------------------
def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be an integer >= 0 (positions seen on each side), "
                         f"got {window!r}; window=0 lets each position see only itself")


def _band(rows: Tensor, cols: Tensor, window: int, causal: bool) -> Tensor:
    offset = rows[:, None] - cols[None, :]  # (len(rows), len(cols)): i - j
    allowed = offset.abs() <= window
    return allowed & (offset >= 0) if causal else allowed


def band_mask(L: int, window: int, causal: bool = False,
              device: torch.device | str | None = None) -> Tensor:
    """``(L, L)`` mask (Lesson 07): query i may attend to key j iff |i - j| <= window
    (and j <= i if ``causal``). ``window=0`` lets each position see itself only."""
    _check_window(window)
    i = torch.arange(L, device=device)
    return _band(i, i, window, causal)


def local_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int,
                           causal: bool = False, block_size: int = 64) -> Tensor:
    """Exact softmax attention over the band |i - j| <= window (Lesson 07).

    Equal to ``attention.scaled_dot_product_attention(q, k, v,
    band_mask(L, window, causal))[0]``; that call shows the weights (a band)
    but still builds all L x L scores, so the mask alone saves nothing. Here
    the queries go ``block_size`` at a time and each block scores only the
    keys its band can reach: ``O(L * (block_size + 2 * window))`` time and
    memory. The model changes (no position sees beyond ``window``; stacking
    n layers widens the reach to n * window); the arithmetic is exact.
    Returns the output ``(..., L, d_v)``; q, k, v share the length L.
    """
    _check_qk(q, k)
    _check_kv(k, v)
    _check_block("block_size", block_size)
    _check_window(window)
    L = q.shape[-2]
    if k.shape[-2] != L:
        raise ValueError(f"local window attention compares positions of one sequence: q has "
                         f"length {L} and k has length {k.shape[-2]}; give them the same length")
    pos = torch.arange(L, device=q.device)  # (L,)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    outs = [q.new_zeros(batch + (0, v.shape[-1]))]  # so that L = 0 gives an empty output
    for start in range(0, L, block_size):
        stop = min(start + block_size, L)
        lo, hi = max(0, start - window), stop if causal else min(L, stop + window)
        block_mask = _band(pos[start:stop], pos[lo:hi], window, causal)  # (b, hi - lo)
        out, _ = scaled_dot_product_attention(
            q[..., start:stop, :], k[..., lo:hi, :], v[..., lo:hi, :], block_mask)
        outs.append(out)  # (..., stop - start, d_v)
    return torch.cat(outs, dim=-2)  # (..., L, d_v)
