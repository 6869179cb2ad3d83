"""The catalogue of known mistakes, each written as the buggy code itself.

Introduced with the interview exercises. A diagnosis is only made when the
learner's output equals one of these variants on the same inputs, so a
named bug is a measured fact, not a guess.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from recattn_lessons.grading.core import Mistake

__all__ = ["ATTENTION", "SOFTMAX", "HIT_RATE", "NDCG", "naive_softmax", "nan_softmax",
           "ZERO_FILL", "BIG_NEGATIVE", "NAN_ROW", "ONLINE_SOFTMAX", "KV_CACHE", "POINTWISE",
           "SAMPLED_SOFTMAX", "GBCE", "gbce_beta_variant"]

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
    Mistake("off by one in the rank (rank + 1 < k, i.e. rank < k - 1)", "Ranks are "
            "already 0-based; rank + 1 < k (or rank < k - 1) drops position K. A hit is "
            "rank < k.", lambda r, k: (_r(r) + 1 < k).double().mean().item()),
    Mistake("count instead of mean", "HR@K is the share of users with a hit: take the "
            "mean, not the sum.", lambda r, k: (_r(r) < k).double().sum().item()),
    Mistake("divided by len(ranks) + 1", "HR@K = hits / number of users: divide by "
            "len(ranks) (or take .mean()), not len(ranks) + 1.",
            lambda r, k: (_r(r) < k).double().sum().item() / (len(r) + 1)),
    Mistake("any() instead of the mean (1 if anyone hit)", "(ranks < k).any() says whether "
            "some user has a hit; HR@K is the share of users with one: "
            "(ranks < k).float().mean().", lambda r, k: float((_r(r) < k).any())),
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


# --------------------------------------------------------------------------
# HSTU's pointwise attention: variants of fn(q, k, v, bias, mask, n) -> (out, A),
# lesson 08
# --------------------------------------------------------------------------
def _pointwise(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor, n: int, *,
               act: str = "silu", norm: str = "n", sqrt: str = "none", masking: str = "multiply",
               use_bias: str = "inside", returned: str = "masked") -> tuple[Tensor, Tensor]:
    """``A = SiLU(q k^T + bias) / n``, masked entries 0, and ``A @ v``: right (the
    defaults) or with one catalogued bug."""
    s = q @ k.transpose(-2, -1)  # (B, H, L, L)
    if sqrt == "inside":  # scores scaled like softmax attention's
        s = s / math.sqrt(q.shape[-1])
    keep = mask.expand_as(s)  # (B, H, L, L)
    if use_bias == "inside":
        s = s + bias
    elif use_bias == "masked":  # the mask applied to the bias only (bias * mask)
        s = s + bias * keep
    if masking == "neg_inf":  # -inf before the activation: SiLU(-inf) = -inf * 0 = NaN
        s = s.masked_fill(~keep, _NEG)
    if act == "softmax":
        a = torch.softmax(s.masked_fill(~keep, _NEG), -1).nan_to_num(0.0)
    else:
        f = {"silu": F.silu, "sigmoid": torch.sigmoid, "relu": torch.relu, "gelu": F.gelu}[act]
        a = f(s / n) * n if norm == "inside" else f(s)  # norm "inside": SiLU(s / n), then / n below
    if use_bias == "after":  # the bias added after the activation
        a = a + bias
    if norm in ("n", "inside"):
        a = a / n
    elif norm == "L":
        a = a / s.shape[-1]
    elif norm == "count":  # each query's number of keys it may see
        a = a / keep.sum(-1, keepdim=True).clamp(min=1).to(a.dtype)
    if sqrt == "outside":
        a = a / math.sqrt(q.shape[-1])
    raw = a
    if masking in ("multiply", "neg_inf"):
        a = a * keep
    elif masking == "inverted":
        a = a * ~keep
    if returned == "unmasked":  # the output uses the masked A, the unmasked A is returned
        return a @ v, raw
    if returned == "output_unmasked":  # the output uses the unmasked A
        return raw @ v, a
    return a @ v, a


def _pw(name: str, explain: str, **kw) -> Mistake:
    return Mistake(name, explain, lambda q, k, v, bias, mask, n: _pointwise(q, k, v, bias, mask, n,
                                                                             **kw))


_PW_SOFTMAX = ("softmax instead of SiLU", "HSTU has no softmax: each weight is "
               "SiLU(q.k + bias) / n on its own, so a row of A does not sum to 1 (that is the "
               "point: the output grows with the number of relevant past items). Use "
               "F.silu(q @ k.transpose(-2, -1) + bias) / n.")
_PW_SQRT = ("scaled by 1/sqrt(d_q) instead of (or as well as) 1/n", "The 1/sqrt(d_k) of "
            "softmax attention keeps softmax's inputs in range; HSTU's only normaliser is the "
            "constant n: A = SiLU(q k^T + bias) / n, no sqrt(d_q) anywhere.")
_PW_COUNT = ("normalised by each row's count of real items instead of the constant n",
             "Dividing by how many keys a query may see turns the sum back into an average, "
             "which is what HSTU avoids: the paper's 1/n is one constant (Meta's code divides "
             "by the padded length), so a user with more relevant history gets a larger "
             "output. Divide by the argument n.")
_PW_NEG_INF = ("masked with -inf before SiLU (NaN)", "There is no softmax to turn -inf into 0: "
               "SiLU(-inf) = -inf * sigmoid(-inf) = -inf * 0 = NaN, which then spreads through "
               "A @ v. Compute A for every pair, then multiply by the mask: "
               "A = F.silu(s + bias) / n * mask (or torch.where(mask, A, 0.0)).")
_PW_WRONG_ACT = ("another activation instead of SiLU", "HSTU's weights are SiLU(x) = "
                 "x * sigmoid(x) (F.silu), not sigmoid, ReLU or GELU.")
POINTWISE = (
    _pw(*_PW_SOFTMAX, act="softmax", norm="none", sqrt="inside", use_bias="none"),
    _pw(*_PW_SOFTMAX, act="softmax", norm="none", sqrt="inside"),
    _pw(*_PW_SOFTMAX, act="softmax", norm="none"),
    _pw(*_PW_SOFTMAX, act="softmax"),
    _pw(*_PW_SQRT, norm="none", sqrt="outside"),
    _pw(*_PW_SQRT, norm="none", sqrt="inside"),
    _pw(*_PW_SQRT, sqrt="outside"),
    _pw(*_PW_SQRT, sqrt="inside"),
    _pw(*_PW_COUNT, norm="count"),
    _pw("divided by L (the padded length of this batch) instead of n", "Use the n you are "
        "given (the model's maximum length), not q.shape[-2]: with a constant n, more left "
        "padding never changes an output.", norm="L"),
    _pw("no division by n", "A = SiLU(q k^T + bias) / n: without 1/n the outputs grow with "
        "the history length and the block's LayerNorm has to undo it.", norm="none"),
    _pw("divided by n inside the SiLU", "SiLU is not linear: SiLU(x / n) != SiLU(x) / n. "
        "Apply SiLU to q k^T + bias, then divide by n.", norm="inside"),
    _pw(*_PW_NEG_INF, masking="neg_inf"),
    _pw("mask applied to the bias only", "bias * mask zeroes the bias of the masked pairs, "
        "but SiLU(q.k) of a future or padded key is still in A and in the output. Zero the "
        "entries of A itself: A = F.silu(s + bias) / n * mask.", use_bias="masked",
        masking="none"),
    _pw("mask ignored", "Every future and padded key contributes: multiply A by the mask "
        "(True = may attend) before A @ v, and return the masked A.", masking="none"),
    _pw("mask with inverted polarity", "True = may attend: multiply by mask, not by ~mask.",
        masking="inverted"),
    _pw("bias dropped", "The relative attention bias rab is part of the score: "
        "SiLU(q k^T + bias), with bias broadcast over (B, H, L, L).", use_bias="none"),
    _pw("bias added after SiLU", "The bias goes inside the activation: SiLU(q k^T + bias) / n, "
        "not SiLU(q k^T) + bias.", use_bias="after"),
    _pw("A returned before masking", "The output used the masked weights, but the A you "
        "return still holds the future and padded entries: return the masked A (the one "
        "that multiplied v).", returned="unmasked"),
    _pw("output computed before masking", "The A you return is masked, but the output was "
        "A @ v with the unmasked A: mask first, then multiply by v.", returned="output_unmasked"),
    _pw(*_PW_WRONG_ACT, act="sigmoid"),
    _pw(*_PW_WRONG_ACT, act="relu"),
    _pw(*_PW_WRONG_ACT, act="gelu"),
)


# --------------------------------------------------------------------------
# Sampled softmax with the logQ correction, and gBCE: variants of
# fn(hidden, targets, item_weight, negatives, log_q) and
# fn(hidden, targets, item_weight, negatives, n_items, t), lesson 08
# --------------------------------------------------------------------------
def _logits(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
            pad_targets: str = "drop"):
    """Positive ``(M,)`` and negative ``(M, K)`` logits, with the target and negative ids of
    the positions kept: those with a target (``"drop"``) or every position."""
    has = targets > 0 if pad_targets == "drop" else torch.ones_like(targets, dtype=torch.bool)
    h, y, neg = hidden[has], targets[has], negatives[has]  # (M, D), (M,), (M, K)
    pos = (h * item_weight[y]).sum(-1)  # (M,)
    s = torch.einsum("md,mkd->mk", h, item_weight[neg])  # (M, K)
    return pos, s, y, neg, has


def _valid(y: Tensor, neg: Tensor, hits: bool = True, pad: bool = True) -> Tensor:
    valid = torch.ones_like(neg, dtype=torch.bool)
    if hits:
        valid &= neg != y[:, None]
    if pad:
        valid &= neg != 0
    return valid  # (M, K)


def _reduce(per: Tensor, has: Tensor, reduce: str, pad_targets: str) -> Tensor:
    if pad_targets == "zeros":  # per-position losses, padding positions counted as 0
        return per.sum() / has.numel()
    return per.sum() if reduce == "sum" else per.mean()


def _sampled(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
             log_q: Tensor, *, corr: str = "ok", log_k: str = "draws", pos_corr: str = "none",
             hits: bool = True, pad: bool = True, pad_targets: str = "drop",
             reduce: str = "mean", loss: str = "softmax") -> Tensor:
    """The sampled softmax with logQ, right (the defaults) or with one catalogued bug."""
    pos, s, y, neg, has = _logits(hidden, targets, item_weight, negatives,
                                  "all" if pad_targets == "all" else "drop")
    valid = _valid(y, neg, hits, pad)
    K = torch.full_like(pos, float(negatives.shape[-1]))  # (M,) the number of draws
    if log_k == "valid":  # the draws left after removing hits and padding
        K = valid.sum(1).clamp(min=1).to(pos.dtype)
    lq, lk = log_q[neg], K.log()[:, None]  # (M, K), (M, 1)
    s = {"ok": lambda: s - lq - lk, "none": lambda: s, "sign": lambda: s + lq + lk,
         "sign_q": lambda: s + lq - lk, "sign_k": lambda: s - lq + lk,
         "no_k": lambda: s - lq}[corr]()
    if pos_corr == "full":
        pos = pos - log_q[y] - lk[:, 0]
    elif pos_corr == "q":
        pos = pos - log_q[y]
    if loss == "bce":  # binary cross-entropy over the (corrected) logits
        per = F.softplus(-pos) + (F.softplus(s) * valid).sum(1)
    elif loss == "bce_mean":  # ... averaged over the 1 + K entries of each position
        per = (F.softplus(-pos) + (F.softplus(s) * valid).sum(1)) / (1 + valid.sum(1))
    elif loss == "bce_all":  # ... over all 1 + K entries, left-out ones as 0 (BCE's mean)
        per = (F.softplus(-pos) + (F.softplus(s) * valid).sum(1)) / (1 + negatives.shape[-1])
    else:
        s = s.masked_fill(~valid, _NEG)
        rest = s if loss == "no_positive" else torch.cat([pos[:, None], s], 1)
        per = torch.logsumexp(rest, 1) - pos  # (M,)
    return _reduce(per, targets > 0, reduce, pad_targets)


def _ss(name: str, explain: str, **kw) -> Mistake:
    return Mistake(name, explain, lambda h, y, E, neg, log_q: _sampled(h, y, E, neg, log_q, **kw))


_SS_SIGN = ("logQ correction with the wrong sign", "Popular items are drawn often, so each "
            "draw must count for less: the corrected logit is s_k - log q_k - log K (log q_k "
            "< 0, so -log q_k raises a rare item's logit). Adding log q_k or log K reverses it.")
_SS_POS = ("logQ correction applied to the positive too", "The positive is in the denominator "
           "exactly once, whatever q is: only the sampled negatives estimate the rest of the "
           "catalogue. Keep s_y as it is and correct s_k - log q_k - log K alone.")
_SS_PAD_TGT = ("positions without a target averaged in", "Positions whose target is 0 "
               "(padding) have nothing to predict: select them out (has = targets > 0; "
               "hidden[has], ...) and average over the real targets only.")
_SS_BCE = ("binary cross-entropy instead of softmax", "The sampled softmax is a softmax over "
           "[s_y, corrected s_k]: loss = logsumexp(logits) - s_y (or F.cross_entropy with "
           "target 0), not a sigmoid per logit. BCE over sampled negatives is exercise 23.")
SAMPLED_SOFTMAX = (
    _ss("no logQ correction", "Each negative k drawn with probability q_k stands for "
        "1 / (K q_k) items of the catalogue: subtract log q_k + log K from its logit "
        "(log_q[negatives] and math.log(negatives.shape[-1])). Without it, the loss "
        "estimates the wrong denominator and pushes popular items down too often.",
        corr="none"),
    _ss(*_SS_SIGN, corr="sign"),
    _ss(*_SS_SIGN, corr="sign_q"),
    _ss(*_SS_SIGN, corr="sign_k"),
    _ss("log K forgotten", "The K draws estimate the catalogue's sum together: "
        "sum_k exp(s_k) / (K q_k), so each logit is corrected by -log q_k - log K, "
        "K = negatives.shape[-1] (the number of draws). Without log K the sampled part of the "
        "denominator is K times too large.", corr="no_k"),
    _ss("log K counted after removing hits and padding", "K is the number of draws, "
        "negatives.shape[-1], the same for every position: the estimate averages over all K "
        "draws, and a left-out draw (an accidental hit) contributes 0 to that average.",
        log_k="valid"),
    _ss(*_SS_POS, pos_corr="full"),
    _ss(*_SS_POS, pos_corr="q"),
    _ss("accidental hits not masked", "A negative equal to the position's target (an "
        "accidental hit) would count the positive twice and push it down against itself: "
        "leave it out (logit -inf where negatives == target).", hits=False),
    _ss("padding negatives not masked", "Negative id 0 is padding, not an item: leave it out "
        "like an accidental hit (logit -inf where negatives == 0).", pad=False),
    _ss("accidental hits and padding negatives not masked", "Leave out every negative equal "
        "to the target and every negative id 0: fill their logits with -inf.", hits=False,
        pad=False),
    _ss(*_SS_PAD_TGT, pad_targets="all"),
    _ss(*_SS_PAD_TGT, pad_targets="zeros"),
    _ss("sum instead of mean", "Return the mean over the positions that have a target: a sum "
        "grows with the batch and changes the learning rate's meaning.", reduce="sum"),
    _ss("positive left out of the denominator", "The positive competes with the negatives: "
        "the denominator is exp(s_y) + sum_k exp(corrected s_k), i.e. "
        "logsumexp([s_y, s_k...]) - s_y.", loss="no_positive"),
    _ss(*_SS_BCE, loss="bce"),
    _ss(*_SS_BCE, loss="bce_mean"),
    _ss(*_SS_BCE, loss="bce_all"),
    _ss(*_SS_BCE, loss="bce", corr="none"),
    _ss(*_SS_BCE, loss="bce_mean", corr="none"),
    _ss(*_SS_BCE, loss="bce_all", corr="none"),
)


def gbce_beta_variant(K: int, n_items: int, t: float, *, beta: str = "ok", alpha: str = "N-1",
                      cap: bool = True) -> float:
    """gSASRec's beta, right (the defaults) or with one catalogued bug."""
    den = {"N-1": n_items - 1, "N": n_items, "N+1": n_items + 1}[alpha]
    a = min(1.0, K / den) if cap else K / den
    if beta == "alpha":  # t = 1 always
        return a
    if beta == "one":  # t = 0 always: plain BCE
        return 1.0
    return a * (t * (1 - 1 / a) + 1 / a)


def _gbce(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
          n_items: int, t: float, *, beta: str = "ok", alpha: str = "N-1", cap: bool = True,
          on: str = "positive", log_sig: str = "softplus", den: str = "valid+1",
          hits: bool = True, pad: bool = True, pad_targets: str = "drop",
          reduce: str = "mean") -> Tensor:
    """The gBCE loss, right (the defaults) or with one catalogued bug."""
    b = gbce_beta_variant(negatives.shape[-1], n_items, t, beta=beta, alpha=alpha, cap=cap)
    pos, s, y, neg, has = _logits(hidden, targets, item_weight, negatives,
                                  "all" if pad_targets == "all" else "drop")
    valid = _valid(y, neg, hits, pad)
    if log_sig == "naive":  # log(sigmoid(x)) and log(1 - sigmoid(x)): inf at large logits
        lp, ln = -torch.log(torch.sigmoid(pos)), -torch.log(1 - torch.sigmoid(s))
    else:
        lp, ln = F.softplus(-pos), F.softplus(s)
    bp, bn = (b, 1.0) if on == "positive" else (1.0, b) if on == "negatives" else (b, b)
    terms = bp * lp + (bn * ln * valid).sum(1)  # (M,)
    if den == "entries":  # one mean over every entry of the batch
        return terms.sum() / (1 + valid.sum(1)).sum()
    count = {"valid+1": 1 + valid.sum(1), "valid": valid.sum(1).clamp(min=1),
             "K+1": torch.full_like(pos, negatives.shape[-1] + 1.0)}[den]
    return _reduce(terms / count, targets > 0, reduce, pad_targets)


def _gb(name: str, explain: str, **kw) -> Mistake:
    return Mistake(name, explain, lambda h, y, E, neg, n_items, t: _gbce(h, y, E, neg, n_items, t,
                                                                          **kw))


_GB_NEG = ("beta applied to the negatives", "Only the positive's probability is raised to "
           "beta: loss = (beta * softplus(-s_y) + sum_k softplus(s_k)) / (K + 1). The "
           "negatives keep their plain log(1 - sigmoid(s_k)).")
_GB_PAD_TGT = ("positions without a target averaged in", "Positions whose target is 0 "
               "(padding) have nothing to predict: average over targets > 0 only.")
GBCE = (
    _gb(*_GB_NEG, on="negatives"),
    _gb(*_GB_NEG, on="both"),
    _gb("beta = alpha (t ignored, as if t = 1)", "beta = alpha * (t * (1 - 1/alpha) + "
        "1/alpha) = 1 - t * (1 - alpha): t interpolates between plain BCE (t = 0, beta = 1) "
        "and full calibration (t = 1, beta = alpha); use the t you are given.", beta="alpha"),
    _gb("beta = 1 (plain BCE, as if t = 0)", "gBCE raises the positive's sigmoid to "
        "beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = K / (N - 1); with beta = 1 it "
        "is the overconfident BCE gSASRec fixes.", beta="one"),
    _gb("alpha = K / N instead of K / (N - 1)", "alpha is the sampling rate among the "
        "N - 1 items that are not the positive: alpha = K / (n_items - 1). (item_weight has "
        "n_items + 1 rows: row 0 is padding.)", alpha="N"),
    _gb("alpha = K / N instead of K / (N - 1)", "alpha is the sampling rate among the "
        "N - 1 items that are not the positive: alpha = K / (n_items - 1); "
        "item_weight.shape[0] is n_items + 1 (row 0 is padding).", alpha="N+1"),
    _gb("alpha not capped at 1", "With K >= N - 1 draws (with replacement) alpha = K / (N - 1) "
        "exceeds 1 and beta would exceed 1; cap it: alpha = min(1, K / (N - 1)), which gives "
        "plain BCE there.", cap=False),
    _gb("log(sigmoid) computed naively", "log(sigmoid(x)) and log(1 - sigmoid(x)) round to "
        "log(0) = -inf once |x| is large (sigmoid(100) is exactly 1.0), and an eps or a clamp "
        "inside the log only trades the inf for a wrong value (and a small error "
        "everywhere): use -log sigmoid(x) = F.softplus(-x) and -log(1 - sigmoid(x)) = "
        "F.softplus(x) (or F.logsigmoid).", log_sig="naive"),
    _gb("averaged over K instead of K + 1", "Each position has K + 1 binary terms: the "
        "positive and its K (valid) negatives; divide by 1 + (number of valid negatives).",
        den="valid"),
    _gb("left-out negatives counted in K + 1", "Accidental hits and padding negatives are "
        "left out of the loss, so they are not in the count either: divide by "
        "1 + valid.sum(-1), not negatives.shape[-1] + 1.", den="K+1"),
    _gb("averaged over all entries instead of per position", "The loss of one position is "
        "its terms / (1 + its valid negatives); then take the mean over positions. One mean "
        "over every entry of the batch weights positions with fewer valid negatives less.",
        den="entries"),
    _gb("accidental hits not masked", "A negative equal to the position's target is the "
        "positive itself: leave it out (and out of the count), valid = negatives != target.",
        hits=False),
    _gb("padding negatives not masked", "Negative id 0 is padding: leave it out like an "
        "accidental hit (valid = ... & (negatives != 0)).", pad=False),
    _gb("accidental hits and padding negatives not masked", "Leave out every negative equal "
        "to the target and every negative id 0, from the sum and from the count.", hits=False,
        pad=False),
    _gb(*_GB_PAD_TGT, pad_targets="all"),
    _gb(*_GB_PAD_TGT, pad_targets="zeros"),
    _gb("sum instead of mean", "Return the mean over the positions that have a target.",
        reduce="sum"),
)
