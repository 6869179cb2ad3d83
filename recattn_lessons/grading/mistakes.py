"""The catalogue of known mistakes, each written as the buggy code itself.

Introduced with the interview exercises. A diagnosis is only made when the
learner's output equals one of these variants on the same inputs, so a
named bug is a measured fact, not a guess.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recattn_lessons.grading.core import Mistake

__all__ = ["ATTENTION", "SOFTMAX", "HIT_RATE", "NDCG", "naive_softmax", "nan_softmax"]

_NEG = float("-inf")


def naive_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum exp(x): overflows to inf/inf = NaN once x is large."""
    e = torch.exp(x)
    return e / e.sum(dim, keepdim=True)


def nan_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Fill with -inf, then plain softmax: NaN on a fully-masked row."""
    if mask is not None:
        scores = scores.masked_fill(~mask, _NEG)
    return torch.softmax(scores, dim=-1)


def _soft(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    from recattn_lessons.attention import softmax

    if mask is not None:
        scores = scores.masked_fill(~mask, _NEG)
    return softmax(scores, dim=dim)


def weights_variant(scores: Tensor, mask: Tensor | None, soft: str = "ok",
                    dim: int = -1) -> Tensor:
    """Attention weights from ``scores`` (..., Lq, Lk): right (``"ok"``) or with one
    catalogued softmax/mask mistake. Shared by every exercise's buggy variants."""
    if soft == "after":  # mask applied to the weights, after the softmax
        return torch.softmax(scores, dim=-1) * (mask if mask is not None else 1)
    if soft == "inverted":  # True read as "blocked"
        return _soft(scores, ~mask if mask is not None else None)
    if soft == "axis":  # normalized over the queries (or the batch), not the keys
        return _soft(scores, mask, dim=-2)
    if soft == "naive":  # exp without subtracting the max: overflows
        return naive_softmax(scores if mask is None else scores.masked_fill(~mask, _NEG))
    if soft == "nan":  # fully-masked rows become NaN
        return nan_softmax(scores, mask)
    if soft == "big_negative":  # -1e9 fill: fully-masked rows become uniform
        return torch.softmax(scores if mask is None else scores.masked_fill(~mask, -1e9), dim=-1)
    if soft == "nomask":  # mask ignored
        return torch.softmax(scores, dim=-1)
    if soft == "none":  # no softmax at all
        return scores * mask
    return _soft(scores, mask, dim=dim)


# --------------------------------------------------------------------------
# Scaled dot-product attention: variants of fn(q, k, v, mask) -> (out, w)
# --------------------------------------------------------------------------
def _sdpa(q, k, v, mask=None, *, scale="dk", kT=True, value="v", soft="ok", axis=-1):
    d = {"dk": q.shape[-1], "dv": v.shape[-1], "none": 1.0}
    s = q @ (k.transpose(-2, -1) if kT else k)
    s = s / (k.shape[-1] if scale == "dk_noroot" else math.sqrt(d[scale]))
    w = weights_variant(s, mask, soft, dim=axis)
    return w @ (k if value == "k" else v), w


def _m(name: str, explain: str, **kw) -> Mistake:
    return Mistake(name, explain, lambda q, k, v, mask=None: _sdpa(q, k, v, mask, **kw))


ATTENTION = (
    _m("missing scaling", "Your weights match softmax(Q K^T) without the 1/sqrt(d_k) "
       "scaling; divide the scores by sqrt(d_k) = sqrt(q.shape[-1]).", scale="none"),
    _m("scaled by sqrt(d_v) instead of sqrt(d_k)", "The scale comes from the size of the "
       "dot product, d_k = q.shape[-1], not the value size v.shape[-1].", scale="dv"),
    _m("scaled by d_k instead of sqrt(d_k)", "Divide by the square root of d_k; the "
       "dot product's standard deviation grows like sqrt(d_k).", scale="dk_noroot"),
    _m("softmax over the wrong axis", "Your weights are normalized over the queries "
       "(dim=-2); each query's weights over the keys must sum to 1, so use dim=-1.",
       axis=-2),
    _m("mask applied after the softmax", "Zeroing weights after the softmax leaves rows "
       "that no longer sum to 1; fill masked scores with -inf *before* the softmax.",
       soft="after"),
    _m("mask with inverted polarity", "You blocked the keys marked True. In this course "
       "True = may attend: use scores.masked_fill(~mask, float('-inf')).", soft="inverted"),
    _m("K not transposed", "The scores are q @ k, not q @ k.transpose(-2, -1); the "
       "shapes only lined up because Lk == d_k here.", kT=False),
    _m("K used in place of V", "The output is weights @ k; the weights must mix the "
       "values: output = weights @ v.", value="k"),
    _m("NaN for a fully-masked row", "A query whose keys are all masked gets softmax of "
       "all -inf = NaN. This course returns all-zero weights and a zero output there: "
       "e.g. weights.nan_to_num(0.0), or zero the rows where mask.any(-1) is False.",
       soft="nan"),
    _m("uniform weights on a fully-masked row", "Filling with a large negative number "
       "(e.g. -1e9) spreads a fully-masked row's weight evenly over keys it may not see; "
       "such rows must get all-zero weights and a zero output.", soft="big_negative"),
    _m("softmax that overflows on large logits", "exp(1000.) is inf and inf/inf is NaN; "
       "subtract each row's maximum before exp (or call torch.softmax).", soft="naive"),
)

# --------------------------------------------------------------------------
# Softmax: variants of fn(x, dim=-1)
# --------------------------------------------------------------------------
SOFTMAX = (
    Mistake("softmax that overflows on large logits", "exp(x) overflows to inf for "
            "x > ~88 (float32) or ~709 (float64) and inf/inf = NaN; subtract "
            "x.amax(dim, keepdim=True) first.", naive_softmax),
    Mistake("the dim argument is ignored", "Your function always normalizes the last "
            "axis; use the dim it is given.",
            lambda x, dim=-1: torch.softmax(x, dim=-1)),
    Mistake("softmax over the wrong axis", "You normalized over dim 0; use dim.",
            lambda x, dim=-1: torch.softmax(x, dim=0)),
    Mistake("subtracted the global maximum", "x - x.max() uses one maximum for the whole "
            "tensor, so a slice far below it underflows to 0/0 = NaN; subtract the "
            "maximum along dim: x.amax(dim, keepdim=True).",
            lambda x, dim=-1: naive_softmax(x - x.max(), dim)),
    Mistake("maximum taken without keepdim", "x.amax(dim) drops the axis, so the "
            "subtraction broadcasts against the wrong axis; use keepdim=True.",
            lambda x, dim=-1: naive_softmax(x - x.amax(dim), dim)),
)

# --------------------------------------------------------------------------
# Ranking metrics: variants of fn(ranks, k) with 0-based ranks
# --------------------------------------------------------------------------
def _r(ranks: Tensor) -> Tensor:
    return torch.as_tensor(ranks).double()


HIT_RATE = (
    Mistake("off by one in the rank (rank <= k)", "Ranks are 0-based: the top K are "
            "ranks 0..K-1, so a hit is rank < k.", lambda r, k: (_r(r) <= k).double().mean().item()),
    Mistake("off by one in the rank (rank + 1 < k)", "Ranks are already 0-based; "
            "rank + 1 < k drops position K. A hit is rank < k.",
            lambda r, k: (_r(r) + 1 < k).double().mean().item()),
    Mistake("count instead of mean", "HR@K is the share of users with a hit: take the "
            "mean, not the sum.", lambda r, k: (_r(r) < k).double().sum().item()),
)


def _ndcg(r, k, shift=2.0, log=torch.log2, cut="lt"):
    r = _r(r)
    gain = 1.0 / log(r + shift)
    keep = {"lt": r < k, "le": r <= k, "none": torch.ones_like(r, dtype=torch.bool)}[cut]
    return torch.where(keep, gain, torch.zeros_like(gain)).mean().item()


NDCG = (
    Mistake("off by one in the log (log2(rank + 1))", "With 0-based ranks the discount "
            "is 1 / log2(rank + 2): the top item (rank 0) gets 1 / log2(2) = 1, while "
            "log2(0 + 1) = 0 divides by zero.", lambda r, k: _ndcg(r, k, shift=1.0)),
    Mistake("off by one in the rank (rank <= k)", "Only ranks 0..K-1 count: keep the "
            "gain where rank < k.", lambda r, k: _ndcg(r, k, cut="le")),
    Mistake("natural log instead of log2", "DCG discounts with log base 2: "
            "1 / log2(rank + 2).", lambda r, k: _ndcg(r, k, log=torch.log)),
    Mistake("no cut-off at K", "Users whose item falls outside the top K score 0 in "
            "NDCG@K.", lambda r, k: _ndcg(r, k, cut="none")),
    Mistake("reciprocal rank instead of NDCG", "1 / (rank + 1) is MRR's gain; NDCG "
            "uses 1 / log2(rank + 2).", lambda r, k: _ndcg(r, k, shift=1.0, log=lambda x: x)),
)
