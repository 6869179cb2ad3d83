"""Checks for the generative-recommender exercises: HSTU's pointwise attention,
the sampled softmax with the logQ correction, and gSASRec's gBCE loss.

Introduced with lesson 08 (generative recommenders), notebooks 21, 22 and 23.
The references are the course's own code, never the solutions: the pointwise
attention is the formula of ``recattn_lessons.models.hstu.Block.forward``
(``F.silu(q k^T + bias) / n * mask``, in float64; the mutation test,
tests/test_grading_mutants_generative.py, checks it against a real ``Block``
and a loop), the losses are
``recattn_lessons.models.losses.sampled_softmax_loss``, ``gbce_beta`` and
``gbce_loss``. Beyond equal values on fixed cases, each check measures a
property by brute force: pointwise attention ignores the future and left
padding; the sampled softmax's gradient approaches the full softmax's over all
items; gBCE with t = 0 is plain BCE over the positive and its negatives. Both
losses must also give the reference gradient (a loss is for ``backward``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import (Case, CheckFailure, Exercise, Mistake, _structure, close,
                                          is_stub, learner_error, run_cases)
from recattn_lessons.grading.exercises_attention import _randn
from recattn_lessons.models.base import full_softmax_loss
from recattn_lessons.models.losses import gbce_beta, gbce_loss, sampled_softmax_loss

__all__ = ["EXERCISES", "pointwise_reference", "sampled_reference", "gbce_reference"]


def _call(fn: Callable, args: tuple, signature: str, where: str) -> Any:
    """``fn`` on copies of ``args``; an exception becomes a message about the learner's line."""
    try:
        return fn(*(a.clone() if isinstance(a, Tensor) else a for a in args))
    except Exception as exc:
        if is_stub(exc):
            raise
        raise CheckFailure(learner_error(exc, signature, where)) from None


class _SameAsReference(Exception):
    """A catalogued variant that gives the right answer on this case (skipped)."""


def _distinct(mistakes: tuple[Mistake, ...], reference: Callable) -> tuple[Mistake, ...]:
    """The catalogue, each variant raising where it equals the reference: a bug that is
    invisible on a case (no padding target there, or K < N - 1 for the alpha cap) must
    not be named for another problem, e.g. a float64 result for float32 inputs."""
    def guarded(m: Mistake) -> Mistake:
        def fn(*args):
            out = m.fn(*args)
            if close(out, reference(*args)):
                raise _SameAsReference(m.name)
            return out
        return Mistake(m.name, m.explain, fn)
    return tuple(guarded(m) for m in mistakes)


# --------------------------------------------------------------------------
# 21 HSTU's pointwise attention
# --------------------------------------------------------------------------
_PW_SIG = "fn(q, k, v, bias, mask, n) -> (output, A)"
_PW_NAMES = ("output", "A")


def pointwise_reference(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor,
                        n: int) -> tuple[Tensor, Tensor]:
    """``(A @ v, A)``, ``A = SiLU(q k^T + bias) / n * mask``, as in ``hstu.Block.forward``;
    computed in float64 and returned in the input dtype."""
    q64, k64, v64, b64 = (t.double() for t in (q, k, v, bias))
    a = F.silu(q64 @ k64.transpose(-1, -2) + b64) / n  # (B, H, L, L)
    a = a * mask  # masked entries contribute exactly 0
    return (a @ v64).to(q.dtype), a.to(q.dtype)


def _hstu_mask(L: int, lengths: list[int]) -> Tensor:
    """``(B, 1, L, L)``: causal, and both positions real (left padding of ``lengths``)."""
    real = torch.arange(L)[None, :] >= L - torch.tensor(lengths)[:, None]  # (B, L)
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # (L, L)
    return (causal & real[:, :, None] & real[:, None, :])[:, None]


def _pw_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    f32 = {"dtype": torch.float32}
    rand_mask = torch.rand(2, 1, 4, 4, generator=g) < 0.6
    rand_mask[:, :, :, 0] = True
    rand_mask[1, :, 2] = False  # a query that may see nothing: a zero row
    return [
        Case("B=2, H=2, L=5, d_q=4 != d_v=3, causal + left padding (lengths 5 and 3), bias "
             "(1, 1, 5, 5), n = 8 > L",
             (r(2, 2, 5, 4), r(2, 2, 5, 4), r(2, 2, 5, 3), r(1, 1, 5, 5), _hstu_mask(5, [5, 3]),
              8)),
        Case("B=1, H=3, L=6, d_q=2, d_v=5, a causal mask (6, 6), bias (6, 6), n = 6",
             (r(1, 3, 6, 2), r(1, 3, 6, 2), r(1, 3, 6, 5), r(6, 6),
              torch.ones(6, 6, dtype=torch.bool).tril(), 6)),
        Case("float32, B=2, H=1, L=4, a random mask (2, 1, 4, 4) with a row that sees nothing, "
             "a per-user bias (2, 1, 4, 4), n = 10",
             (r(2, 1, 4, 3, **f32), r(2, 1, 4, 3, **f32), r(2, 1, 4, 3, **f32),
              r(2, 1, 4, 4, **f32), rand_mask, 10)),
        Case("batch 1, length 1: q (1, 2, 1, 4), n = 3",
             (r(1, 2, 1, 4), r(1, 2, 1, 4), r(1, 2, 1, 2), r(1, 1, 1, 1),
              torch.ones(1, 1, 1, 1, dtype=torch.bool), 3)),
        Case("float32, large scores (q, k ~ 3 N(0, 1)), B=2, H=2, L=7, d_q=8, causal + left "
             "padding (lengths 7 and 4), n = 20",
             (r(2, 2, 7, 8, scale=3.0, **f32), r(2, 2, 7, 8, scale=3.0, **f32),
              r(2, 2, 7, 4, **f32), r(1, 1, 7, 7, **f32), _hstu_mask(7, [7, 4]), 20)),
        Case("an empty history: B=3, H=2, L=3, lengths 3, 1 and 0 (user 3's rows are all 0), "
             "n = 4",
             (r(3, 2, 3, 4), r(3, 2, 3, 4), r(3, 2, 3, 4), r(1, 1, 3, 3), _hstu_mask(3, [3, 1, 0]),
              4)),
    ]


def _pw_fallback(got: Any, want: Any, case: Case) -> Mistake | None:
    """Names what no catalogued variant reproduces: NaN at masked entries (an -inf fill
    before SiLU), and rows of A that sum to 1 (a softmax of some kind)."""
    if _structure(got, want, _PW_NAMES) is not None:
        return None
    a = got[1].detach().double()
    keep = case.args[4].expand_as(a)
    if torch.isnan(a[~keep]).any() and not torch.isnan(want[1]).any():
        return Mistake(*M._PW_NEG_INF, fn=None)
    rows = keep.any(-1)  # (B, H, L) queries that may see some key
    if rows.any() and torch.allclose(a.nan_to_num(0.0).sum(-1)[rows],
                                     torch.ones_like(a[..., 0][rows]), atol=1e-4):
        return Mistake(M._PW_SOFTMAX[0], M._PW_SOFTMAX[1] + " (Every row of your A sums to 1.)",
                       fn=None)
    return None


def _pw_outputs(fn, args: tuple, where: str) -> tuple[Tensor, Tensor]:
    got = _call(fn, args, _PW_SIG, where)
    if not (isinstance(got, (tuple, list)) and len(got) == 2
            and all(isinstance(t, Tensor) for t in got)):
        raise CheckFailure(f"On {where}: return (output, A), two tensors")
    return got[0].detach(), got[1].detach()


def _pw_properties(fn) -> None:
    """Future positions, extra left padding and the other users change nothing."""
    g = torch.Generator().manual_seed(2100)
    r = lambda *s: _randn(g, *s)  # noqa: E731
    L, t, P = 7, 3, 2  # P: more padded positions on the left, for the padding test
    q, k, v = r(2, 2, L, 4), r(2, 2, L, 4), r(2, 2, L, 3)
    w = r(L + P)  # one bias per offset i - j (clipped at 0 for the future), as HSTU's rab

    def offsets(size: int) -> Tensor:  # (size, size) i - j, the future clipped to 0
        i = torch.arange(size)
        return (i[:, None] - i[None, :]).clamp(min=0)

    bias, mask, n = w[offsets(L)], _hstu_mask(L, [L, 5]), 10
    out, a = _pw_outputs(fn, (q, k, v, bias, mask, n), "the causality test")
    later = slice(t + 1, None)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for x in (q2, k2, v2):
        x[:, :, later] = r(*x[:, :, later].shape) * 3
    out2, a2 = _pw_outputs(fn, (q2, k2, v2, bias, mask, n), "the causality test")
    now = slice(0, t + 1)
    if not (close(out2[:, :, now], out[:, :, now]) and close(a2[:, :, now], a[:, :, now])):
        raise CheckFailure(f"Causality: changing q, k and v at positions {t + 1}..{L - 1} "
                           f"(the future of position {t}) changed the output or A at positions "
                           f"0..{t}. With a causal mask (True = may attend, j <= i) every "
                           f"future entry of A must be exactly 0 before A @ v.")
    pad = lambda x: torch.cat([r(*x.shape[:2], P, x.shape[-1]), x], 2)  # noqa: E731
    real = torch.arange(L + P)[None, :] >= P + (L - torch.tensor([L, 5]))[:, None]
    mask_p = (torch.ones(L + P, L + P, dtype=torch.bool).tril() & real[:, :, None]
              & real[:, None, :])[:, None]
    out_p, a_p = _pw_outputs(fn, (pad(q), pad(k), pad(v), w[offsets(L + P)], mask_p, n),
                             "the padding test")
    if not (close(out_p[:, :, P:], out) and close(a_p[:, :, P:, P:], a)):
        raise CheckFailure(f"Left padding: adding {P} padded positions on the left (masked "
                           f"out, L = {L} -> {L + P}, the same n = {n}) changed the outputs of "
                           f"the real positions. HSTU divides by the constant n it is given, "
                           f"not by L or by a count, so more padding changes nothing.")
    one, a_one = _pw_outputs(fn, (q[1:], k[1:], v[1:], bias, mask[1:], n), "batch 1")
    if not (close(one, out[1:]) and close(a_one, a[1:])):
        raise CheckFailure("Batch independence: user 2 alone (batch of 1) gets another output "
                           "than user 2 inside a batch of 2: nothing may mix users (check for a "
                           "sum or a max over the batch dim).")


def _check_pointwise(fn) -> str:
    run_cases(fn, _pw_cases(), pointwise_reference, _distinct(M.POINTWISE, pointwise_reference),
              _PW_NAMES, _PW_SIG, fallback=_pw_fallback)
    _pw_properties(fn)
    return ("Equal to SiLU(q k^T + bias) / n with masked entries exactly 0 (HSTU's "
            "Block.forward) for several geometries, batch 1, length 1, float32 and float64, "
            "fully masked rows and an empty history; the future and extra left padding change "
            "nothing, users do not mix, and rows of A are not a distribution.")


# --------------------------------------------------------------------------
# 22 sampled softmax with the logQ correction, and 23 gBCE: shared problems
# --------------------------------------------------------------------------
def _problem(g: torch.Generator, B: int, L: int, K: int, N: int, D: int, lengths: list[int], *,
             hits: int = 0, pads: int = 0, dtype=torch.float64, scale: float = 1.0,
             uniform: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """hidden (B, L, D), targets (B, L) left-padded, item_weight (N + 1, D), negatives
    (B, L, K) with ``hits`` accidental hits and ``pads`` padding ids planted at real
    positions, and log_q (N + 1,): Zipf popularity over a random order (or uniform)."""
    hidden = _randn(g, B, L, D, dtype=dtype, scale=scale)
    E = _randn(g, N + 1, D, dtype=dtype, scale=scale)
    real = torch.arange(L)[None, :] >= L - torch.tensor(lengths)[:, None]  # (B, L)
    targets = torch.randint(1, N + 1, (B, L), generator=g) * real
    negatives = torch.randint(1, N + 1, (B, L, K), generator=g)
    slots = (real[..., None].expand(B, L, K)).nonzero()  # (P, 3) slots of real positions
    for i, (b, l, k) in enumerate(slots[torch.randperm(len(slots), generator=g)[:hits + pads]]
                                  .tolist()):  # distinct slots: none overwrites another
        negatives[b, l, k] = targets[b, l] if i < hits else 0
    if uniform:
        log_q = torch.full((N + 1,), -math.log(N), dtype=dtype)
    else:
        p = 1 / torch.arange(1, N + 1, dtype=torch.float64) ** 1.1
        p = (p / p.sum())[torch.randperm(N, generator=g)]
        log_q = torch.cat([torch.tensor([-math.log(N)], dtype=torch.float64), p.log()]).to(dtype)
    return hidden, targets, E, negatives, log_q


def _loss_fallback(mistake: tuple[str, str], eps_where: str):
    """A non-finite loss where the reference is finite or a wrong one at large logits
    (the log of an exp / sigmoid that rounded to 0 or inf), or one off by a relative
    1e-4 or less in float64 (an eps / clamp added to hide that, or float32 inside)."""
    def name(got: Any, want: Any, case: Case) -> Mistake | None:
        if _structure(got, want, ["loss"]) is not None:
            return None
        g, w = float(got), float(want)
        if not math.isfinite(g) or "large logits" in case.desc:
            return Mistake(*mistake, fn=None)
        rel = abs(g - w) / max(abs(w), 1e-300)
        if want.dtype == torch.float64 and rel <= 1e-4:
            return Mistake(f"a float64 loss accurate to only {rel:.0e}", f"The formula is "
                           f"right but the arithmetic is not exact: {eps_where} computed "
                           f"naively with an eps or a clamp inside a log, or part of the loss "
                           f"computed in float32 (a .float(), or a tensor created without "
                           f"dtype=hidden.dtype). {mistake[1]}", fn=None)
        return None
    return name


def _gradients(fn, args: tuple, reference: Callable, signature: str, where: str) -> None:
    """The learner's loss has the reference's gradient w.r.t. hidden and item_weight."""
    def grads(f):
        h, E = args[0].clone().requires_grad_(True), args[2].clone().requires_grad_(True)
        rest = tuple(a.clone() if isinstance(a, Tensor) else a for a in args[3:])
        try:
            loss = f(h, args[1].clone(), E, *rest)
        except Exception as exc:
            if is_stub(exc):
                raise
            raise CheckFailure(learner_error(exc, signature, where)) from None
        if not (isinstance(loss, Tensor) and loss.requires_grad):
            raise CheckFailure(f"On {where}: the loss does not depend on hidden and "
                               f"item_weight through autograd (a .item(), .detach(), "
                               f"torch.tensor(...) or torch.no_grad() inside?): a loss is for "
                               f"loss.backward(), keep it a tensor built from the inputs.")
        h_grad, E_grad = torch.autograd.grad(loss, (h, E), allow_unused=True)
        zero = torch.zeros_like
        return (zero(h) if h_grad is None else h_grad), (zero(E) if E_grad is None else E_grad)

    with torch.enable_grad():
        got, want = grads(fn), grads(reference)
    for g_, w_, name in zip(got, want, ("hidden", "item_weight")):
        err = float((g_.double() - w_.double()).norm() / w_.double().norm().clamp(min=1e-300))
        if not err < 1e-5:  # float32 arithmetic inside is fine
            raise CheckFailure(f"On {where}: the loss is right but its gradient with respect "
                               f"to {name} is not (relative error {err:.2e}): something in the "
                               f"computation is detached or replaced by a constant (e.g. a "
                               f"mask or a logit built with .detach() or .data).")


# --------------------------------------------------------------------------
# 22 sampled softmax with the logQ correction
# --------------------------------------------------------------------------
_SS_SIG = "fn(hidden, targets, item_weight, negatives, log_q) -> Tensor"
_SS_OVERFLOW = ("log-sum-exp that overflows", "At large logits exp(s) is inf (float32: "
                "s > 88) and the log of a softmax that rounded to 0 is -inf (an eps inside the "
                "log only hides it): compute logsumexp(logits) - s_y with torch.logsumexp (it "
                "subtracts the max), or F.cross_entropy(logits, zeros), never "
                "log(exp(...).sum()) or log(softmax(...)).")


def sampled_reference(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
                      log_q: Tensor) -> Tensor:
    """``losses.sampled_softmax_loss`` with ``logq = log_q[negatives]`` (per draw)."""
    return sampled_softmax_loss(hidden, targets, item_weight, negatives, logq=log_q[negatives])


def _ss_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    f32 = {"dtype": torch.float32}
    return [
        Case("B=2, L=4, K=6 negatives, N=20 items with Zipf popularity q, left padding "
             "(lengths 4 and 2), 3 accidental hits and 2 padding negatives",
             _problem(g, 2, 4, 6, 20, 5, [4, 2], hits=3, pads=2)),
        Case("float32, uniform q = 1/N, B=3, L=3, K=5, N=30, lengths 3, 3 and 1, 2 hits, "
             "1 padding negative", _problem(g, 3, 3, 5, 30, 4, [3, 3, 1], hits=2, pads=1,
                                            uniform=True, **f32)),
        Case("batch 1, length 1, K=1 negative, N=10",
             _problem(g, 1, 1, 1, 10, 3, [1])),
        Case("B=2, L=5, K=12, N=50, Zipf q, lengths 5 and 3, 6 accidental hits",
             _problem(g, 2, 5, 12, 50, 6, [5, 3], hits=6, pads=2)),
        Case("float32, large logits (|s| up to ~200: exp overflows), B=2, L=3, K=8, N=40",
             _problem(g, 2, 3, 8, 40, 4, [3, 2], hits=1, scale=6.0, **f32)),
    ]


def _ss_full_softmax(fn) -> None:
    """Uniform q and many draws: the gradient tends to the full softmax's over every item."""
    g = torch.Generator().manual_seed(2200)
    N, K = 100, 2000
    hidden, targets, E, _, _ = _problem(g, 2, 8, 1, N, 8, [8, 8])
    hidden = hidden * 0.5 + E[targets] * 2 / math.sqrt(8)  # a trained-like model: p_y ~ 0.2
    negatives = torch.randint(1, N + 1, (2, 8, K), generator=g)
    log_q = torch.full((N + 1,), -math.log(N), dtype=torch.float64)
    where = f"the full-softmax test (N = {N} items, K = {K} uniform draws per position)"

    def grad(loss_of):
        h = hidden.clone().requires_grad_(True)
        with torch.enable_grad():
            try:
                loss = loss_of(h)
            except Exception as exc:
                if is_stub(exc):
                    raise
                raise CheckFailure(learner_error(exc, _SS_SIG, where)) from None
            return torch.autograd.grad(loss, h)[0].flatten()

    full = grad(lambda h: full_softmax_loss(h, targets, E))
    mine = grad(lambda h: fn(h, targets.clone(), E.clone(), negatives.clone(), log_q.clone()))
    rel = float((mine - full).norm() / full.norm())
    if rel > 0.2:
        raise CheckFailure(f"On {where}: your gradient differs from the full softmax's by "
                           f"{rel:.0%} (relative error; the logQ-corrected estimate is within "
                           f"about 8% here, the uncorrected one 33% off). With uniform "
                           f"q = 1/N the corrected logits s_k + log N - log K make sum_k "
                           f"exp(.) an unbiased estimate of the full denominator.")


def _check_sampled(fn) -> str:
    cases = _ss_cases()
    run_cases(fn, cases, sampled_reference, _distinct(M.SAMPLED_SOFTMAX, sampled_reference),
              ("loss",), _SS_SIG,
              fallback=_loss_fallback(_SS_OVERFLOW, "a log-sum-exp or log(softmax)"))
    _gradients(fn, cases[0].args, sampled_reference, _SS_SIG, "case 1 (the gradient test)")
    _ss_full_softmax(fn)
    return ("Equal to recattn_lessons.models.losses.sampled_softmax_loss (logits s_y and "
            "s_k - log q_k - log K, accidental hits and padding left out, mean over targets) "
            "with Zipf and uniform q, float32 and float64, K = 1 and logits of ~200, with the "
            "same gradient; with uniform q and 2,000 draws its gradient is within 20% of the "
            "full softmax's over every item.")


# --------------------------------------------------------------------------
# 23 gBCE (gSASRec)
# --------------------------------------------------------------------------
_GB_SIG = "fn(hidden, targets, item_weight, negatives, n_items, t) -> Tensor"
_GB_NAIVE = next(m for m in M.GBCE if m.name == "log(sigmoid) computed naively")


def gbce_reference(hidden: Tensor, targets: Tensor, item_weight: Tensor, negatives: Tensor,
                   n_items: int, t: float) -> Tensor:
    """``losses.gbce_loss`` with ``beta = losses.gbce_beta(K, n_items, t)``, K = draws."""
    return gbce_loss(hidden, targets, item_weight, negatives,
                     gbce_beta(negatives.shape[-1], n_items, t))


def _gb_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)
    f32 = {"dtype": torch.float32}
    return [
        Case("t = 0.75, B=2, L=4, K=6 negatives, N=30 items, left padding (lengths 4 and 2), "
             "3 accidental hits and 2 padding negatives",
             (*_problem(g, 2, 4, 6, 30, 5, [4, 2], hits=3, pads=2)[:4], 30, 0.75)),
        Case("float32, t = 0.5, B=3, L=3, K=8, N=50, lengths 3, 3 and 1, 2 hits",
             (*_problem(g, 3, 3, 8, 50, 4, [3, 3, 1], hits=2, pads=1, **f32)[:4], 50, 0.5)),
        Case("t = 1 (beta = alpha), B=2, L=3, K=4, N=12",
             (*_problem(g, 2, 3, 4, 12, 4, [3, 3], hits=1)[:4], 12, 1.0)),
        Case("batch 1, length 1, K=1 negative, N=10, t = 0.75",
             (*_problem(g, 1, 1, 1, 10, 3, [1])[:4], 10, 0.75)),
        Case("K = 7 draws >= N - 1 = 4 (alpha capped at 1), N=5, t = 0.75",
             (*_problem(g, 2, 3, 7, 5, 4, [3, 2])[:4], 5, 0.75)),
        Case("t = 0 (beta = 1, plain BCE), B=2, L=4, K=5, N=20",
             (*_problem(g, 2, 4, 5, 20, 4, [4, 3], hits=1)[:4], 20, 0.0)),
        Case("float32, large logits (|s| up to ~200: sigmoid rounds to exactly 0 or 1), "
             "t = 0.75, B=2, L=3, K=8, N=40",
             (*_problem(g, 2, 3, 8, 40, 4, [3, 2], hits=1, scale=6.0, **f32)[:4], 40, 0.75)),
    ]


def _gb_plain_bce(fn) -> None:
    """t = 0: the mean binary cross-entropy over each position's 1 + K logits (brute force)."""
    g = torch.Generator().manual_seed(2300)
    hidden, targets, E, negatives, _ = _problem(g, 2, 5, 6, 40, 6, [5, 3])
    negatives = torch.where(negatives == targets[..., None], negatives % 40 + 1, negatives)
    want = []
    for b, l in (targets > 0).nonzero().tolist():  # one position at a time
        logits = torch.stack([hidden[b, l] @ E[targets[b, l]]]
                             + [hidden[b, l] @ E[j] for j in negatives[b, l]])
        labels = torch.zeros_like(logits)
        labels[0] = 1.0
        want.append(F.binary_cross_entropy_with_logits(logits, labels))
    want = torch.stack(want).mean()
    got = _call(fn, (hidden, targets, E, negatives, 40, 0.0), _GB_SIG, "the plain-BCE test")
    if not close(got, want):
        raise CheckFailure(f"With t = 0 (beta = 1) gBCE is plain binary cross-entropy: the "
                           f"mean over each position's positive (label 1) and its K negatives "
                           f"(label 0) of F.binary_cross_entropy_with_logits, then the mean "
                           f"over positions. Yours gives {float(got):.6g}, BCE gives "
                           f"{float(want):.6g}.")


def _check_gbce(fn) -> str:
    cases = _gb_cases()
    run_cases(fn, cases, gbce_reference, _distinct(M.GBCE, gbce_reference), ("loss",), _GB_SIG,
              fallback=_loss_fallback((_GB_NAIVE.name, _GB_NAIVE.explain), "log(sigmoid)"))
    _gradients(fn, cases[0].args, gbce_reference, _GB_SIG, "case 1 (the gradient test)")
    _gb_plain_bce(fn)
    return ("Equal to recattn_lessons.models.losses.gbce_loss with beta = "
            "alpha (t (1 - 1/alpha) + 1/alpha), alpha = min(1, K / (N - 1)), for t = 0, 0.5, "
            "0.75 and 1, accidental hits and padding left out (also from the K + 1), float32 "
            "and float64, K = 1 and logits of ~200, with the same gradient; t = 0 is plain BCE.")


EXERCISES = (
    Exercise("pointwise_attention", "21_pointwise_attention", "HSTU's pointwise attention",
             _PW_SIG, _check_pointwise, "medium", 20),
    Exercise("sampled_softmax_logq", "22_sampled_softmax_logq",
             "Sampled softmax with the logQ correction", _SS_SIG, _check_sampled, "hard", 30),
    Exercise("gbce_loss", "23_gbce_loss", "gSASRec's gBCE loss", _GB_SIG, _check_gbce,
             "medium", 25),
)
