"""Positional information for self-attention (introduced in 03_masks_and_multihead).

Self-attention without positions is permutation-equivariant: it sees a history
as a set. Three standard ways to give it order, as small pure functions:

- absolute, fixed: :func:`sinusoidal_positions` (Vaswani et al. 2017), a
  ``(L, D)`` table added to the item embeddings;
- absolute, learned: an ``nn.Embedding(L, D)`` trained with the model (SASRec,
  BERT4Rec); nothing to write here beyond the embedding itself;
- relative: a bias on the scores that depends only on the offset ``i - j``
  (:func:`relative_distances`, :func:`linear_distance_bias`, ALiBi-style,
  Press et al. 2022) or on the time between two interactions
  (:func:`time_intervals`, as in TiSASRec, Li et al. 2020).

Shapes: ``L`` positions, ``D`` features.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sinusoidal_positions", "relative_distances", "linear_distance_bias",
           "time_intervals"]


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed sinusoidal table of the Transformer paper, shape ``(length, dim)``.

    ``P[i, 2c] = sin(i / base^(2c/dim))`` and ``P[i, 2c+1] = cos(i / base^(2c/dim))``.
    Each pair of columns is a rotation at its own frequency, so ``P[i] . P[j]``
    depends only on ``i - j``.
    """
    if length < 1 or dim < 2 or dim % 2:
        raise ValueError(f"need length >= 1 and an even dim >= 2, got length={length}, "
                         f"dim={dim}: sin/cos come in pairs, so pass an even dim")
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)  # (L, D/2)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def relative_distances(length: int) -> Tensor:
    """``R[i, j] = i - j`` (how far back key ``j`` is from query ``i``), shape ``(L, L)``."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    idx = torch.arange(length)
    return idx[:, None] - idx[None, :]


def linear_distance_bias(length: int, slope: float) -> Tensor:
    """ALiBi-style score bias ``-slope * |i - j|``, shape ``(L, L)``, float64.

    Added to the scores before the softmax it makes far-away keys less likely,
    with no position embedding at all; ``slope = 0`` switches it off.
    """
    if slope < 0:
        raise ValueError(f"slope must be >= 0 (a penalty on distance), got {slope}")
    return -slope * relative_distances(length).abs().to(torch.float64)


def time_intervals(timestamps: Tensor, clip: int) -> Tensor:
    """TiSASRec's clipped time-interval matrix for one history, shape ``(L, L)``.

    ``|t_i - t_j|`` divided by the history's smallest non-zero gap (so the
    unit is "this user's shortest pause"), rounded down and clipped at
    ``clip``; the model then learns one embedding per interval value
    ``0..clip``. A history whose timestamps are all equal gives all zeros.
    """
    t = torch.as_tensor(timestamps)
    if t.ndim != 1:
        raise ValueError(f"timestamps must be 1-D (one history), got shape {tuple(t.shape)}")
    if clip < 1:
        raise ValueError(f"clip must be >= 1, got {clip}")
    t = t.to(torch.float64)
    gaps = (t[:, None] - t[None, :]).abs()  # (L, L)
    nonzero = gaps[gaps > 0]
    if nonzero.numel() == 0:
        return torch.zeros_like(gaps, dtype=torch.long)
    unit = nonzero.min()
    return torch.floor(gaps / unit).clamp(max=clip).to(torch.long)
