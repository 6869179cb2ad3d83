"""Checks for the attention-function exercises (softmax, SDPA, additive, masks,
scores between sequences, and the source's tf.keras / ``attention_scores`` bugs).

Introduced with the interview exercises; the references come from
:mod:`recattn_lessons.attention`, never from the solutions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recattn_lessons import attention as ref
from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import Case, Exercise, Mistake, run_cases

__all__ = ["EXERCISES", "attention_cases"]


def _randn(g: torch.Generator, *shape: int, dtype=torch.float64, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


def _mask(g: torch.Generator, *shape: int, full_rows: bool = False) -> Tensor:
    m = torch.rand(*shape, generator=g) < 0.7
    m[..., 0] |= True  # every query may see at least one key ...
    if full_rows:  # ... except these fully-masked rows
        m[..., 1, :] = False
    return m


def attention_cases(seed: int = 0) -> list[Case]:
    """Randomized (q, k, v, mask) cases, easy first, for attention-like checks."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    f32 = {"dtype": torch.float32}
    return [
        Case("q (2, 3, 4), k (2, 4, 4), v (2, 4, 4), no mask",
             (r(2, 3, 4), r(2, 4, 4), r(2, 4, 4))),
        Case("batch and head dims, Lq != Lk, d_k != d_v: q (2, 3, 5, 8), k (2, 3, 7, 8), "
             "v (2, 3, 7, 6)", (r(2, 3, 5, 8), r(2, 3, 7, 8), r(2, 3, 7, 6))),
        Case("a boolean mask (True = may attend) of shape (2, 1, 5, 7)",
             (r(2, 3, 5, 8), r(2, 3, 7, 8), r(2, 3, 7, 6), _mask(g, 2, 1, 5, 7))),
        Case("a mask whose row 1 is fully masked (that query sees no key)",
             (r(2, 5, 8), r(2, 7, 8), r(2, 7, 6), _mask(g, 2, 5, 7, full_rows=True))),
        Case("large logits (q, k ~ 100 * N(0, 1))",
             (r(2, 4, 8, scale=100.0), r(2, 6, 8, scale=100.0), r(2, 6, 3))),
        Case("float32 inputs with a mask", (r(3, 5, 16, **f32), r(3, 9, 16, **f32),
                                            r(3, 9, 4, **f32), _mask(g, 3, 5, 9))),
        Case("batch of 1 and a single query: q (1, 1, 4), k (1, 5, 4), v (1, 5, 3), "
             "mask (1, 1, 5)", (r(1, 1, 4), r(1, 5, 4), r(1, 5, 3), _mask(g, 1, 1, 5))),
        Case("a single key: q (2, 3, 4), k (2, 1, 4), v (2, 1, 2)",
             (r(2, 3, 4), r(2, 1, 4), r(2, 1, 2))),
    ]


# --------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------
def _check_softmax(fn) -> str:
    g = torch.Generator().manual_seed(1)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    rows = torch.stack([r(6) * 3 + 900, r(6) * 3 - 900])  # far-apart rows
    partial = r(4, 5).masked_fill(torch.eye(4, 5, dtype=torch.bool), float("-inf"))
    cases = [  # a square first case, so that amax without keepdim runs (and is named)
        Case("x of shape (4, 4), dim=-1", (r(4, 4),)),
        Case("x of shape (3, 4), dim=-1", (r(3, 4),)),
        Case("x of shape (2, 3, 5), dim=1", (r(2, 3, 5),), {"dim": 1}),
        Case("x of shape (4, 3), dim=0", (r(4, 3),), {"dim": 0}),
        Case("large logits (x ~ 1000)", (r(3, 6) * 10 + 1000,)),
        Case("rows far apart (one near +900, one near -900)", (rows,)),
        Case("some -inf entries (masked scores)", (partial,)),
        Case("float32 logits ~ 100", (r(5, 7, dtype=torch.float32) * 100,)),
        Case("a single row: x of shape (1, 5), dim=-1", (r(1, 5),)),
    ]
    run_cases(fn, cases, ref.softmax, M.SOFTMAX, ("softmax(x)",), "fn(x, dim=-1)")
    return "Stable on large logits, correct on every axis, float32 and float64."


# --------------------------------------------------------------------------
# scaled dot-product attention
# --------------------------------------------------------------------------
def _check_sdpa(fn) -> str:
    run_cases(fn, attention_cases(), ref.scaled_dot_product_attention, M.ATTENTION,
              ("output", "weights"), "fn(q, k, v, mask=None) -> (output, weights)")
    return ("Correct with batch and head dims, Lq != Lk, d_k != d_v, masks, fully-masked "
            "rows, large logits, float32 and float64.")


# --------------------------------------------------------------------------
# additive (Bahdanau) attention
# --------------------------------------------------------------------------
def _additive(q, k, v, W_q, W_k, w_v, mask=None, *, tanh=True, scale=1.0, soft="ok"):
    h = (q @ W_q).unsqueeze(-2) + (k @ W_k).unsqueeze(-3)  # (..., Lq, Lk, h)
    s = (torch.tanh(h) if tanh else h) @ w_v * scale  # (..., Lq, Lk)
    if soft == "ok":
        return ref.attend(s, v, mask)
    w = M.weights_variant(s, mask, soft)
    return w @ v, w


def _add_mistake(name, explain, **kw) -> Mistake:
    return Mistake(name, explain, lambda *a, **k: _additive(*a, **k, **kw))


_ADDITIVE_MISTAKES = (
    _add_mistake("tanh missing", "Bahdanau's score is w_v . tanh(q W_q + k W_k); without "
                 "the tanh it collapses to a linear score.", tanh=False),
    _add_mistake("softmax over the wrong axis", "Normalize each query's scores over the "
                 "keys: dim=-1.", soft="axis"),
    _add_mistake("mask applied after the softmax", "Fill masked scores with -inf before "
                 "the softmax so the allowed weights sum to 1.", soft="after"),
    _add_mistake("mask with inverted polarity", "True = may attend; fill where ~mask.",
                 soft="inverted"),
    _add_mistake(*M.NAN_ROW, soft="nan"),
    _add_mistake(*M.BIG_NEGATIVE, soft="big_negative"),
    _add_mistake(*M.ZERO_FILL, soft="zero"),
)


def _additive_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    out = []
    for c in attention_cases(3)[:4] + attention_cases(3)[5:]:
        q, k, v, *mask = c.args
        dt = q.dtype
        W_q, W_k, w_v = r(q.shape[-1], 7, dtype=dt), r(k.shape[-1], 7, dtype=dt), r(7, dtype=dt)
        extra = {"mask": mask[0]} if mask else {}
        out.append(Case(c.desc + ", hidden size 7", (q, k, v, W_q, W_k, w_v), extra))
    q, k, v = r(2, 3, 5), r(2, 4, 6), r(2, 4, 2)  # d_q != d_k
    out.append(Case("d_q = 5 != d_k = 6", (q, k, v, r(5, 7), r(6, 7), r(7))))
    return out


def _check_additive(fn) -> str:
    run_cases(fn, _additive_cases(), _additive, _ADDITIVE_MISTAKES, ("output", "weights"),
              "fn(q, k, v, W_q, W_k, w_v, mask=None) -> (output, weights)")
    return "Matches Bahdanau attention, with masks, d_q != d_k, float32 and float64."


# --------------------------------------------------------------------------
# causal + padding masks
# --------------------------------------------------------------------------
def _both(lengths, L, side="left", *, causal="tril", pad="keys", invert=False):
    c = {"tril": ref.causal_mask(L), "triu": ref.causal_mask(L).T,
         "strict": torch.ones(L, L, dtype=torch.bool).tril(-1),
         "none": torch.ones(L, L, dtype=torch.bool)}[causal]
    other = {"left": "right", "right": "left"}[side]
    p = ref.padding_mask(lengths, L, other if pad == "side" else side)  # (B, L)
    p = {"keys": p[:, None, :], "side": p[:, None, :], "queries": p[:, :, None],
         "none": torch.ones_like(p)[:, None, :]}[pad]
    m = c[None] & p  # (B, L, L)
    return ~m if invert else m


def _mask_mistake(name, explain, **kw) -> Mistake:
    return Mistake(name, explain, lambda lengths, L, side="left": _both(lengths, L, side, **kw))


_MASK_MISTAKES = (
    _mask_mistake("mask with inverted polarity", "True must mean *may attend*; you "
                  "marked the blocked positions.", invert=True),
    _mask_mistake("causal mask looks at the future", "Query i may see keys j <= i: a "
                  "lower triangle (tril), not triu.", causal="triu"),
    _mask_mistake("causal mask hides the diagonal", "A position may attend to itself: "
                  "use tril() (diagonal=0), not tril(-1).", causal="strict"),
    _mask_mistake("padding applied to the queries, not the keys", "A padding mask hides "
                  "padded *keys*: index it as pad[:, None, :], not pad[:, :, None].",
                  pad="queries"),
    _mask_mistake("padding on the wrong side", "side='left' means the real items are the "
                  "last `length` positions (SASRec style); side='right' the first.",
                  pad="side"),
    _mask_mistake("causal part missing", "Combine both: causal & padding.", causal="none"),
    _mask_mistake("padding part missing", "Combine both: causal & padding.", pad="none"),
)


def _check_masks(fn) -> str:
    cases = [
        Case("lengths [3, 1], L = 4, side='left'", (torch.tensor([3, 1]), 4)),
        Case("lengths [2, 5, 0], L = 5, side='right'", (torch.tensor([2, 5, 0]), 5),
             {"side": "right"}),
        Case("lengths [6, 4, 1, 0], L = 6, side='left'", (torch.tensor([6, 4, 1, 0]), 6),
             {"side": "left"}),
        Case("a batch of 1: lengths [2], L = 3, side='right'", (torch.tensor([2]), 3),
             {"side": "right"}),
    ]
    run_cases(fn, cases, _both, _MASK_MISTAKES, ("mask",),
              "fn(lengths, L, side='left') -> (B, L, L) bool")
    return "Causal and padding masks combined correctly for both padding sides."


# --------------------------------------------------------------------------
# scores between two sequences (bilinear), and the source's attention_scores
# --------------------------------------------------------------------------
def _bilinear(x, y, W):
    return x @ W @ y.transpose(-2, -1)  # (B, Lx, Ly)


_BILINEAR_MISTAKES = (
    Mistake("result transposed", "Scores are (B, Lx, Ly): row i compares x_i with every "
            "y_j; you returned (B, Ly, Lx).", lambda x, y, W: _bilinear(x, y, W).transpose(-2, -1)),
    Mistake("W transposed", "x (Lx, dx) @ W (dx, dy) @ y^T (dy, Ly): use W, not W.T.",
            lambda x, y, W: x @ W.transpose(-2, -1) @ y.transpose(-2, -1)),
    Mistake("W ignored", "A plain dot product only works when dx == dy; the bilinear "
            "score is x W y^T.", lambda x, y, W: x @ y.transpose(-2, -1)),
    Mistake("scaled scores", "This function returns raw scores x W y^T; scaling "
            "belongs to the attention step.",
            lambda x, y, W: _bilinear(x, y, W) / math.sqrt(x.shape[-1])),
)


def _check_bilinear(fn) -> str:
    g = torch.Generator().manual_seed(4)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    cases = [
        Case("x (2, 4, 3), y (2, 4, 3), W (3, 3)", (r(2, 4, 3), r(2, 4, 3), r(3, 3))),
        Case("x (2, 5, 6), y (2, 3, 4), W (6, 4)", (r(2, 5, 6), r(2, 3, 4), r(6, 4))),
        Case("float32, x (3, 7, 8), y (3, 2, 5), W (8, 5)",
             tuple(t.float() for t in (r(3, 7, 8), r(3, 2, 5), r(8, 5)))),
        Case("batch of 1, Lx = 1: x (1, 1, 3), y (1, 4, 2), W (3, 2)",
             (r(1, 1, 3), r(1, 4, 2), r(3, 2))),
    ]
    run_cases(fn, cases, _bilinear, _BILINEAR_MISTAKES, ("scores",),
              "fn(x, y, W) -> (B, Lx, Ly)")
    return "Bilinear scores with the right shape for any Lx, Ly, dx, dy."


EXERCISES = (
    Exercise("softmax", "01_stable_softmax", "Numerically stable softmax",
             "fn(x: Tensor, dim: int = -1) -> Tensor", _check_softmax, "easy", 10),
    Exercise("scaled_dot_product_attention", "02_scaled_dot_product_attention",
             "Scaled dot-product attention with masks",
             "fn(q, k, v, mask=None) -> (output, weights)", _check_sdpa, "medium", 20),
    Exercise("causal_padding_mask", "03_causal_padding_masks", "Causal + padding masks",
             "fn(lengths, L, side='left') -> (B, L, L) bool", _check_masks, "easy", 15),
    Exercise("additive_attention", "04_additive_attention", "Additive (Bahdanau) attention",
             "fn(q, k, v, W_q, W_k, w_v, mask=None) -> (output, weights)",
             _check_additive, "medium", 20),
    Exercise("sequence_attention_scores", "09_sequence_attention_scores",
             "Attention scores between two sequences", "fn(x, y, W) -> (B, Lx, Ly)",
             _check_bilinear, "easy", 10),
)
