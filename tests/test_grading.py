"""The checker's behaviour: verdicts, friendly errors, correct alternatives, hints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recattn_lessons import attention as A
from recattn_lessons import metrics
from recattn_lessons.grading import EXERCISES, CheckResult, check, hint
from recattn_lessons.grading.hints import HINTS


# ---------------------------------------------------------------- correct alternatives
def sdpa_masked_fill(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return w @ v, w


def sdpa_pytorch(q, k, v, mask=None):
    """PyTorch's fused function for the output; fully-masked rows zeroed explicitly."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
        out = out.masked_fill(~mask.any(-1, keepdim=True), 0.0)
    return out, torch.softmax(s, -1).nan_to_num(0.0)


def sdpa_loop_over_queries(q, k, v, mask=None):
    """A different, valid loop order: one query position at a time."""
    outs, ws = [], []
    for i in range(q.shape[-2]):
        s = (q[..., i:i + 1, :] @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5  # (..., 1, Lk)
        if mask is not None:
            m = mask.expand(*mask.shape[:-2], q.shape[-2], mask.shape[-1])[..., i:i + 1, :]
            s = s.masked_fill(~m, -math.inf)
        w = torch.where(torch.isinf(s).all(-1, keepdim=True), torch.zeros_like(s),
                        torch.softmax(s, -1))
        outs.append(w @ v)
        ws.append(w)
    return torch.cat(outs, -2), torch.cat(ws, -2)


def ndcg_python_loop(ranks, k):
    total = 0.0
    for r in ranks.tolist():
        if r < k:
            total += 1 / math.log2(r + 2)
    return total / len(ranks)


@pytest.mark.parametrize("exercise_id, fn", [
    ("softmax", A.softmax),
    ("softmax", lambda x, dim=-1: torch.softmax(x, dim)),
    ("softmax", lambda x, dim=-1: torch.exp(x - torch.logsumexp(x, dim, keepdim=True))),
    ("scaled_dot_product_attention", sdpa_masked_fill),
    ("scaled_dot_product_attention", sdpa_pytorch),
    ("scaled_dot_product_attention", sdpa_loop_over_queries),
    ("scaled_dot_product_attention",
     lambda q, k, v, mask=None: A.scaled_dot_product_attention(q, k, v, mask)),
    ("hit_rate_at_k", metrics.hit_rate_at_k),
    ("hit_rate_at_k", lambda r, k: sum(int(x) < k for x in r) / len(r)),
    ("ndcg_at_k", metrics.ndcg_at_k),
    ("ndcg_at_k", ndcg_python_loop),
    ("causal_padding_mask", lambda lengths, L, side="left": A.causal_mask(L)[None]
     & A.padding_mask(lengths, L, side)[:, None, :]),
    ("bug_attention_scores", lambda i, q: torch.einsum("bqd,bld->bql", q, i)),
    ("sequence_attention_scores", lambda x, y, W: torch.einsum("bxi,ij,byj->bxy", x, W, y)),
])
def test_correct_alternatives_pass(exercise_id, fn):
    res = check(exercise_id, fn)
    assert res.passed, res.message
    assert res.status == "passed"


def test_not_attempted():
    def stub(x, dim=-1):
        raise NotImplementedError("Exercise: replace this line with your solution")
    res = check("softmax", stub)
    assert not res.passed and not res.attempted and res.status == "not attempted"
    assert "Not attempted yet" in res.message


def test_learner_exception_points_at_the_learner_line():
    def my_softmax(x, dim=-1):
        e = torch.exp(x)
        return e / e.sum(dim, keepdim=True) @ torch.ones(2)  # the faulty line
    res = check("softmax", my_softmax)
    assert not res.passed
    assert "RuntimeError" in res.message and "my_softmax" in res.message
    assert "@ torch.ones(2)" in res.message  # the learner's own source line
    assert "torch/" not in res.message and "site-packages" not in res.message
    assert len(res.message.splitlines()) <= 4


def test_wrong_signature_names_the_expected_call():
    res = check("softmax", lambda x: torch.softmax(x, -1))
    assert not res.passed and "fn(x, dim=-1)" in res.message


def test_wrong_shape_says_expected_and_got():
    def transposed(q, k, v, mask=None):
        out, w = sdpa_masked_fill(q, k, v, mask)
        return out.transpose(-2, -1), w
    res = check("scaled_dot_product_attention", transposed)
    assert not res.passed
    assert "output has the wrong shape: expected (2, 3, 4), got (2, 4, 3)" in res.message


def test_wrong_return_type():
    res = check("scaled_dot_product_attention", lambda q, k, v, mask=None: q)
    assert not res.passed and "should return a tuple (output, weights)" in res.message


def test_unknown_id_suggests_the_closest():
    res = check("sofmax", A.softmax)  # a result, not a KeyError traceback
    assert not res.passed and "did you mean 'softmax'" in res.message


def test_check_leaves_the_global_rng_and_threads_alone():
    torch.manual_seed(123)
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    check("multi_head_attention", A.MultiHeadAttention)  # trains and samples inside
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_check_result_renders_everywhere():
    res = CheckResult(False, "Likely bug: <missing scaling>", "softmax")
    assert str(res).startswith("[FAIL] softmax: failed")
    assert "**[FAIL] `softmax`: failed**" in res._repr_markdown_()
    html = res._repr_html_()
    assert "&lt;missing scaling&gt;" in html and "word-break:normal" in html
    assert str(res).isascii() and html.isascii()  # no emoji that show as boxes
    assert not bool(res)


def test_hints_are_progressive_for_every_exercise():
    assert set(HINTS) == set(EXERCISES)
    for eid in EXERCISES:
        one, every = hint(eid, 1), hint(eid, 99)
        assert len(one.lines) == 1 and one.more
        assert len(every.lines) == len(HINTS[eid]) >= 3 and not every.more
        assert every.lines[0] == one.lines[0]
        assert "Hint 2" in str(hint(eid, 2)) and "Hint 3" not in str(hint(eid, 2))
    assert "levels start at 1" in hint("softmax", 0)
    assert "did you mean" in hint("softmx", 1)
    assert str(hint("softmax", "2")) == str(hint("softmax", 2))  # a string level works
    assert "is a number" in hint("softmax", "two")


def test_at_least_fourteen_exercises_with_metadata():
    assert len(EXERCISES) >= 14
    for ex in EXERCISES.values():
        assert ex.difficulty in {"easy", "medium", "hard"} and 5 <= ex.minutes <= 60
        assert "(" in ex.signature
