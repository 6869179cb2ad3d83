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

__all__ = ["ATTENTION", "SOFTMAX", "HIT_RATE", "NDCG", "naive_softmax", "nan_softmax",
           "ZERO_FILL", "BIG_NEGATIVE", "NAN_ROW", "ONLINE_SOFTMAX", "KV_CACHE"]

# The explanations shared by every exercise that masks scores (02, 04, 07, 08, 13).
ZERO_FILL = ("masked scores set to 0 instead of -inf", "exp(0) = 1 is not 0: a masked "
             "position filled with 0 still gets weight. Fill with float('-inf') before "
             "the softmax.")
BIG_NEGATIVE = ("uniform weights on a fully-masked row", "Filling with a large negative "
                "number (e.g. -1e9) is fine where a row keeps some allowed position, but a "
                "fully-masked row then spreads its weight evenly over positions it may not "
                "see; such rows must get all-zero weights and a zero output (fill with -inf, "
                "then weights.nan_to_num(0.0)).")
NAN_ROW = ("NaN for a fully-masked row", "A row whose positions are all masked gets softmax "
           "of all -inf = NaN. This course returns all-zero weights and a zero output "
           "there: e.g. weights.nan_to_num(0.0), or zero the rows where mask.any(-1) is False.")

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
    if soft == "zero":  # masked scores set to 0 instead of -inf: still get weight
        return torch.softmax(scores if mask is None else scores.masked_fill(~mask, 0.0), dim=-1)
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
    _m(*NAN_ROW, soft="nan"),
    _m(*BIG_NEGATIVE, soft="big_negative"),
    _m(*ZERO_FILL, soft="zero"),
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


def _ndcg(r, k, shift=2.0, log=torch.log2, cut="lt", ideal="one", over="all"):
    r = _r(r)
    gain = 1.0 / log(r + shift)
    keep = {"lt": r < k, "le": r <= k, "none": torch.ones_like(r, dtype=torch.bool)}[cut]
    if ideal == "k_items":  # ideal DCG as if K items were relevant
        gain = gain / (1.0 / torch.log2(torch.arange(k, dtype=torch.float64) + 2)).sum()
    scores = torch.where(keep, gain, torch.zeros_like(gain))
    if over == "hits":  # mean over the users with a hit only
        return scores[keep].mean().item() if bool(keep.any()) else 0.0
    return scores.mean().item()


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
    Mistake("log10 instead of log2", "DCG discounts with log base 2: 1 / log2(rank + 2); "
            "log10 makes every discount about 3.3x too large.",
            lambda r, k: _ndcg(r, k, log=torch.log10)),
    Mistake("ideal DCG of K relevant items", "Each user has one relevant item, so the "
            "ideal DCG is 1 (that item at rank 0), not the sum over K positions.",
            lambda r, k: _ndcg(r, k, ideal="k_items")),
    Mistake("averaged over hits only", "Users whose item falls outside the top K count "
            "as 0: average over every user, not only those with a hit.",
            lambda r, k: _ndcg(r, k, over="hits")),
)


# --------------------------------------------------------------------------
# Online (tiled) softmax: variants of fn(x, block_size), lesson 07
# --------------------------------------------------------------------------
def _online(x: Tensor, block_size: int, *, rescale: str = "ok", init: float = _NEG,
            safe: bool = True, shift: bool = True, blocks: str = "all",
            out: str = "final") -> Tensor:
    """One pass over blocks of the last dim with a running max ``m`` and sum ``s``,
    right or with one catalogued bug; ``out`` says how the weights are written."""
    L = x.shape[-1]
    stop = L - L % block_size if blocks != "all" else L
    m = torch.full(x.shape[:-1], init, dtype=x.dtype)  # (...,)
    s = torch.zeros(x.shape[:-1], dtype=x.dtype)  # (...,)
    parts = []
    for i in range(0, stop, block_size):
        b = x[..., i:i + block_size]  # (..., <= block_size)
        m_new = torch.maximum(m, b.amax(-1))
        c = m_new.masked_fill(m_new == _NEG, 0.0) if safe else m_new  # the shift
        if not shift:
            c = torch.zeros_like(m_new)
        alpha = {"ok": lambda: torch.exp(m - c), "none": lambda: torch.ones_like(s),
                 "flipped": lambda: torch.exp(c - m).masked_fill(s == 0, 0.0),
                 "flipped_nan": lambda: torch.exp(c - m)}[rescale]()
        s = s * alpha + torch.exp(b - c[..., None]).sum(-1)
        m = m_new
        if out == "stale":  # written with the max known so far, never rescaled
            parts.append(torch.exp(b - c[..., None]))
        elif out == "local":  # each block normalised on its own
            e = torch.exp(b - c[..., None])
            parts.append(e / e.sum(-1, keepdim=True))
    if out == "local":
        return torch.cat(parts, -1).nan_to_num(0.0)
    c = m.masked_fill(m == _NEG, 0.0) if safe and shift else (m if shift else torch.zeros_like(m))
    e = torch.cat(parts, -1) if out == "stale" else torch.exp(x - c[..., None])
    if blocks == "zero_rest":
        e = torch.cat([e[..., :stop], torch.zeros_like(e[..., stop:])], -1)
    return e / s[..., None]


def _os(name: str, explain: str, **kw) -> Mistake:
    return Mistake(name, explain, lambda x, block_size: _online(x, block_size, **kw))


_NO_RESCALE = ("running sum not rescaled when the max grows", "Each term of the running sum "
               "was computed against the old maximum; when a block brings a larger max "
               "m_new, multiply the sum by exp(m_old - m_new) before adding the block: "
               "s = s * exp(m_old - m_new) + exp(block - m_new).sum(-1).")
_FLIPPED = ("running sum rescaled by exp(m_new - m_old) instead of exp(m_old - m_new)",
            "The max only grows, so the old terms must shrink: the factor is "
            "exp(m_old - m_new) <= 1. exp(m_new - m_old) inflates them (and is inf on the "
            "first block, where m_old = -inf, turning 0 * inf into NaN).")
_DROPPED = ("last partial block dropped", "When block_size does not divide L, the last "
            "block is shorter: loop with range(0, L, block_size) and slice "
            "x[..., i:i + block_size]; range(L // block_size) or "
            "range(0, L - block_size + 1, block_size) skips the last columns.")
ONLINE_SOFTMAX = (
    _os("NaN for a fully -inf row", "A row that is -inf everywhere ends with s = 0, and "
        "exp(x - m) / s is 0 / 0 = NaN. This course gives such a row zero weights: "
        "torch.where(s > 0, p, 0.0), or p.nan_to_num(0.0)."),
    _os("running max initialised to 0 instead of -inf", "With m = 0 at the start a row "
        "whose entries are all far below 0 (here about -1e4) is shifted by 0, not by its "
        "max: exp(x - 0) underflows to 0 and the weights become 0 / 0. Start from "
        "m = float('-inf'), the identity of max.", init=0.0),
    _os("NaN when a row's first block(s) are all -inf", "While every entry seen so far "
        "is -inf (a masked prefix, as with left padding) the running max is -inf and "
        "x - m = -inf - (-inf) = NaN, which poisons the whole row. Shift by 0 while the "
        "max is still -inf (torch.where(m == -inf, 0, m)); a fully -inf row then ends "
        "with sum 0 and gets zero weights (the course convention).", safe=False),
    _os(*_NO_RESCALE, rescale="none"),
    _os(*_FLIPPED, rescale="flipped"),
    _os(*_FLIPPED, rescale="flipped_nan"),
    _os("weights written with a stale max", "A block's exp(x - m) was written with the "
        "max known at that block and divided by the final sum, but a later block raised "
        "the max: either rescale the written blocks by exp(m_then - m_final), or (as "
        "here) write every weight at the end as exp(x - m_final) / s_final.", out="stale"),
    _os("each block normalised on its own", "The weights of every block sum to 1: the "
        "blocks' maxima and sums were never combined. Carry one running max and one "
        "running sum across all blocks of the row.", out="local"),
    _os(*_DROPPED, blocks="full"),
    _os(*_DROPPED, blocks="zero_rest"),
    _os("no max subtracted: exp overflows", "exp(1e4) is inf and inf / inf is NaN: "
        "subtract the running max inside every exp (that is what the running max is "
        "for).", shift=False),
)


# --------------------------------------------------------------------------
# One KV-cached decoding step: variants of the output given the true cache,
# fn(q_t, K_prev, V_prev, k_t, v_t) -> out_t, lesson 07
# --------------------------------------------------------------------------
def _attend(q: Tensor, K: Tensor, V: Tensor, scale: float | None = None, dim: int = -1) -> Tensor:
    s = q @ K.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)
    return torch.softmax(s, dim) @ V  # (B, H, 1, Dv)


def _full(K: Tensor, V: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    return torch.cat([K, k], -2), torch.cat([V, v], -2)  # (B, H, T + 1, D)


_BEFORE = ("attended before appending the new key", "The new token must see itself: "
           "append k_t, v_t to the cache first, then attend q_t over all T + 1 keys "
           "(causal attention includes the diagonal).")
KV_CACHE = (
    Mistake(*_BEFORE, lambda q, K, V, k, v: _attend(q, K, V) if K.shape[-2] else
            _attend(q, k, v)),
    Mistake(*_BEFORE, lambda q, K, V, k, v: _attend(q, K, V) if K.shape[-2] else
            torch.zeros_like(q[..., :1]) * v),
    Mistake("missing scaling", "Divide the scores by sqrt(d_k) = sqrt(q_t.shape[-1]), as "
            "full attention does; the cache does not change the scale.",
            lambda q, K, V, k, v: _attend(q, *_full(K, V, k, v), scale=1.0)),
    Mistake("scaled by sqrt(d_v) instead of sqrt(d_k)", "The scale comes from the "
            "dot product's size d_k = q_t.shape[-1], not the value size.",
            lambda q, K, V, k, v: _attend(q, *_full(K, V, k, v), scale=math.sqrt(v.shape[-1]))),
    Mistake("attended over the new key only", "q_t must attend over every cached key "
            "plus the new one; softmax over the single new key is 1, so you returned v_t.",
            lambda q, K, V, k, v: v.clone()),
    Mistake("a top-left causal mask for a single query", "A causal mask made for a "
            "square (tril of a (1, T + 1) matrix, or F.scaled_dot_product_attention's "
            "is_causal=True) is aligned to the top-left corner: a lone query then sees only "
            "the first cached key. The new query may see every cached key: pass no mask.",
            lambda q, K, V, k, v: _full(K, V, k, v)[1][..., :1, :].clone()),
    Mistake("softmax over the wrong axis", "With one query, softmax over dim=-2 gives "
            "every key weight 1; normalise over the keys, dim=-1.",
            lambda q, K, V, k, v: _attend(q, *_full(K, V, k, v), dim=-2)),
)
