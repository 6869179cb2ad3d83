"""Check the invariants every attention output must satisfy (lesson 01).

``check_attention(weights, ...)`` takes whatever you have (weights, and
optionally output, scores, values, mask, queries, keys as tensors, arrays
or lists), tests each invariant it can and returns an
:class:`InvariantReport` saying which hold, which break and why; it prints
as text and renders as a table in a notebook. Masks: True = may attend.

1. shapes: q ``(..., Lq, d_k)`` and k ``(..., Lk, d_k)`` share ``d_k``;
   scores and weights ``(..., Lq, Lk)``; values ``(..., Lk, d_v)``; output
   ``(..., Lq, d_v)``.
2. weights are finite and non-negative; 3. each row sums to 1 (0 when all
   its keys are masked); 4. masked positions are exactly 0.
5. within a row a higher score never gets a lower weight (softmax with any
   positive scale is monotonic); equal scores get equal weights.
6. output = weights @ values.
7. each output row lies in the convex hull of the value rows it may attend
   to, checked with per-coordinate min/max bounds: necessary (outside the
   bounds means outside the hull), not sufficient; 2, 3 and 6 passing
   together prove membership, the weights being the convex coefficients.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

__all__ = ["Check", "InvariantReport", "check_attention"]

_NAMES = ("weights finite and non-negative", "rows sum to 1", "masked positions are 0",
          "weights grow with scores", "output = weights @ values",
          "output inside convex hull of values")


@dataclass(frozen=True)
class Check:
    """One invariant: ``passed`` is True, False, or None (not checked)."""

    name: str
    passed: bool | None
    detail: str

    @property
    def status(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]


@dataclass(frozen=True)
class InvariantReport:
    """The result of :func:`check_attention`, one :class:`Check` per invariant."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not count)."""
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if c.passed is False]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; have {[c.name for c in self.checks]}")

    def raise_if_failed(self) -> None:
        """Raise AssertionError listing the failed checks (for tests)."""
        if not self.ok:
            raise AssertionError("attention invariants broken:\n" + str(self))

    def __str__(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{c.status}  {c.name:<{width}}  {c.detail}" for c in self.checks]
        head = "all checked invariants hold" if self.ok else f"{len(self.failed)} invariant(s) broken"
        return "\n".join([f"InvariantReport: {head}", *lines])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {True: "#1a7f37", False: "#cf222e", None: "#6e7781"}
        rows = "".join(
            f"<tr><td style='color:{colour[c.passed]};font-weight:bold'>{c.status}</td>"
            f"<td style='text-align:left'>{html.escape(c.name)}</td>"
            f"<td style='text-align:left'>{html.escape(c.detail)}</td></tr>"
            for c in self.checks
        )
        head = "all checked invariants hold" if self.ok else f"{len(self.failed)} invariant(s) broken"
        return (f"<p><b>InvariantReport</b>: {head}</p><table><thead><tr><th>result</th>"
                f"<th>invariant</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>")


def _arr(x, name: str, dtype=float) -> np.ndarray | None:
    if x is None:
        return None
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else x  # torch.Tensor
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (tensor, array or list): {err}") from None


def _small(x: float) -> str:
    """Print a round-off-sized number stably across machines."""
    return "< 1e-12" if x < 1e-12 else f"= {x:.2g}"


def _at(index: tuple) -> str:
    """Format a (…, row) index for messages."""
    return "row " + ", ".join(str(int(i)) for i in index) if index else "the row"


def _shape_problems(w, scores, mask, values, output, q, k) -> list[str]:
    problems = []
    if w.ndim < 2:
        return [f"weights {w.shape} must be at least 2-D (..., Lq, Lk)"]
    lead, (Lq, Lk) = w.shape[:-2], w.shape[-2:]
    if q is not None and k is not None and (q.ndim < 1 or k.ndim < 1 or q.shape[-1] != k.shape[-1]):
        problems.append(f"q {q.shape} and k {k.shape} must share their last dim d_k: "
                        f"q @ k^T is undefined otherwise")
    for name, t, dim, size in (("q", q, -2, Lq), ("k", k, -2, Lk)):
        if t is not None and (t.ndim < 2 or t.shape[dim] != size):
            problems.append(f"{name} {t.shape} must have {size} rows to give "
                            f"weights {w.shape}")
    if scores is not None and scores.shape != w.shape:
        problems.append(f"scores {scores.shape} and weights {w.shape} must have the same shape")
    if mask is not None:
        try:
            if np.broadcast_shapes(mask.shape, w.shape) != w.shape:
                raise ValueError
        except ValueError:
            problems.append(f"mask {mask.shape} must broadcast to weights {w.shape}")
    if values is not None and (values.ndim < 2 or values.shape[-2] != Lk):
        problems.append(f"values {values.shape} must be (..., Lk={Lk}, d_v): one row per key")
    if output is not None:
        if output.ndim < 2 or output.shape[-2] != Lq:
            problems.append(f"output {output.shape} must be (..., Lq={Lq}, d_v): one row per query")
        elif values is not None and values.ndim >= 2 and output.shape[-1] != values.shape[-1]:
            problems.append(f"output {output.shape} and values {values.shape} must share d_v")
    for name, t in (("values", values), ("output", output)):
        if t is not None and t.ndim >= 2:
            try:
                np.broadcast_shapes(t.shape[:-2], lead)
            except ValueError:
                problems.append(f"leading dims of {name} {t.shape} and weights {w.shape} differ")
    return problems


def _monotonic(w, s, allowed, atol) -> Check:
    """Within each row, sort keys by score; weights must not decrease."""
    s_sorted_key = np.where(allowed, s, -np.inf)
    order = np.argsort(s_sorted_key, axis=-1, kind="stable")
    ss = np.take_along_axis(s_sorted_key, order, -1)
    ws = np.take_along_axis(np.where(allowed, w, -np.inf), order, -1)
    with np.errstate(invalid="ignore"):
        ds, dw = np.diff(ss, axis=-1), np.diff(ws, axis=-1)
        bad = ((ds > 0) & (dw < -atol)) | ((ds == 0) & (np.abs(dw) > atol))
    if not bad.any():
        return Check("weights grow with scores", True,
                     "in every row a higher score has a weight at least as large")
    *row, pos = np.argwhere(bad)[0]
    row = tuple(row)
    j1, j2 = order[row][pos], order[row][pos + 1]
    return Check("weights grow with scores", False,
                 f"{_at(row)}: key {j2} has score {s[row][j2]:.4g} >= key {j1}'s "
                 f"{s[row][j1]:.4g} but weight {w[row][j2]:.4g} vs {w[row][j1]:.4g}; "
                 f"softmax is monotonic, so these weights did not come from these scores "
                 f"({int(bad.sum())} such pair(s))")


def _hull(w, out, values, allowed, atol) -> Check:
    vals = np.broadcast_to(values[..., None, :, :], (*np.broadcast_shapes(
        w.shape[:-2], values.shape[:-2]), w.shape[-2], *values.shape[-2:]))  # (..., Lq, Lk, dv)
    ok = np.broadcast_to(allowed, vals.shape[:-1])[..., None]  # (..., Lq, Lk, 1)
    lo = np.where(ok, vals, np.inf).min(-2)  # (..., Lq, dv)
    hi = np.where(ok, vals, -np.inf).max(-2)  # (..., Lq, dv)
    empty = ~ok.any(-2)  # (..., Lq, 1): fully-masked rows must output 0
    lo, hi = np.where(empty, 0.0, lo), np.where(empty, 0.0, hi)
    out = np.broadcast_to(out, lo.shape)
    below, above = out < lo - atol, out > hi + atol
    if not (below | above).any():
        return Check("output inside convex hull of values", True,
                     "every output row lies within the per-coordinate min/max of the "
                     "value rows it may attend to (fully-masked rows are 0)")
    idx = tuple(np.argwhere(below | above)[0])
    side = "below the minimum" if below[idx] else "above the maximum"
    bound = lo[idx] if below[idx] else hi[idx]
    return Check("output inside convex hull of values", False,
                 f"{_at(idx[:-1])}, coordinate {idx[-1]}: output {out[idx]:.4g} is {side} "
                 f"{bound:.4g} of the values it may attend to, so no convex combination "
                 f"(non-negative weights summing to 1) can produce it")


def check_attention(weights=None, output=None, scores=None, values=None, mask=None,
                    queries=None, keys=None, atol: float = 1e-6) -> InvariantReport:
    """Check attention weights/output against the invariants (lesson 01).

    Args:
        weights: ``(..., Lq, Lk)``; may be None to check only an output.
        output: ``(..., Lq, d_v)`` context vectors.
        scores: ``(..., Lq, Lk)`` pre-softmax scores (any positive scale).
        values: ``(..., Lk, d_v)``.
        mask: boolean, broadcastable to ``(..., Lq, Lk)``, True = may attend.
        queries, keys: ``(..., Lq, d_k)``, ``(..., Lk, d_k)``; shapes only.
        atol: tolerance of each comparison (~0.005 for 2-decimal printouts).

    Returns:
        An :class:`InvariantReport`; checks that lack their inputs are SKIP.
    """
    w, out, s, v = (_arr(x, n) for x, n in ((weights, "weights"), (output, "output"),
                                            (scores, "scores"), (values, "values")))
    q, k = _arr(queries, "queries"), _arr(keys, "keys")
    m = _arr(mask, "mask", dtype=None)
    if m is not None and m.dtype != bool:
        raise TypeError(f"mask must be boolean with True = may attend, got {m.dtype}; "
                        f"from a 0/1 mask use mask.bool() (torch) or mask.astype(bool)")
    if w is None and (out is None or v is None):
        raise ValueError("give weights, or both output and values: there is nothing to check")
    if w is None:  # only the hull check is possible
        fits = out.ndim >= 2 and v.ndim >= 2 and out.shape[-1] == v.shape[-1]
        first = Check("shapes", fits, f"output {out.shape}, values {v.shape}: "
                      "need (..., Lq, d_v) and (..., Lk, d_v)")
        if not fits:
            return InvariantReport((first,))
        shape = (*np.broadcast_shapes(out.shape[:-2], v.shape[:-2]), out.shape[-2], v.shape[-2])
        allowed = np.ones(shape, bool) if m is None else np.broadcast_to(m, shape)
        return InvariantReport((first, _hull(np.zeros(shape), out, v, allowed, atol)))
    checks, problems = [], _shape_problems(w, s, m, v, out, q, k)
    if problems:
        checks.append(Check("shapes", False, "; ".join(problems)))
        return InvariantReport(tuple(checks) + tuple(
            Check(n, None, "not checked: fix the shapes first") for n in _NAMES))
    checks.append(Check("shapes", True, f"weights {w.shape} (..., Lq, Lk) fit every input given"))
    allowed = np.ones(w.shape, bool) if m is None else np.broadcast_to(m, w.shape)

    if not np.isfinite(w).all():
        idx = tuple(np.argwhere(~np.isfinite(w))[0])
        checks.append(Check("weights finite and non-negative", False,
                            f"weights{list(idx)} is {w[idx]}: a fully-masked row through a "
                            f"plain softmax gives NaN; give such rows zero weights instead"))
        w = np.nan_to_num(w, nan=0.0)
    elif (w < -atol).any():
        idx = tuple(np.argwhere(w < -atol)[0])
        checks.append(Check("weights finite and non-negative", False,
                            f"weights{list(idx)} = {w[idx]:.4g} < 0: softmax outputs are "
                            f"exp(.)/sum exp(.) > 0, never negative"))
    else:
        checks.append(Check("weights finite and non-negative", True, "every weight is >= 0"))

    target = allowed.any(-1).astype(float)  # (..., Lq): 1, or 0 when fully masked
    sums = w.sum(-1)
    err = np.abs(sums - target)
    if (err > atol).any():
        idx = np.unravel_index(err.argmax(), err.shape)
        checks.append(Check("rows sum to 1", False,
                            f"{_at(idx)} sums to {sums[idx]:.4g}, expected {target[idx]:g} "
                            f"({int((err > atol).sum())} bad row(s)); weights are a "
                            f"probability distribution over the keys"))
    else:
        note = " (fully-masked rows sum to 0)" if (target == 0).any() else ""
        checks.append(Check("rows sum to 1", True, f"max |row sum - 1| {_small(err.max())}{note}"))

    if m is None:
        checks.append(Check("masked positions are 0", None, "not checked: no mask given"))
    elif (w[~allowed] != 0).any():
        idx = tuple(np.argwhere((~allowed) & (w != 0))[0])
        checks.append(Check("masked positions are 0", False,
                            f"weights{list(idx)} = {w[idx]:.4g} at a masked key; mask the "
                            f"scores with -inf before the softmax, not the weights after"))
    else:
        checks.append(Check("masked positions are 0", True, "every masked key has weight exactly 0"))

    if s is None:
        checks.append(Check("weights grow with scores", None, "not checked: no scores given"))
    else:
        checks.append(_monotonic(w, s, allowed, atol))

    if out is None or v is None:
        checks.append(Check("output = weights @ values", None, "not checked: needs output and values"))
        checks.append(Check("output inside convex hull of values", None,
                            "not checked: needs output and values"))
        return InvariantReport(tuple(checks))
    diff = np.abs(out - w @ v)
    if (diff > atol).any():
        idx = np.unravel_index(diff.argmax(), diff.shape)
        checks.append(Check("output = weights @ values", False,
                            f"max |output - weights @ values| = {diff.max():.4g} at "
                            f"{_at(idx[:-1])}, coordinate {idx[-1]}: each output row must be "
                            f"sum_j w_ij v_j (a matrix product, not an elementwise one)"))
    else:
        checks.append(Check("output = weights @ values", True,
                            f"max |output - weights @ values| {_small(diff.max())}"))
    checks.append(_hull(w, out, v, allowed, atol))
    return InvariantReport(tuple(checks))
