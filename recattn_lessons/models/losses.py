"""Next-item losses for big catalogues: sampled softmax and gBCE (lesson 08).

The full softmax (:func:`~recattn_lessons.models.base.full_softmax_loss`)
scores every item at every position, ``(positions, N)`` numbers per batch.
With millions of items that is too much, so the next item ``y`` competes
with ``K`` sampled negatives instead. Shapes: hidden ``(B, L, D)``,
targets ``(B, L)`` (0 = no target), item_weight ``(N + 1, D)`` (row 0 =
padding), negatives ``(B, L, K)`` per position or ``(K,)`` shared by every
position (in-batch negatives). A negative equal to the position's target
(an *accidental hit*) or equal to 0 (padding) is left out.

**Sampled softmax with the logQ correction** (Bengio & Senecal 2008; Jean
et al. 2015; Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling"). If
negative ``k`` was drawn with probability ``q_k`` per draw, then
``sum_k exp(s_k) / (K q_k)`` over the ``K`` draws estimates, without
bias, the sum of ``exp(s_j)`` over every item ``j != y``. So

    loss = -s_y + log( exp(s_y) + sum_{k != y} exp(s_k - log q_k - log K) )

has the full softmax's denominator in expectation, and its gradient tends
to the full softmax's as ``K`` grows (tested). The positive's logit is not
corrected: it is always in the denominator exactly once. Uniform
negatives: ``log q_k = -log N``, one constant (which still matters, since
the positive is not shifted). In-batch negatives (the other positions'
targets, :func:`in_batch_negatives`) are drawn in proportion to
popularity; without the correction popular items are pushed down too
often. ``logq=None`` is the plain, uncorrected sampled softmax.

NOTE: Meta's HSTU research code (``generative_recommenders/research/
modeling/sequential/losses/sampled_softmax.py``) masks accidental hits but
applies no logQ correction, and also l2-normalises embeddings and divides
logits by a temperature (0.05); we keep raw dot products, like SASRec.

**gBCE** (Petrov & Macdonald 2023, "gSASRec: Reducing Overconfidence in
Sequential Recommendation Trained with Negative Sampling"): BCE over the
positive and its ``K`` negatives, with the positive's probability raised
to a power ``beta``:

    loss = -1 / (K + 1) * ( log sigma(s_y)^beta + sum_k log(1 - sigma(s_k)) )
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha),  alpha = K / (N - 1)

``alpha`` is the negative sampling rate and ``t`` in ``[0, 1]`` the
calibration parameter: ``t = 0`` gives ``beta = 1`` (plain BCE), ``t = 1``
gives ``beta = alpha`` (the model's sigmoid is calibrated to the full
catalogue). Since ``-log sigma(s)^beta = beta * softplus(-s)``, the loss is
computed stably as ``(beta softplus(-s_y) + sum_k softplus(s_k)) / (K+1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sampled_softmax_loss", "in_batch_negatives", "gbce_beta", "gbce_loss"]


def _targets_and_negatives(hidden: Tensor, targets: Tensor, item_weight: Tensor,
                           negatives: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Positive logits ``(M,)``, negative logits ``(M, K)``, their validity
    ``(M, K)`` and the positions ``(B, L)`` that have a target."""
    if hidden.dim() != 3 or targets.shape != hidden.shape[:2]:
        raise ValueError(f"need hidden (B, L, D) and targets (B, L), got {tuple(hidden.shape)} "
                         f"and {tuple(targets.shape)}")
    shared = negatives.dim() == 1
    if not shared and negatives.shape[:2] != targets.shape:
        raise ValueError(f"negatives must be (B, L, K) or (K,) shared, got {tuple(negatives.shape)} "
                         f"for targets {tuple(targets.shape)}")
    has = targets > 0  # (B, L)
    if not has.any():
        raise ValueError("the batch has no targets (every target is 0 = padding)")
    h, y = hidden[has], targets[has]  # (M, D), (M,)
    pos = (h * item_weight[y]).sum(-1)  # (M,)
    if shared:
        neg_ids = negatives.expand(len(y), -1)  # (M, K)
        neg = h @ item_weight[negatives].T  # (M, K)
    else:
        neg_ids = negatives[has]  # (M, K)
        neg = torch.einsum("md,mkd->mk", h, item_weight[neg_ids])  # (M, K)
    valid = (neg_ids != y[:, None]) & (neg_ids != 0)  # (M, K) no accidental hit, no padding
    return pos, neg, valid, has


def sampled_softmax_loss(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
                         logq: Tensor | float | None = None) -> Tensor:
    """Sampled softmax: the next item against ``K`` negatives (module docstring).

    Args:
        hidden: ``(B, L, D)`` hidden states; targets ``(B, L)``, 0 = none.
        item_weight: ``(N + 1, D)`` item embeddings (row 0 = padding).
        negatives: ``(B, L, K)`` per position or ``(K,)`` shared ids.
        logq: log probability of drawing each negative in one draw,
            broadcastable to ``negatives`` (a float for uniform sampling);
            None: no correction.

    Returns the mean over targets of ``-log softmax([s_y, s_k - log(K q_k)])[0]``.
    """
    pos, neg, valid, has = _targets_and_negatives(hidden, targets, item_weight, negatives)
    if logq is not None:
        K = negatives.shape[-1]
        lq = torch.as_tensor(logq, dtype=neg.dtype, device=neg.device)
        if lq.dim() == negatives.dim() and negatives.dim() == 3:
            lq = lq[has]  # (M, K)
        neg = neg - lq - math.log(K)  # (M, K) importance weights exp(s) / (K q)
    neg = neg.masked_fill(~valid, float("-inf"))  # hits and padding drop out
    logits = torch.cat([pos[:, None], neg], 1)  # (M, 1 + K) target first
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32
    return torch.logsumexp(logits, 1).mean() - logits[:, 0].mean()


def in_batch_negatives(targets: Tensor, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """The batch's targets as shared negatives, with their log probabilities.

    Drawing one target of the batch at random picks item ``j`` with
    probability ``q_j = count_j / M`` (``M`` real targets): popular items
    come up more often. Returns ``negatives`` ``(M,)`` (every target
    occurrence, repeats included) and ``logq`` ``(M,)`` = ``log q_j``, for
    :func:`sampled_softmax_loss`. With them the correction ``log(M q_j) =
    log count_j`` makes each distinct item count once in the denominator.
    """
    items = targets[targets > 0]  # (M,)
    if items.numel() == 0:
        raise ValueError("the batch has no targets (every target is 0 = padding)")
    counts = torch.bincount(items)  # (max id + 1,)
    q = counts[items].to(dtype) / len(items)  # (M,)
    return items, q.log()


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``, ``alpha = K / (N - 1)``.

    ``alpha`` is capped at 1 (more draws than other items, with
    replacement, gives plain BCE rather than ``beta > 1``).
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"the gBCE calibration t must lie in [0, 1], got {t}")
    if n_negatives < 1 or n_items < 2:
        raise ValueError(f"need n_negatives >= 1 and n_items >= 2, got {n_negatives}, {n_items}")
    alpha = min(1.0, n_negatives / (n_items - 1))
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def gbce_loss(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
              beta: float) -> Tensor:
    """Generalised BCE (gSASRec), mean over targets (module docstring).

    Each position's loss is ``(beta softplus(-s_y) + sum_k softplus(s_k))
    / (1 + K)``, ``K`` its valid negatives (hits and padding left out);
    ``beta = 1`` is the mean BCE over the positive and its negatives.
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    pos, neg, valid, _ = _targets_and_negatives(hidden, targets, item_weight, negatives)
    dtype = torch.promote_types(pos.dtype, torch.float32)  # bf16 -> fp32
    pos, neg = pos.to(dtype), neg.to(dtype)
    terms = beta * F.softplus(-pos) + (F.softplus(neg) * valid).sum(1)  # (M,)
    return (terms / (1 + valid.sum(1))).mean()
