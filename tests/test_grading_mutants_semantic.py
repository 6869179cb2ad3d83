"""Mutation test of the grader for the semantic-ID exercises (27, 28, 29; lesson 10):
wrong programs fail with a message naming the mistake, correct-but-unusual programs pass
(torch.cdist, a Python loop over items, topk, a sort of (B, V, W), sets, bincount, float64
inside), also under ``torch.no_grad()``. The graders' references are checked here against
brute force. See tests/test_grading_mutants.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mutant_catalogue import Catalogue, catalogue_tests
from recattn_lessons.grading import EXERCISES, check, exercises_semantic as S
from recattn_lessons.grading.core import CheckFailure

CAT = Catalogue()
wrong, right = CAT.add_wrong, CAT.add_right


def counts() -> dict[str, tuple[int, int]]:
    """Exercise id -> (wrong programs, correct programs) tried here."""
    return CAT.counts([e.id for e in S.EXERCISES])


# --------------------------------------------------------------------------
# 27 one step of residual quantization
# --------------------------------------------------------------------------
def rq(*, dist="cdist", pick="argmin", dim=1, new="minus", codes_as="long"):
    """A learner's quantization step with one switch per bug."""
    def fn(residual, codebook):
        if dist == "cdist":
            d = torch.cdist(residual, codebook) ** 2  # (N, K)
        elif dist == "no_c2":
            d = -2 * residual @ codebook.T
        elif dist == "plus":
            d = (codebook ** 2).sum(1) + 2 * residual @ codebook.T
        else:  # cosine distance
            d = 1 - F.normalize(residual, dim=1) @ F.normalize(codebook, dim=1).T
        codes = d.argmax(dim) if pick == "argmax" else d.argmin(dim)
        quantized = codebook[codes]
        rest = {"minus": residual - quantized, "plus": residual + quantized,
                "quantized": quantized, "input": residual.clone()}[new]
        return (codes.float() if codes_as == "float" else codes), quantized, rest
    return fn


E = "residual_quantize"
for kw, words in [({"pick": "argmax"}, "farthest code"), ({"dist": "no_c2"}, "||c||^2 term dropped"),
                  ({"dist": "cosine"}, "cosine"), ({"dist": "plus"}, "+2 r.c"),
                  ({"dim": 0}, "wrong axis"), ({"new": "plus"}, "residual + quantized"),
                  ({"new": "quantized"}, "quantized vector returned as the new residual"),
                  ({"new": "input"}, "input passed on"), ({"codes_as": "float"}, "codes as float")]:
    wrong(E, words)(rq(**kw))


@wrong(E, "nearest by dot product")
def _rq_dot(residual, codebook):  # the largest similarity
    codes = (residual @ codebook.T).argmax(1)
    return codes, codebook[codes], residual - codebook[codes]


@wrong(E, "wrong sign")
def _rq_flipped(residual, codebook):
    codes = torch.cdist(residual, codebook).argmin(1)
    return codes, codebook[codes], codebook[codes] - residual


@wrong(E, "wrong shape")
def _rq_keepdim(residual, codebook):  # codes kept as (N, 1)
    codes = torch.cdist(residual, codebook).argmin(1, keepdim=True)
    return codes, codebook[codes[:, 0]], residual - codebook[codes[:, 0]]


@wrong(E, "should be torch.long")
def _rq_int32(residual, codebook):
    codes = torch.cdist(residual, codebook).argmin(1)
    return codes.int(), codebook[codes], residual - codebook[codes]


@wrong(E, "in place")
def _rq_in_place(residual, codebook):
    codes = torch.cdist(residual, codebook).argmin(1)
    q = codebook[codes]
    residual -= q
    return codes, q, residual


right(E)(rq())


@right(E)
def _rq_loop(residual, codebook):  # item by item, float64 inside
    codes = []
    for r in residual.double():
        d = [float(((r - c) ** 2).sum()) for c in codebook.double()]
        codes.append(min(range(len(d)), key=d.__getitem__))  # the first minimum
    codes = torch.tensor(codes)
    q = codebook[codes]
    return codes, q, residual - q


@right(E)
def _rq_expanded(residual, codebook):  # ||r||^2 - 2 r.c + ||c||^2, broadcast and gathered
    d = (residual ** 2).sum(1, keepdim=True) - 2 * residual @ codebook.T + (codebook ** 2).sum(1)
    codes = d.argmin(-1)
    q = codebook.index_select(0, codes)
    return codes, q, residual - q


def test_rq_reference_is_brute_force():
    for case in S._rq_cases():
        for a, b in zip(S.rq_reference(*case.args), _rq_loop(*case.args)):
            assert a.dtype == b.dtype and torch.allclose(a.double(), b.double())


# --------------------------------------------------------------------------
# 28 one step of trie-constrained beam search
# --------------------------------------------------------------------------
def beam(*, fill=float("-inf"), add=True, rank="total", div="V", per_beam=False, order="topk",
         swap=False):
    """A learner's beam step built on topk, one switch per bug."""
    def fn(beam_scores, log_probs, allowed, beam_size):
        B, W, V = log_probs.shape
        step = log_probs if fill is None else log_probs.masked_fill(~allowed, fill)
        total = beam_scores[:, :, None] + step if add else step  # (B, W, V)
        flat = total.reshape(B, W * V)
        if per_beam:
            s, tok = total.topk(math.ceil(beam_size / W), dim=-1)  # (B, W, m)
            idx = (tok + V * torch.arange(W)[None, :, None]).reshape(B, -1)
            keep = s.reshape(B, -1).topk(beam_size, dim=1).indices
            idx = idx.gather(1, keep)
        elif rank == "step":
            idx = step.reshape(B, W * V).topk(beam_size, dim=1).indices
        elif order == "ascending":
            idx = flat.argsort(dim=1)[:, :beam_size]
        else:
            idx = flat.topk(beam_size, dim=1).indices
            if order == "by_index":
                idx = idx.sort(dim=1).values
        scores = flat.gather(1, idx)
        n = V if div == "V" else W
        parent, token = idx // n, idx % n
        return (scores, token, parent) if swap else (scores, parent, token)
    return fn


E = "constrained_beam_step"
for kw, words in [({"fill": None}, "mask ignored"), ({"fill": 0.0}, "masked with 0 instead of -inf"),
                  ({"fill": -1e9}, "-1e9 instead of -inf"), ({"add": False}, "beam_scores not added"),
                  ({"rank": "step"}, "step's log-prob only"), ({"div": "W"}, "wrong divisor"),
                  ({"swap": True}, "parent and token swapped"), ({"per_beam": True}, "per beam"),
                  ({"order": "by_index"}, "not sorted best first"),
                  ({"order": "ascending"}, "worst continuations kept")]:
    wrong(E, words)(beam(**kw))


@wrong(E, "masked with 0 instead of -inf")
def _beam_zero_total(beam_scores, log_probs, allowed, beam_size):  # the sum masked with 0
    B, W, V = log_probs.shape
    total = torch.where(allowed, beam_scores[:, :, None] + log_probs, torch.zeros_like(log_probs))
    s, i = total.reshape(B, -1).topk(beam_size, dim=1)
    return s, i // V, i % V


def _beam_reversed_ties(fill):
    """The fill masks, and ties (among the filled entries) go to the *last* index: the named
    mistake must not depend on the order of ties."""
    def fn(beam_scores, log_probs, allowed, beam_size):
        B, W, V = log_probs.shape
        total = beam_scores[:, :, None] + log_probs.masked_fill(~allowed, fill)
        s, i = total.reshape(B, -1).flip(1).topk(beam_size, dim=1)
        i = W * V - 1 - i
        return s, i // V, i % V
    return fn


wrong(E, "masked with 0 instead of -inf")(_beam_reversed_ties(0.0))
wrong(E, "-1e9 instead of -inf")(_beam_reversed_ties(-1e9))
right(E)(_beam_reversed_ties(float("-inf")))  # ties only among -inf: any parent and token


@wrong(E, "per beam")
def _beam_greedy_per_beam(beam_scores, log_probs, allowed, beam_size):  # each beam's best token
    total = (beam_scores[:, :, None] + log_probs).masked_fill(~allowed, float("-inf"))
    scores, token = total.max(-1)  # (B, W): one child per beam
    parent = torch.arange(total.shape[1]).expand_as(token)
    return scores[:, :beam_size], parent[:, :beam_size], token[:, :beam_size]


@wrong(E, "inverted polarity")
def _beam_inverted(beam_scores, log_probs, allowed, beam_size):  # fills where allowed
    B, W, V = log_probs.shape
    total = (beam_scores[:, :, None] + log_probs).masked_fill(allowed, float("-inf"))
    s, i = total.reshape(B, -1).topk(beam_size, dim=1)
    return s, i // V, i % V


@wrong(E, "should be torch.long")
def _beam_float_index(beam_scores, log_probs, allowed, beam_size):
    B, W, V = log_probs.shape
    total = (beam_scores[:, :, None] + log_probs).masked_fill(~allowed, float("-inf"))
    s, i = total.reshape(B, -1).topk(beam_size, dim=1)
    return s, torch.div(i, V, rounding_mode="floor").float(), (i % V).float()


@wrong(E, "wrong shape")
def _beam_squeezed(beam_scores, log_probs, allowed, beam_size):  # .squeeze() drops B = 1
    B, W, V = log_probs.shape
    total = (beam_scores[:, :, None] + log_probs).masked_fill(~allowed, float("-inf"))
    s, i = total.reshape(B, -1).topk(beam_size, dim=1)
    return s.squeeze(), (i // V).squeeze(), (i % V).squeeze()


right(E)(beam())


@right(E)
def _beam_transposed(beam_scores, log_probs, allowed, beam_size):  # (B, V, W) sorted, -1e30
    B, W, V = log_probs.shape
    total = torch.where(allowed, beam_scores[:, :, None] + log_probs, torch.tensor(float("-inf"),
                        dtype=log_probs.dtype)).transpose(1, 2).reshape(B, V * W)
    s, i = torch.sort(total, dim=1, descending=True)
    i = i[:, :beam_size]
    return s[:, :beam_size], i % W, i // W


@right(E)
def _beam_loop(beam_scores, log_probs, allowed, beam_size):  # Python lists, float64 inside
    B, W, V = log_probs.shape
    out = torch.full((B, beam_size), float("-inf"), dtype=log_probs.dtype)
    parent = torch.zeros(B, beam_size, dtype=torch.long)
    token = torch.zeros(B, beam_size, dtype=torch.long)
    for b in range(B):
        cands = [(float(beam_scores[b, w].double() + log_probs[b, w, v].double()), w, v)
                 for w in range(W) for v in range(V) if allowed[b, w, v]]
        cands = [c for c in cands if c[0] > float("-inf")]
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        for j, (s, w, v) in enumerate(cands[:beam_size]):
            out[b, j], parent[b, j], token[b, j] = s, w, v
    return out, parent, token


def test_beam_reference_is_brute_force():
    for case in S._beam_cases():
        want = S._canon(_beam_loop(*case.args))
        got = S.beam_reference(*case.args)
        for a, b in zip(got, want):
            assert a.shape == b.shape and torch.allclose(a.double(), b.double(), equal_nan=True)


# --------------------------------------------------------------------------
# 29 codebook usage
# --------------------------------------------------------------------------
def usage(*, num="unique", den="K"):
    """A learner's usage with one switch per bug."""
    def fn(codes, codebook_size):
        n = {"unique": torch.unique(codes).numel(), "all": codes.numel(),
             "minus_one": torch.unique(codes).numel() - 1}[num]
        d = {"K": codebook_size, "N": len(codes), "max": int(codes.max()) + 1,
             "K-1": codebook_size - 1, "K+1": codebook_size + 1}[den]
        return n / d
    return fn


E = "codebook_usage"
for kw, words in [({"den": "N"}, "number of items"), ({"num": "all"}, "counting occurrences"),
                  ({"den": "max"}, "codes.max() + 1"), ({"den": "K+1"}, "off by one"),
                  ({"num": "minus_one"}, "off by one")]:
    wrong(E, words)(usage(**kw))


@wrong(E, "off by one")
def _use_k_minus_one(codes, codebook_size):  # raises ZeroDivisionError at K = 1, if it gets there
    return len(set(codes.tolist())) / (codebook_size - 1)


@wrong(E, "counting occurrences")
def _use_bincount_sum(codes, codebook_size):
    return float(torch.bincount(codes, minlength=codebook_size).sum()) / codebook_size


@wrong(E, "integer division")
def _use_floor(codes, codebook_size):
    return torch.unique(codes).numel() // codebook_size


@wrong(E, "count returned")
def _use_count(codes, codebook_size):
    return torch.unique(codes).numel()


@wrong(E, "one number")
def _use_mask(codes, codebook_size):  # the (K,) mask, not its mean
    used = torch.zeros(codebook_size)
    used[codes] = 1.0
    return used


right(E)(usage())


@right(E)
def _use_bincount(codes, codebook_size):  # a 0-d tensor
    return (torch.bincount(codes, minlength=codebook_size) > 0).double().mean()


@right(E)
def _use_set(codes, codebook_size):
    return len({int(c) for c in codes}) / codebook_size


@right(E)
def _use_mask_mean(codes, codebook_size):
    used = torch.zeros(codebook_size, dtype=torch.bool)
    used[codes] = True
    return float(used.float().mean())


@pytest.mark.parametrize("prop, program, words", [
    (S._rq_properties, rq(dist="no_c2"), "Intervention"),
    (S._rq_properties, rq(pick="argmax"), "Intervention"),
    (S._rq_properties, rq(new="plus"), "Reconstruction"),
    (S._beam_properties, beam(fill=None), "Intervention"),
    (S._beam_properties, beam(add=False), "Beam scores"),
    (S._use_properties, usage(den="N"), "Duplicates"),
    (S._use_properties, usage(den="max"), "New code"),
], ids=lambda x: getattr(x, "__name__", str(x))[:24])
def test_each_property_alone_rejects_a_wrong_cause(prop, program, words):
    """The properties test causes, not values: each one fails a program on its own."""
    with pytest.raises(CheckFailure, match=words):
        prop(program)


def test_usage_reference_is_brute_force():
    for case in S._use_cases():
        assert S.usage_reference(*case.args) == pytest.approx(_use_set(*case.args))


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


def test_every_semantic_exercise_has_enough_programs():
    few = {e: c for e, c in counts().items() if c[0] < 6 or c[1] < 3}
    assert set(counts()) == {"residual_quantize", "constrained_beam_step", "codebook_usage"}
    assert set(counts()) <= set(EXERCISES) and not few, few


(test_wrong_program_fails_and_names_the_mistake, test_correct_program_passes,
 test_correct_program_passes_under_no_grad) = catalogue_tests(CAT)


def test_a_learner_exception_points_at_the_line():
    def fn(residual, codebook):
        return torch.cdist(residual, codebook.T)  # a shape error inside the learner's code
    res = check("residual_quantize", fn)
    assert not res.passed and "Your code raised RuntimeError" in res.message
    assert "case 1/" in res.message and "torch.cdist(residual, codebook.T)" in res.message
