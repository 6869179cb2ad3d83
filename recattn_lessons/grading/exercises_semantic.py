"""Checks for the semantic-ID exercises (lesson 10, notebooks 27, 28, 29): one
step of residual quantization, one step of trie-constrained beam search, and
the share of a codebook that items use.

The references are the course's own code, never the solutions:
``recattn_lessons.items.semantic_ids.residual_quantize`` and
``codebook_usage``, and
``recattn_lessons.models.generative_retrieval.constrained_beam_step`` (the
mutation test, tests/test_grading_mutants_semantic.py, checks each against
brute force). Beyond equal values on fixed cases, each check tests a cause:
moving one code vector next to a residual gives that residual its code and
changes no code that the move did not make nearer; a second level lowers the
error; disallowing one chosen continuation removes it and only moves the
others up; raising one beam's score moves only that beam's continuations;
duplicating items leaves the usage alone and one item on a new code adds
exactly 1 / K.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from recattn_lessons.grading.core import (Case, CheckFailure, Exercise, Mistake, _structure, close,
                                          run_cases)
from recattn_lessons.grading.exercises_attention import _randn
from recattn_lessons.grading.exercises_generative import _call, _distinct
from recattn_lessons.items.semantic_ids import codebook_usage, residual_quantize
from recattn_lessons.models.generative_retrieval import constrained_beam_step

__all__ = ["EXERCISES", "rq_reference", "beam_reference", "usage_reference"]


def _long_outputs(fn: Callable, case: Case, names: tuple, which: tuple, signature: str,
                  float_mistake: tuple[str, str] | None = None) -> None:
    """The index outputs ``which`` (positions in the returned tuple) are torch.long."""
    got = _call(fn, case.args, signature, f"the dtype test ({case.desc})")
    for i in which:
        t = got[i]
        if t.dtype == torch.long:
            continue
        if t.is_floating_point() and float_mistake is not None:
            raise CheckFailure(f"Likely bug: {float_mistake[0]}. {float_mistake[1]}\n"
                               f"Seen on {case.desc}: {names[i]} is {t.dtype}.")
        raise CheckFailure(f"{names[i]} should be torch.long (int64) indices, got {t.dtype}: "
                           f"argmin, argmax, sort and topk return long; keep it (no .float(), "
                           f".int() or arithmetic with floats).")


# --------------------------------------------------------------------------
# 27 one step of residual quantization
# --------------------------------------------------------------------------
_RQ_SIG = "fn(residual, codebook) -> (codes, quantized, new_residual)"
_RQ_NAMES = ("codes", "quantized", "new_residual")


def rq_reference(residual: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return residual_quantize(residual, codebook)


def _rq(r, C, *, pick="distance", axis=1, new="minus"):
    """A learner's quantization step with one switch per bug."""
    rr, cc = r.double(), C.double()
    sq = ((rr[:, None, :] - cc[None, :, :]) ** 2).sum(-1)  # (N, K) squared distances
    score = {"distance": -sq, "farthest": sq, "dot": rr @ cc.T,  # (N, K): higher = picked
             "plus": -((cc * cc).sum(1)[None, :] + 2 * rr @ cc.T),
             "cosine": F.normalize(rr, dim=1) @ F.normalize(cc, dim=1).T}[pick]
    codes = score.argmax(axis)  # the first maximum on ties
    q = C[codes]
    rest = {"minus": r - q, "plus": r + q, "quantized": q, "input": r, "flipped": q - r}[new]
    return codes, q, rest


_RQ_FLOAT = ("codes as float", "A code is an index into the codebook: keep the torch.long that "
             "argmin returns (a float code cannot index codebook[codes], and a semantic-ID "
             "table is a LongTensor).")
_RQ_MISTAKES = (
    Mistake("the farthest code chosen (argmax of the distance)", "Each residual takes the "
            "code at the *smallest* squared distance: dist.argmin(dim=1) (or the argmax of a "
            "similarity, never of a distance).", lambda r, C: _rq(r, C, pick="farthest")),
    Mistake("nearest by dot product: the ||c||^2 term dropped", "||r - c||^2 = ||r||^2 - "
            "2 r.c + ||c||^2. ||r||^2 is the same for every code and may go; ||c||^2 may not: "
            "without it (the largest r.c, or the argmin of -2 r.c) a long code vector wins over "
            "a nearer short one.", lambda r, C: _rq(r, C, pick="dot")),
    Mistake("nearest by cosine instead of distance", "Normalising ignores the lengths: a code "
            "pointing the right way but twice as long is far away, and what it leaves behind is "
            "large. Use the squared Euclidean distance (torch.cdist, or the expansion ||c||^2 - "
            "2 r.c).", lambda r, C: _rq(r, C, pick="cosine")),
    Mistake("+2 r.c in the distance", "||r - c||^2 = ||r||^2 - 2 r.c + ||c||^2: with + 2 r.c "
            "you find the code nearest to -r.", lambda r, C: _rq(r, C, pick="plus")),
    Mistake("codes taken along the wrong axis", "The distance matrix is (N, K), one row per "
            "residual: take the argmin over the codes, dim=1. (dim=0 gives, for each code, its "
            "nearest residual.)", lambda r, C: _rq(r, C, axis=0)),
    Mistake("new_residual = residual + quantized", "The next level quantizes what this one left "
            "unexplained: new_residual = residual - quantized, so that quantized + new_residual "
            "= residual.", lambda r, C: _rq(r, C, new="plus")),
    Mistake("the quantized vector returned as the new residual", "new_residual is what is "
            "*left*, residual - quantized, not the code vector itself: the next level must "
            "explain the error of this one.", lambda r, C: _rq(r, C, new="quantized")),
    Mistake("the input passed on as the new residual", "Subtract the chosen code vector: "
            "new_residual = residual - quantized. Passing the input on makes the next level "
            "quantize the input again instead of the residual, so no level refines another.",
            lambda r, C: _rq(r, C, new="input")),
    Mistake("new_residual with the wrong sign (quantized - residual)", "new_residual = "
            "residual - quantized: quantized + new_residual must give back the residual.",
            lambda r, C: _rq(r, C, new="flipped")),
)


def _rq_cases() -> list[Case]:
    g = torch.Generator().manual_seed(27)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    lengths = torch.tensor([0.2, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)[:, None]
    C_mixed = F.normalize(r(5, 3), dim=1) * lengths  # (5, 3) rows of very different lengths
    C_exact = r(6, 4)
    pick = torch.randint(0, 6, (9,), generator=g)
    # integers, so every distance is exact: residual 0 is equally far from codes 1 and 2
    C_tie = torch.tensor([[3.0, 3.0], [1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
    R_tie = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    return [
        Case("N = K = 6 residuals and codes, D = 4", (r(6, 4), r(6, 4))),
        Case("N = 20, K = 5, D = 3, code vectors of lengths 0.2 to 4 (the nearest code is not "
             "the one of largest dot product)", (r(20, 3) * 1.5, C_mixed)),
        Case("float32, N = 30, K = 8, D = 16", (r(30, 16, dtype=torch.float32),
                                                r(8, 16, dtype=torch.float32))),
        Case("residuals that are code vectors (new residual 0), N = 9, K = 6",
             (C_exact[pick].clone(), C_exact)),
        Case("ties: a residual equally far from codes 1 and 2 takes code 1 (the lower index)",
             (R_tie, C_tie)),
        Case("K = 1: every residual gets code 0", (r(4, 5), r(1, 5))),
        Case("one residual, N = 1, K = 7, D = 5", (r(1, 5), r(7, 5))),
    ]


def _rq_outputs(fn, args: tuple, where: str) -> tuple[Tensor, Tensor, Tensor]:
    got = _call(fn, args, _RQ_SIG, where)
    want = rq_reference(*args)
    problem = _structure(got, want, _RQ_NAMES)
    if problem:
        raise CheckFailure(f"On {where}: {problem}")
    return tuple(t.detach() for t in got)


def _rq_properties(fn) -> None:
    """The code is the nearest: moving one code vector onto a residual gives it that code
    and changes only codes it made nearer; a second level lowers the error."""
    g = torch.Generator().manual_seed(270)
    R, C = _randn(g, 40, 6), _randn(g, 12, 6)
    codes, q, rest = _rq_outputs(fn, (R, C), "the intervention test")
    i = 0
    j = int((codes[i] + 1) % C.shape[0])  # a code residual 0 does not use
    moved = C.clone()
    moved[j] = R[i] + 1e-3 * _randn(g, 6)  # code vector j now sits next to residual 0
    codes2 = _rq_outputs(fn, (R, moved), "the intervention test")[0]
    if int(codes2[i]) != j:
        raise CheckFailure(f"Intervention: code vector {j} was moved next to residual {i}, so "
                           f"it is now the nearest, but residual {i}'s code is {int(codes2[i])}. "
                           f"The code is the argmin over the codebook of ||r - c||^2.")
    d_old = ((R - C[codes]) ** 2).sum(1)  # (N,) distance to the old code
    d_new = ((R - moved[j]) ** 2).sum(1)  # (N,) distance to the moved vector
    should = torch.where(codes == j, (R[:, None] - moved[None]).pow(2).sum(-1).argmin(1),
                         torch.where(d_new < d_old, torch.full_like(codes, j), codes))
    if not torch.equal(codes2.long(), should):
        n = int((codes2.long() != should).nonzero()[0])
        raise CheckFailure(f"Intervention: after code vector {j} moved, residual {n}'s code is "
                           f"{int(codes2[n])}, but its nearest code vector is now "
                           f"{int(should[n])} (it was {int(codes[n])}). Moving one code vector "
                           f"may change only the codes of the residuals it moves nearer to (or "
                           f"away from): a code depends on that residual's own distances only.")
    if not close(q + rest, R):
        raise CheckFailure("Reconstruction: quantized + new_residual must equal the residual "
                           "(new_residual = residual - quantized).")
    C2 = torch.cat([torch.zeros(1, 6, dtype=R.dtype), _randn(g, 15, 6) * rest.std()])  # (16, 6)
    _, _, rest_2 = _rq_outputs(fn, (rest, C2), "the second-level test")
    e1, e2 = rest.pow(2).sum(1), rest_2.pow(2).sum(1)  # (N,) squared error after 1 and 2 levels
    if not (bool((e2 <= e1 + 1e-9).all()) and e2.mean() < e1.mean()):
        raise CheckFailure(f"Second level: quantizing the new residual with a codebook that "
                           f"holds the zero vector can only lower each item's error, but the "
                           f"mean squared error went from {e1.mean():.4f} to {e2.mean():.4f}. "
                           f"Each level picks the nearest code vector to what is left.")


def _check_rq(fn) -> str:
    cases = _rq_cases()
    run_cases(fn, cases, rq_reference, _distinct(_RQ_MISTAKES, rq_reference), _RQ_NAMES, _RQ_SIG)
    _long_outputs(fn, cases[0], _RQ_NAMES, (0,), _RQ_SIG, _RQ_FLOAT)
    _rq_properties(fn)
    return ("Each residual takes its nearest code vector in squared Euclidean distance (lengths "
            "count, ties to the lower index), codes are long, quantized + new_residual = "
            "residual; moving one code vector changes only the codes it makes nearer, and a "
            "second level lowers the error.")


# --------------------------------------------------------------------------
# 28 one step of trie-constrained beam search
# --------------------------------------------------------------------------
_BEAM_SIG = "fn(beam_scores, log_probs, allowed, beam_size) -> (scores, parent, token)"
_BEAM_NAMES = ("scores", "parent", "token")


def _canon(out: Any) -> Any:
    """Where a score is -inf (a dead continuation) its parent and token may be anything."""
    if (isinstance(out, (tuple, list)) and len(out) == 3 and all(isinstance(t, Tensor) for t in out)
            and out[0].is_floating_point() and out[0].shape == out[1].shape == out[2].shape):
        dead = torch.isneginf(out[0].detach())
        return out[0], out[1].masked_fill(dead, -1), out[2].masked_fill(dead, -1)
    return out


def beam_reference(beam_scores: Tensor, log_probs: Tensor, allowed: Tensor,
                   beam_size: int) -> tuple[Tensor, Tensor, Tensor]:
    return _canon(constrained_beam_step(beam_scores, log_probs, allowed, beam_size))


def _beam(bs, lp, allowed, k, *, fill="-inf", add=True, rank="total", order="best", split="V",
          pick="global", swap=False):
    """A learner's beam step with one switch per bug."""
    B, W, V = lp.shape
    if fill == "total_zero":
        total = (bs[:, :, None] + lp).masked_fill(~allowed, 0.0)
    else:
        value = {"-inf": float("-inf"), "zero": 0.0, "big": -1e9, "inverted": float("-inf")}.get(fill)
        where = allowed if fill == "inverted" else ~allowed
        step = lp if value is None else lp.masked_fill(where, value)  # (B, W, V)
        total = bs[:, :, None] + step if add else step
    by = (total if rank == "total" else lp.masked_fill(~allowed, float("-inf"))).reshape(B, W * V)
    if pick == "per_beam":  # each beam's own best ceil(k / W), then the best k of those
        m = math.ceil(k / W)
        own = by.reshape(B, W, V).sort(dim=-1, descending=True, stable=True).indices[..., :m]
        # own: (B, W, m) token indices of each beam's m best
        cand = (own + V * torch.arange(W)[None, :, None]).reshape(B, W * m)  # flat indices
        keep = by.gather(1, cand).sort(dim=1, descending=True, stable=True).indices[:, :k]
        idx = cand.gather(1, keep)
    else:
        idx = by.sort(dim=1, descending=order != "worst", stable=True).indices[:, :k]  # (B, k)
        if order == "index":
            idx = idx.sort(dim=1).values
    scores = total.reshape(B, W * V).gather(1, idx)
    parent, token = (idx // V, idx % V) if split == "V" else (idx // W, idx % W)
    return _canon((scores, token, parent) if swap else (scores, parent, token))


def _beam_own_best(bs, lp, allowed, k):
    """Each beam extended by its own best allowed token, in beam order (k = W only)."""
    B, W, V = lp.shape
    if k != W:
        raise ValueError("only for beam_size == W")
    total = (bs[:, :, None] + lp).masked_fill(~allowed, float("-inf"))
    scores, token = total.max(-1)
    return _canon((scores, torch.arange(W).expand(B, W), token))


_MASK_IGNORED = ("the mask ignored: a disallowed token chosen", "allowed[b, w, v] is False where "
                 "no item's semantic ID continues beam w's prefix with token v: fill those "
                 "scores with -inf before ranking, or the beam writes an ID no item has.")
_ZERO_MASK = ("disallowed tokens masked with 0 instead of -inf", "A log-probability is <= 0, "
              "so 0 is the *best* score there is: a disallowed token filled with 0 wins. Fill "
              "with float('-inf').")
_BIG_MASK = ("disallowed continuations scored -1e9 instead of -inf", "A continuation the trie "
             "forbids must score -inf, so the caller can tell a dead beam from a live one; a "
             "finite -1e9 looks like a (very unlikely) real item prefix. Fill with "
             "float('-inf').")
_PER_BEAM = ("top-k per beam instead of over all beams", "Beam search keeps the beam_size best "
             "continuations of *all* W beams together: a strong beam may keep several "
             "children and a weak one none. Flatten (B, W, V) to (B, W * V) and take the top "
             "beam_size there.")
_BEAM_MISTAKES = (
    Mistake(*_MASK_IGNORED, lambda *a: _beam(*a, fill="none")),
    Mistake("mask with inverted polarity", "allowed is True where the trie allows the token: "
            "fill where ~allowed, not where allowed.", lambda *a: _beam(*a, fill="inverted")),
    Mistake(*_ZERO_MASK, lambda *a: _beam(*a, fill="zero")),
    Mistake(*_ZERO_MASK, lambda *a: _beam(*a, fill="total_zero")),
    Mistake(*_BIG_MASK, lambda *a: _beam(*a, fill="big")),
    Mistake("beam_scores not added", "A continuation's score is its beam's cumulative "
            "log-probability plus the step's: beam_scores[:, :, None] + log_probs. The step "
            "alone forgets everything before it.", lambda *a: _beam(*a, add=False)),
    Mistake("ranked by the step's log-prob only", "Rank by the cumulative score beam_scores + "
            "log_probs, not by log_probs alone: a likely token after an unlikely prefix is an "
            "unlikely sequence.", lambda *a: _beam(*a, rank="step")),
    Mistake("parent and token from the wrong divisor", "Flattened (W, V) -> W * V, index i is "
            "beam i // V, token i % V (V tokens per beam), not i // W and i % W.",
            lambda *a: _beam(*a, split="W")),
    Mistake("parent and token swapped", "Return (scores, parent, token): parent = index // V is "
            "the beam, token = index % V the code.", lambda *a: _beam(*a, swap=True)),
    Mistake(*_PER_BEAM, lambda *a: _beam(*a, pick="per_beam")),
    Mistake(*_PER_BEAM, _beam_own_best),
    Mistake("continuations not sorted best first", "Return the beam_size continuations best "
            "first (sort(descending=True), or topk, which sorts): the caller reads the first "
            "as the best beam.", lambda *a: _beam(*a, order="index")),
    Mistake("ascending order: the worst continuations kept", "sort/argsort are ascending by "
            "default: take descending=True (or topk), so the highest scores come first.",
            lambda *a: _beam(*a, order="worst")),
)


def _named(m: tuple[str, str]) -> Mistake:
    return Mistake(m[0], m[1], fn=None)


def _beam_fallback(got: Any, want: Any, case: Case) -> Mistake | None:
    """Names a disallowed continuation kept whatever the order of ties: filled with 0,
    with -1e9 or not masked at all."""
    if _structure(got, want, _BEAM_NAMES) is not None:
        return None
    bs, lp, allowed, _ = case.args
    B, W, V = lp.shape
    scores, parent, token = (t.detach() for t in got)
    p, t = parent.long(), token.long()
    live = torch.isfinite(scores)
    if live.any() and not bool(((p >= 0) & (p < W) & (t >= 0) & (t < V))[live].all()):
        return None
    b = torch.arange(B)[:, None].expand_as(p)
    pc, tc = p.clamp(0, W - 1), t.clamp(0, V - 1)
    bad = live & ~allowed[b, pc, tc]
    if not bad.any():
        return None
    s = scores.double()[bad]
    if bool((s < -1e6).all()):
        return _named(_BIG_MASK)
    base = bs.double()[b, pc][bad]
    if torch.allclose(s, base) or bool((s == 0).all()):
        return _named(_ZERO_MASK)
    return _named(_MASK_IGNORED)


def _beam_case(g, B, W, V, k, *, p_allowed=0.6, dtype=torch.float64, dead=0, spread=1.0):
    """Beam scores sorted best first (the last ``dead`` beams -inf), step log-probs, a mask."""
    bs = -(torch.rand(B, W, generator=g, dtype=torch.float64) * spread * W).sort(1).values
    if dead:
        bs[:, W - dead:] = float("-inf")
    lp = torch.log_softmax(_randn(g, B, W, V) * 2, -1)
    allowed = torch.rand(B, W, V, generator=g) < p_allowed
    allowed[:, :, 0] |= ~allowed.any(-1)  # every beam may continue somehow
    return bs.to(dtype), lp.to(dtype), allowed, k


def _beam_cases() -> list[Case]:
    g = torch.Generator().manual_seed(28)
    few = _beam_case(g, 2, 2, 4, 5)
    few[2][0] = False
    few[2][0, 0, 1] = few[2][0, 1, 3] = few[2][0, 1, 0] = True  # 3 allowed in batch 0, k = 5
    return [
        Case("B = 2, W = 3 beams, V = 5 tokens, beam_size = 3", _beam_case(g, 2, 3, 5, 3)),
        Case("beam_size = 4 > W = 2, V = 6: a strong beam keeps several children",
             _beam_case(g, 2, 2, 6, 4, spread=3.0)),
        Case("the first step: one live beam, the other 3 at -inf, B = 1, V = 6, beam_size = 4",
             _beam_case(g, 1, 4, 6, 4, dead=3)),
        Case("fewer allowed continuations (3) than beam_size = 5: the rest score -inf",
             few),
        Case("float32, B = 3, W = 4, V = 7, beam_size = 4",
             _beam_case(g, 3, 4, 7, 4, dtype=torch.float32)),
        Case("W = 1 beam, V = 9, beam_size = 3", _beam_case(g, 2, 1, 9, 3)),
        Case("a sparse trie (20% allowed), B = 2, W = 3, V = 12, beam_size = 3",
             _beam_case(g, 2, 3, 12, 3, p_allowed=0.2)),
    ]


def _beam_outputs(fn, args: tuple, where: str) -> tuple[Tensor, Tensor, Tensor]:
    got = _call(fn, args, _BEAM_SIG, where)
    problem = _structure(got, beam_reference(*args), _BEAM_NAMES)
    if problem:
        raise CheckFailure(f"On {where}: {problem}")
    return tuple(t.detach() for t in got)


def _entries(out: tuple, b: int = 0) -> list[tuple[int, int, float]]:
    """Batch row ``b``'s live continuations as (parent, token, score), in order."""
    s, p, t = out
    return [(int(p[b, i]), int(t[b, i]), float(s[b, i])) for i in range(s.shape[1])
            if math.isfinite(float(s[b, i]))]


def _same_list(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x[:2] == y[:2] and abs(x[2] - y[2]) <= 1e-9 + 1e-7 * abs(y[2])
                                    for x, y in zip(a, b))


def _beam_properties(fn) -> None:
    """Disallowing one chosen continuation only removes it; raising one beam's score
    moves only that beam's continuations; batch rows do not mix."""
    g = torch.Generator().manual_seed(280)
    bs, lp, allowed, _ = _beam_case(g, 2, 3, 6, 4, p_allowed=0.7)
    five = _entries(_beam_outputs(fn, (bs, lp, allowed, 5), "the intervention test"))
    p, t, _ = five[1]
    shut = allowed.clone()
    shut[0, p, t] = False  # the trie no longer allows the second best
    four = _entries(_beam_outputs(fn, (bs, lp, shut, 4), "the intervention test"))
    if not _same_list(four, five[:1] + five[2:]):
        raise CheckFailure(f"Intervention: disallowing (beam {p}, token {t}), your second best "
                           f"continuation, should remove it and move the ones after it up one "
                           f"place; instead the list changed from {[x[:2] for x in five[:4]]} "
                           f"to {[x[:2] for x in four]} ((parent, token) pairs). Rank all "
                           f"allowed continuations by beam_scores + log_probs.")
    W, V = lp.shape[1:]
    w, c = 1, 0.8
    raised = bs.clone()
    raised[:, w] += c
    before = _entries(_beam_outputs(fn, (bs, lp, allowed, W * V), "the beam-score test"))
    after = _entries(_beam_outputs(fn, (raised, lp, allowed, W * V), "the beam-score test"))
    others = lambda es: [e for e in es if e[0] != w]  # noqa: E731
    mine = lambda es, d: [(e[0], e[1], e[2] + d) for e in es if e[0] == w]  # noqa: E731
    if not (_same_list(others(after), others(before)) and _same_list(mine(after, 0), mine(before, c))):
        raise CheckFailure(f"Beam scores: adding {c} to beam {w}'s score (beam_size = W * V, so "
                           f"every continuation is kept) must add {c} to each of beam {w}'s "
                           f"continuations and leave the other beams' scores and order alone. "
                           f"A continuation scores beam_scores[w] + log_probs[w, v].")
    whole = _beam_outputs(fn, (bs, lp, allowed, 4), "the batch test")
    alone = _beam_outputs(fn, (bs[1:], lp[1:], allowed[1:], 4), "the batch test")
    if not close(_canon(alone), tuple(x[1:] for x in _canon(whole))):
        raise CheckFailure("Batch independence: batch row 2 alone gets other continuations than "
                           "inside a batch of 2: rank within each row (flatten W and V, never B).")


def _check_beam(fn) -> str:
    cases = _beam_cases()
    run_cases(lambda *a: _canon(fn(*a)), cases, beam_reference,
              _distinct(_BEAM_MISTAKES, beam_reference), _BEAM_NAMES, _BEAM_SIG,
              fallback=_beam_fallback)
    _long_outputs(fn, cases[0], _BEAM_NAMES, (1, 2), _BEAM_SIG)
    _beam_properties(fn)
    return ("The beam_size best allowed continuations of all beams together, scored "
            "beam_scores + log_probs, best first, as (parent, token) = (i // V, i % V); "
            "disallowed ones never kept (-inf when too few are allowed); removing one "
            "continuation or raising one beam moves nothing else.")


# --------------------------------------------------------------------------
# 29 codebook usage
# --------------------------------------------------------------------------
_USE_SIG = "fn(codes, codebook_size) -> float"
_USE_NAMES = ("usage",)


def usage_reference(codes: Tensor, codebook_size: int) -> float:
    return codebook_usage(codes, codebook_size)


def _usage(codes, K, *, count="distinct", den="K"):
    """A learner's usage with one switch per bug."""
    distinct = len(set(codes.tolist()))
    num = {"distinct": distinct, "occurrences": codes.numel(), "minus_one": distinct - 1}[count]
    if den == "floor":
        return num // K
    return num / {"K": K, "N": codes.numel(), "max+1": int(codes.max()) + 1, "K-1": K - 1,
                  "K+1": K + 1, "none": 1}[den]


_OFF_BY_ONE = ("off by one", "usage = (number of distinct codes used) / codebook_size: codes "
               "run 0..K-1, so there are exactly K of them, and a code counts once it is used "
               "by one item.")
_USE_MISTAKES = (
    Mistake("divided by the number of items instead of the codebook size", "usage is a share "
            "of the *codebook*: distinct codes used / codebook_size. Dividing by N answers "
            "another question and changes when items are duplicated.",
            lambda c, K: _usage(c, K, den="N")),
    Mistake("counting occurrences instead of distinct codes", "Count each code once, however "
            "many items use it: torch.unique(codes).numel(), or (torch.bincount(codes, "
            "minlength=K) > 0).sum().", lambda c, K: _usage(c, K, count="occurrences")),
    Mistake("codes.max() + 1 used as the codebook size", "The codebook has codebook_size "
            "codes whether or not items use them: the unused codes at the top are exactly what "
            "collapse looks like. Divide by codebook_size.", lambda c, K: _usage(c, K, den="max+1")),
    Mistake(*_OFF_BY_ONE, lambda c, K: _usage(c, K, den="K-1")),
    Mistake(*_OFF_BY_ONE, lambda c, K: _usage(c, K, den="K+1")),
    Mistake(*_OFF_BY_ONE, lambda c, K: _usage(c, K, count="minus_one")),
    Mistake("integer division", "distinct // codebook_size is 0 until every code is used: "
            "divide with /, which gives a float.", lambda c, K: _usage(c, K, den="floor")),
    Mistake("the count returned, not the share", "Divide the number of distinct codes used by "
            "codebook_size: usage lies in (0, 1].", lambda c, K: _usage(c, K, den="none")),
)


def _use_cases() -> list[Case]:
    g = torch.Generator().manual_seed(29)
    skewed = torch.multinomial(torch.tensor([8.0, 4, 2, 1, 1, 0.5] + [0.0] * 26), 100,
                               replacement=True, generator=g)  # (100,) of K = 32
    return [
        Case("N = 20 items on 5 of K = 8 codes, codes 6 and 7 unused",
             (torch.tensor([0, 1, 1, 3, 5, 5, 5, 2, 0, 1, 3, 3, 5, 2, 2, 0, 1, 5, 3, 0]), 8)),
        Case("N = 3 items, K = 16", (torch.tensor([9, 2, 9]), 16)),
        Case("a collapsed codebook: 12 items on one code of K = 10", (torch.full((12,), 4), 10)),
        Case("every code used: N = 12, K = 5", (torch.tensor([4, 0, 1, 2, 3, 4, 4, 0, 1, 1, 2, 3]), 5)),
        Case("one item, K = 4", (torch.tensor([3]), 4)),
        Case("K = 1", (torch.zeros(6, dtype=torch.long), 1)),
        Case("N = 100 items drawn from a skewed distribution over K = 32", (skewed, 32)),
    ]


def _use_number(fn, case: Case) -> None:
    """The answer is one number (a float or a 0-d tensor), not a per-code tensor."""
    got = _call(fn, case.args, _USE_SIG, f"case 1 ({case.desc})")
    if isinstance(got, Tensor) and got.numel() != 1:
        raise CheckFailure(f"usage should be one number (a float, the share of the "
                           f"codebook_size codes that some item uses), got a tensor of shape "
                           f"{tuple(got.shape)} on {case.desc}: count the used codes and divide, "
                           f"or take .mean() of a (K,) used-or-not mask and return float(...).")


def _use_properties(fn) -> None:
    """Duplicating items changes nothing; one item on a new code adds exactly 1 / K."""
    g = torch.Generator().manual_seed(290)
    K = 12
    codes = torch.randint(0, 7, (15,), generator=g)  # codes 7..11 unused
    base = float(_call(fn, (codes, K), _USE_SIG, "the duplication test"))
    twice = float(_call(fn, (torch.cat([codes, codes, codes[:4]]), K), _USE_SIG, "the duplication test"))
    if abs(twice - base) > 1e-6:
        raise CheckFailure(f"Duplicates: every item repeated (N = 15 -> 34, the same codes) "
                           f"changed the usage from {base:.4g} to {twice:.4g}. Usage counts "
                           f"distinct codes over the codebook size, whatever the number of items.")
    new = int(torch.isin(torch.arange(K), codes, invert=True).nonzero()[-1])  # an unused code
    more = float(_call(fn, (torch.cat([codes, torch.tensor([new])]), K), _USE_SIG, "the new-code test"))
    if abs(more - base - 1 / K) > 1e-6:
        raise CheckFailure(f"New code: one more item on the unused code {new} of K = {K} must "
                           f"raise the usage by exactly 1/K = {1 / K:.4g}, from {base:.4g} to "
                           f"{base + 1 / K:.4g}; yours gives {more:.4g}.")


def _check_usage(fn) -> str:
    cases = _use_cases()
    _use_number(fn, cases[0])
    run_cases(fn, cases, usage_reference, _distinct(_USE_MISTAKES, usage_reference), _USE_NAMES,
              _USE_SIG)
    _use_properties(fn)
    return ("Distinct codes used / codebook_size, with unused codes at the top counted, from a "
            "collapsed codebook (1/K) to a full one (1); duplicating items changes nothing and "
            "one item on a new code adds exactly 1/K.")


EXERCISES = (
    Exercise("residual_quantize", "27_residual_quantize", "One step of residual quantization",
             _RQ_SIG, _check_rq, "medium", 20),
    Exercise("constrained_beam_step", "28_constrained_beam_step",
             "One step of trie-constrained beam search", _BEAM_SIG, _check_beam, "hard", 30),
    Exercise("codebook_usage", "29_codebook_usage", "Codebook usage (how collapsed is a codebook?)",
             _USE_SIG, _check_usage, "easy", 10),
)
