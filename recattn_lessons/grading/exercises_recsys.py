"""Checks for the recommender exercises: HR@K / NDCG@K, DIN-style target
attention pooling, weighted-sum attention pooling and batched scoring of all
candidates.

Introduced with the interview exercises (notebooks 06, 07, 08, 13); the
references come from :mod:`recattn_lessons.attention` and
:mod:`recattn_lessons.metrics`, never from the solutions.
"""

from __future__ import annotations


import torch
from torch import nn

from recattn_lessons import attention as ref
from recattn_lessons import metrics
from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import Case, Exercise, Mistake, run_cases
from recattn_lessons.grading.guard import rng_devices
from recattn_lessons.grading.exercises_attention import _randn

__all__ = ["EXERCISES"]


# --------------------------------------------------------------------------
# HR@K and NDCG@K
# --------------------------------------------------------------------------
def _rank_cases() -> list[Case]:
    g = torch.Generator().manual_seed(8)
    return [
        Case("ranks [0, 1, 2, 3, 4, 5], k = 3", (torch.tensor([0, 1, 2, 3, 4, 5]), 3)),
        Case("ranks [0, 9, 10, 11, 3], k = 10 (boundary at rank 10)",
             (torch.tensor([0, 9, 10, 11, 3]), 10)),
        Case("k = 1", (torch.tensor([0, 1, 0, 7]), 1)),
        Case("200 random ranks in [0, 50), k = 10",
             (torch.randint(0, 50, (200,), generator=g), 10)),
    ]


def _check_hr(fn) -> str:
    run_cases(fn, _rank_cases(), metrics.hit_rate_at_k, M.HIT_RATE, ("HR@K",),
              "fn(ranks, k) -> float")
    return "HR@K is right at the rank-K boundary, for k = 1 and for random ranks."


def _check_ndcg(fn) -> str:
    run_cases(fn, _rank_cases(), metrics.ndcg_at_k, M.NDCG, ("NDCG@K",),
              "fn(ranks, k) -> float")
    return "NDCG@K discounts with 1 / log2(rank + 2) and cuts off at rank K."


# --------------------------------------------------------------------------
# DIN-style target attention pooling
# --------------------------------------------------------------------------
def _din(history, target, mask, mlp, *, diff="h-t", soft="ok"):
    t = target[:, None, :].expand_as(history)  # (B, L, D)
    d = history - t if diff == "h-t" else t - history
    s = mlp(torch.cat([history, t, d, history * t], dim=-1)).squeeze(-1)  # (B, L)
    if soft == "ok":
        out, w = ref.attend(s[:, None, :], history, mask[:, None, :])
        return out[:, 0], w[:, 0]  # (B, D), (B, L)
    w = M.weights_variant(s, mask, soft)  # (B, L)
    return (w[:, :, None] * history).sum(1), w


def _din_mistake(name, explain, **kw) -> Mistake:
    return Mistake(name, explain, lambda *a: _din(*a, **kw))


_DIN_MISTAKES = (
    _din_mistake("t - h instead of h - t", "The features are [h, t, h - t, h * t] in "
                 "that order.", diff="t-h"),
    _din_mistake("softmax skipped", "The DIN paper leaves weights unnormalized on "
                 "purpose; this exercise asks for a masked softmax over the history.",
                 soft="none"),
    _din_mistake("padding not masked", "Padded history positions must get weight 0: "
                 "fill their scores with -inf before the softmax.", soft="nomask"),
    _din_mistake("mask applied after the softmax", "Mask before the softmax so the "
                 "real positions' weights sum to 1.", soft="after"),
    _din_mistake("mask with inverted polarity", "mask is True at real history items.",
                 soft="inverted"),
    _din_mistake("softmax over the batch", "Normalize over the history axis (dim=1 of "
                 "(B, L)), not over users.", soft="axis"),
    _din_mistake("NaN for an empty history", "A user with no history must get a zero "
                 "vector and zero weights, not NaN.", soft="nan"),
    _din_mistake(*M.BIG_NEGATIVE, soft="big_negative"),
    _din_mistake(*M.ZERO_FILL, soft="zero"),
)


def _din_cases() -> list[Case]:
    g = torch.Generator().manual_seed(9)
    out = []
    for B, L, D, dtype, empty in ((2, 3, 4, torch.float64, False), (4, 6, 8, torch.float64, True),
                                  (3, 5, 8, torch.float32, False), (1, 1, 4, torch.float64, False),
                                  (1, 4, 4, torch.float64, False)):
        with torch.random.fork_rng(devices=rng_devices()):
            torch.manual_seed(B)
            mlp = nn.Sequential(nn.Linear(4 * D, 16), nn.PReLU(), nn.Linear(16, 1)).to(dtype)
        lengths = torch.randint(1, L + 1, (B,), generator=g)
        lengths[-1] = 0 if empty else lengths[-1]
        mask = ref.padding_mask(lengths, L, side="left")
        desc = f"B={B}, L={L}, D={D}, {str(dtype)[6:]}, lengths {lengths.tolist()}"
        out.append(Case(desc, (_randn(g, B, L, D, dtype=dtype), _randn(g, B, D, dtype=dtype),
                               mask, mlp)))
    return out


def _check_din(fn) -> str:
    with torch.no_grad():
        run_cases(fn, _din_cases(), _din, _DIN_MISTAKES, ("pooled", "weights"),
                  "fn(history, target, mask, mlp) -> (pooled, weights)")
    return "Target attention over the history with padding masked and empty histories handled."


# --------------------------------------------------------------------------
# weighted-sum attention pooling (the source's problem 1, made to use its query)
# --------------------------------------------------------------------------
def _pool(inputs, query, mask=None, **kw):
    m = None if mask is None else mask[:, None, :]
    out, w = M._sdpa(query[:, None, :], inputs, inputs, m, **kw) if kw else \
        ref.scaled_dot_product_attention(query[:, None, :], inputs, inputs, m)
    return out[:, 0], w[:, 0]  # (B, D), (B, L)


def _mean_pool(inputs, query, mask=None):
    w = torch.ones(inputs.shape[:2], dtype=inputs.dtype) if mask is None else mask.to(inputs.dtype)
    w = w / w.sum(1, keepdim=True).clamp_min(1)
    return (w[:, :, None] * inputs).sum(1), w


_POOL_MISTAKES = (
    Mistake("the query is ignored", "Your weights do not depend on the query (the "
            "source's SimpleAttention bug): score each input against it, "
            "inputs @ query / sqrt(D).", _mean_pool),
    Mistake("missing scaling", "Divide the scores by sqrt(D) = sqrt(query.shape[-1]).",
            lambda *a: _pool(*a, scale="none")),
    Mistake("mask applied after the softmax", "Mask before the softmax.",
            lambda *a: _pool(*a, soft="after")),
    Mistake("mask with inverted polarity", "mask is True at real positions.",
            lambda *a: _pool(*a, soft="inverted")),
    Mistake("NaN for a fully-masked row", "An all-padding sequence must pool to a zero "
            "vector, not NaN.", lambda *a: _pool(*a, soft="nan")),
    Mistake("softmax that overflows on large logits", "Subtract the max before exp "
            "(or use torch.softmax).", lambda *a: _pool(*a, soft="naive")),
    Mistake(*M.BIG_NEGATIVE, lambda *a: _pool(*a, soft="big_negative")),
    Mistake(*M.ZERO_FILL, lambda *a: _pool(*a, soft="zero")),
)


def _check_pool(fn) -> str:
    g = torch.Generator().manual_seed(10)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    mask = ref.padding_mask(torch.tensor([5, 2, 0]), 5, side="right")
    cases = [
        Case("inputs (2, 4, 3), query (2, 3)", (r(2, 4, 3), r(2, 3))),
        Case("a padding mask with an all-padding row, lengths [5, 2, 0]",
             (r(3, 5, 8), r(3, 8), mask)),
        Case("large inputs (~ 100 * N(0, 1))", (r(2, 6, 8, scale=100.0), r(2, 8, scale=100.0))),
        Case("float32", (r(4, 7, 16, dtype=torch.float32), r(4, 16, dtype=torch.float32))),
        Case("one sequence of length 1: inputs (1, 1, 4), query (1, 4)", (r(1, 1, 4), r(1, 4))),
        Case("one sequence, with a mask: inputs (1, 5, 4), query (1, 4), length 3",
             (r(1, 5, 4), r(1, 4), ref.padding_mask(torch.tensor([3]), 5))),
    ]
    run_cases(fn, cases, _pool, _POOL_MISTAKES, ("pooled", "weights"),
              "fn(inputs, query, mask=None) -> (pooled, weights)")
    return "Pooling driven by the query, masked, stable on large inputs."


# --------------------------------------------------------------------------
# batched scoring of every candidate (the source's problem 6)
# --------------------------------------------------------------------------
def _score_all(history, mask, candidates, **kw):
    B, N = history.shape[0], candidates.shape[0]
    q = candidates[None].expand(B, N, -1)  # (B, N, D)
    out, _ = (M._sdpa(q, history, history, mask[:, None, :], **kw) if kw else
              ref.scaled_dot_product_attention(q, history, history, mask[:, None, :]))
    return (out * q).sum(-1)  # (B, N)


_SCORE_MISTAKES = (
    Mistake("missing scaling", "Divide history @ candidate by sqrt(D).",
            lambda *a: _score_all(*a, scale="none")),
    Mistake("padding not masked", "Padded history items must get weight 0.",
            lambda h, m, c: _score_all(h, torch.ones_like(m), c)),
    Mistake("mask with inverted polarity", "mask is True at real history items.",
            lambda *a: _score_all(*a, soft="inverted")),
    Mistake("NaN for an empty history", "A user with no history scores 0, not NaN.",
            lambda *a: _score_all(*a, soft="nan")),
    Mistake(*M.BIG_NEGATIVE, lambda *a: _score_all(*a, soft="big_negative")),
    Mistake(*M.ZERO_FILL, lambda *a: _score_all(*a, soft="zero")),
    Mistake("mask applied after the softmax", "Mask before the softmax so each user's "
            "weights over the real history items sum to 1.",
            lambda *a: _score_all(*a, soft="after")),
)


def _check_score_all(fn) -> str:
    g = torch.Generator().manual_seed(11)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    cases = [
        Case("B=2, L=4, D=8, N=5 candidates", (r(2, 4, 8), torch.ones(2, 4, dtype=torch.bool),
                                               r(5, 8))),
        Case("left padding, lengths [6, 3, 0]", (r(3, 6, 8), ref.padding_mask(
            torch.tensor([6, 3, 0]), 6, side="left"), r(40, 8))),
        Case("float32, B=8, L=20, D=16, N=100",
             (r(8, 20, 16, dtype=torch.float32),
              ref.padding_mask(torch.randint(0, 21, (8,), generator=g), 20, side="left"),
              r(100, 16, dtype=torch.float32))),
        Case("one user, one history item, one candidate: B=1, L=1, N=1",
             (r(1, 1, 8), torch.ones(1, 1, dtype=torch.bool), r(1, 8))),
        Case("one user with left padding, lengths [2], L=4, N=3",
             (r(1, 4, 8), ref.padding_mask(torch.tensor([2]), 4, side="left"), r(3, 8))),
    ]
    run_cases(fn, cases, _score_all, _SCORE_MISTAKES, ("scores",),
              "score_all(history, mask, candidates) -> (B, N)")
    return "Every candidate scored at once, equal to the one-by-one loop."


EXERCISES = (
    Exercise("hit_rate_at_k", "06_hit_rate_ndcg", "HR@K", "fn(ranks, k) -> float",
             _check_hr, "easy", 10),
    Exercise("ndcg_at_k", "06_hit_rate_ndcg", "NDCG@K", "fn(ranks, k) -> float",
             _check_ndcg, "easy", 10),
    Exercise("din_attention_pooling", "07_din_attention_pooling",
             "DIN-style target attention pooling",
             "fn(history, target, mask, mlp) -> (pooled, weights)", _check_din, "medium", 25),
    Exercise("weighted_sum_attention", "08_weighted_sum_attention",
             "Weighted-sum attention pooling that uses its query",
             "fn(inputs, query, mask=None) -> (pooled, weights)", _check_pool, "easy", 15),
    Exercise("batched_candidate_scoring", "13_batched_candidate_scoring",
             "Score every candidate in one batched op",
             "score_all(history, mask, candidates) -> (B, N)", _check_score_all, "medium", 25),
)
