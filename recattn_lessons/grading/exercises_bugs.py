"""Checks for the spot-the-bug exercises on the source article's own snippets:
the tf.keras ``Attention`` use (000, section 5.2), ``attention_scores`` and the
multimodal fusion (004). ``SimpleAttention`` is a module: see
:mod:`recattn_lessons.grading.exercises_modules`.

Introduced with the interview exercises (notebooks 14-17).
"""

from __future__ import annotations

import math

import torch

from recattn_lessons import attention as ref
from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import Case, Exercise, Mistake, run_cases
from recattn_lessons.grading.exercises_attention import _randn

__all__ = ["EXERCISES"]


def _dot_scores(input_seq, query_seq):
    return query_seq @ input_seq.transpose(-2, -1)  # (B, Lq, L)


_DOT_MISTAKES = (
    Mistake("result transposed", "The source's comment wants one row per query: "
            "(B, Lq, L) = query_seq @ input_seq^T; you returned (B, L, Lq).",
            lambda i, q: i @ q.transpose(-2, -1)),
    Mistake("scaled scores", "Return raw dot products here; the 1/sqrt(d) scaling "
            "belongs to the attention step.",
            lambda i, q: _dot_scores(i, q) / math.sqrt(i.shape[-1])),
    Mistake("only the first query", "Every query gets its row of scores, not only "
            "query_seq[:, 0].", lambda i, q: (i @ q[:, 0, :, None]).transpose(-2, -1)),
)


def _check_dot_scores(fn) -> str:
    g = torch.Generator().manual_seed(5)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    cases = [
        Case("the source's shapes: input_seq (16, 10, 5), query_seq (16, 3, 5)",
             (r(16, 10, 5), r(16, 3, 5))),
        Case("L == Lq: input_seq (2, 4, 3), query_seq (2, 4, 3)", (r(2, 4, 3), r(2, 4, 3))),
        Case("one query: query_seq (3, 1, 6)", (r(3, 8, 6), r(3, 1, 6))),
        Case("float32", (r(2, 6, 4, dtype=torch.float32), r(2, 5, 4, dtype=torch.float32))),
        Case("batch of 1, one query: input_seq (1, 5, 3), query_seq (1, 1, 3)",
             (r(1, 5, 3), r(1, 1, 3))),
    ]
    run_cases(fn, cases, _dot_scores, _DOT_MISTAKES, ("scores",),
              "attention_scores(input_seq, query_seq) -> (B, Lq, L)")
    return "Scores for every query against every input position, shape (B, Lq, L)."


# --------------------------------------------------------------------------
# the source's tf.keras Attention snippet, fixed
# --------------------------------------------------------------------------
def _keras_elementwise(Q, K, V):
    out, w = ref.scaled_dot_product_attention(Q, K, V)
    return (w * V).sum(1), w  # the source's tf.reduce_sum(attentions * V, axis=1)


_KERAS_MISTAKES = (
    Mistake("K used in place of V (what Attention()([Q, K]) does)", "Keras reads a "
            "2-element list as [query, value] and uses value as the key too, so the "
            "source mixed K's rows. Mix V: weights @ V.",
            lambda Q, K, V: ref.scaled_dot_product_attention(Q, K, K)),
    Mistake("missing scaling (Keras' default use_scale=False)", "The article's formula "
            "divides by sqrt(d_k); Keras' dot-product layer does not.",
            lambda Q, K, V: M._sdpa(Q, K, V, scale="none")),
    Mistake("elementwise product instead of a matrix product", "(weights * V).sum(axis=1) "
            "is not weights @ V: the source multiplied entry by entry.", _keras_elementwise),
    Mistake("softmax over the wrong axis", "Each query's weights over the keys must sum "
            "to 1: softmax(scores, dim=-1), not over the queries.",
            lambda Q, K, V: M._sdpa(Q, K, V, axis=-2)),
)


def _check_keras(fn) -> str:
    g = torch.Generator().manual_seed(6)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    Q = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]], dtype=torch.float64)
    K = torch.tensor([[1.0, 1, 1], [2, 2, 2], [3, 3, 3]], dtype=torch.float64)
    cases = [Case("the source's Q, K, V (3 x 3)", (Q, K, Q.clone())),
             Case("Q (2, 4, 8), K (2, 6, 8), V (2, 6, 3)", (r(2, 4, 8), r(2, 6, 8), r(2, 6, 3))),
             Case("float32 Q (5, 16), K (7, 16), V (7, 2)",
                  tuple(t.float() for t in (r(5, 16), r(7, 16), r(7, 2)))),
             Case("a batch of 1: Q (1, 4, 8), K (1, 6, 8), V (1, 6, 3)",
                  (r(1, 4, 8), r(1, 6, 8), r(1, 6, 3)))]
    run_cases(fn, cases, ref.scaled_dot_product_attention, _KERAS_MISTAKES,
              ("context", "weights"), "fn(Q, K, V) -> (context, weights)")
    return "softmax(Q K^T / sqrt(d_k)) and its mix of V, as the article's formula says."


# --------------------------------------------------------------------------
# the source's multimodal fusion, fixed
# --------------------------------------------------------------------------
def _fusion(ut, ui, it, ii, *, scale=True, combine="mean", dim=-1):
    st = ut @ it.T / (math.sqrt(ut.shape[-1]) if scale else 1.0)  # (B, N)
    si = ui @ ii.T / (math.sqrt(ui.shape[-1]) if scale else 1.0)  # (B, N)
    if combine == "scores":
        w = torch.softmax(st + si, dim=dim)
    else:
        w = torch.softmax(st, dim=dim) + torch.softmax(si, dim=dim)
        w = w / 2 if combine == "mean" else w
    return w, w @ torch.cat((it, ii), dim=1)  # (B, N), (B, dt + di)


def _fusion_mistake(name, explain, **kw) -> Mistake:
    return Mistake(name, explain, lambda *a: _fusion(*a, **kw))


_FUSION_MISTAKES = (
    _fusion_mistake("weights sum to 2", "Two softmaxes added give rows summing to 2; "
                    "average them (or weight them alpha, 1 - alpha).", combine="sum"),
    _fusion_mistake("missing per-modality scaling", "Text (d=10) and image (d=20) dot "
                    "products have different spreads; divide each by sqrt(its d) so "
                    "one modality does not dominate.", scale=False),
    _fusion_mistake("scores mixed before one softmax", "This exercise averages the two "
                    "*distributions* softmax(text) and softmax(image); adding the "
                    "scores first is a different model.", combine="scores"),
    _fusion_mistake("softmax over the users", "Each user's weights run over the N "
                    "items: softmax(dim=-1), not dim=0.", dim=0),
)


def _check_fusion(fn) -> str:
    g = torch.Generator().manual_seed(7)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    cases = [
        Case("the source's shapes: one user, text d=10, image d=20, 10 items",
             (r(1, 10), r(1, 20), r(10, 10), r(10, 20))),
        Case("3 users, 6 items, text d=4, image d=9", (r(3, 4), r(3, 9), r(6, 4), r(6, 9))),
        Case("float32, 2 users, 5 items",
             tuple(t.float() for t in (r(2, 8), r(2, 3), r(5, 8), r(5, 3)))),
    ]
    run_cases(fn, cases, _fusion, _FUSION_MISTAKES, ("weights", "fused"),
              "fuse(user_text, user_image, item_text, item_image) -> (weights, fused)")
    return "Per-user weights over the items that sum to 1, and the fused (B, dt + di) vector."


EXERCISES = (
    Exercise("bug_keras_attention", "14_bug_keras_attention",
             "Spot the bug: the tf.keras Attention snippet", "fn(Q, K, V) -> (context, weights)",
             _check_keras, "medium", 15),
    Exercise("bug_attention_scores", "16_bug_attention_scores", "Spot the bug: attention_scores",
             "attention_scores(input_seq, query_seq) -> (B, Lq, L)", _check_dot_scores, "easy", 10),
    Exercise("bug_multimodal_fusion", "17_bug_multimodal_fusion",
             "Spot the bug: the multimodal fusion",
             "fuse(user_text, user_image, item_text, item_image) -> (weights, fused)",
             _check_fusion, "medium", 15),
)
