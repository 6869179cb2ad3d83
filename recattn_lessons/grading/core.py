"""The checker's engine: results, friendly errors, case runner, diagnosis.

Introduced with the interview exercises (``solutions/``, ``exercises/``).

A check grades the learner's function on randomized cases against a
reference written independently of the solutions. When an output is wrong
it is compared (``allclose`` on the very same inputs) with each known buggy
variant from :mod:`recattn_lessons.grading.mistakes`; a match names the bug.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
import textwrap
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

__all__ = ["single_thread", "CheckResult", "CheckFailure", "Case", "Mistake", "Exercise",
           "learner_error", "run_cases", "tolerances", "close", "is_stub", "STUB_MESSAGE",
           "arg_names", "changed_inputs", "wrap"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_STDLIB_DIR = os.path.dirname(os.path.abspath(traceback.__file__))
# Plain ASCII: emoji show as boxes where no emoji font is installed (issue 13).
_ICONS = {"passed": "[PASS]", "failed": "[FAIL]", "not attempted": "[TODO]"}
STUB_MESSAGE = "Exercise: replace this line with your solution"


def is_stub(exc: BaseException) -> bool:
    """True for the NotImplementedError raised by a generated exercise stub only."""
    return isinstance(exc, NotImplementedError) and bool(exc.args) and \
        str(exc.args[0]).startswith(STUB_MESSAGE)


def wrap(message: str, width: int = 88) -> str:
    """Wrap each line of ``message`` on word boundaries; indented lines (code) stay whole."""
    out = []
    for line in message.splitlines():
        if len(line) <= width or line.startswith((" ", "\t")):
            out.append(line)
        else:
            out.extend(textwrap.wrap(line, width, break_long_words=False,
                                     break_on_hyphens=False))
    return "\n".join(out)


@dataclass(frozen=True)
class CheckResult:
    """Verdict of ``check(exercise_id, fn)``; prints plainly, renders in Jupyter."""

    passed: bool
    message: str
    exercise_id: str = ""
    attempted: bool = True

    @property
    def status(self) -> str:
        """``"passed"``, ``"failed"`` or ``"not attempted"``."""
        if not self.attempted:
            return "not attempted"
        return "passed" if self.passed else "failed"

    def __str__(self) -> str:
        return f"{_ICONS[self.status]} {self.exercise_id}: {self.status}\n{wrap(self.message)}"

    def __bool__(self) -> bool:
        return self.passed

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's plain-text display
        p.text(str(self))

    def _repr_markdown_(self) -> str:
        body = self.message.replace("\n", "  \n")
        return f"**{_ICONS[self.status]} `{self.exercise_id}`: {self.status}**  \n{body}"

    def _repr_html_(self) -> str:
        colour = {"passed": "#1a7f37", "failed": "#cf222e", "not attempted": "#9a6700"}
        return (f'<div style="border-left:4px solid {colour[self.status]};padding:4px 8px">'
                f"<b>{_ICONS[self.status]} <code>{html.escape(self.exercise_id)}</code>: "
                f"{self.status}</b><div style=\"white-space:pre-wrap;word-break:normal;"
                f"overflow-wrap:break-word;font-family:monospace;margin:0\">"
                f"{html.escape(self.message)}</div></div>")


class CheckFailure(Exception):
    """Raised inside a checker: the learner's answer is wrong; ``str`` says why."""


@dataclass(frozen=True)
class Case:
    """One graded call: ``fn(*args, **kwargs)`` described in words for messages."""

    desc: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Mistake:
    """A known bug, as code: ``fn`` computes the buggy answer on the same inputs."""

    name: str
    explain: str
    fn: Callable[..., Any]


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it lives, how it is called, and how it is graded."""

    id: str
    notebook: str  # stem of the notebook in solutions/ and exercises/
    title: str
    signature: str
    checker: Callable[[Callable], str]  # raises CheckFailure; returns a success note
    difficulty: str = "medium"  # easy | medium | hard
    minutes: int = 15
    takes_class: bool = False  # module exercises are graded on the class, not an instance


@contextlib.contextmanager
def single_thread():
    """Run on one CPU thread, then restore the learner's setting.

    The checks use tiny tensors: thread start-up and contention with other
    processes cost far more than the maths (measured 0.2 s vs 2-12 s for
    the multi-head check on a busy 2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tolerances(dtype: torch.dtype) -> dict:
    """allclose tolerances that a correct float32 / float64 answer meets."""
    if dtype == torch.float64:
        return {"rtol": 1e-7, "atol": 1e-9}
    return {"rtol": 2e-4, "atol": 2e-5}


def close(got: Any, want: Any, nan_as_zero: bool = False) -> bool:
    """True when every part of ``got`` has ``want``'s shape and values."""
    if isinstance(want, (tuple, list)):
        return (isinstance(got, (tuple, list)) and len(got) == len(want)
                and all(close(g, w, nan_as_zero) for g, w in zip(got, want)))
    if not isinstance(want, Tensor):
        try:
            g, w = float(got), float(want)
        except (TypeError, ValueError, RuntimeError):
            return False
        if math.isnan(w) or math.isinf(w):
            return g == w or (math.isnan(g) and math.isnan(w))
        return abs(g - w) <= 1e-9 + 1e-6 * abs(w)
    if not isinstance(got, Tensor) or got.shape != want.shape:
        return False
    if got.dtype == torch.bool or want.dtype == torch.bool:
        return got.dtype == want.dtype and bool((got == want).all())
    g, w = got.detach().double(), want.detach().double()
    if nan_as_zero:
        g, w = g.nan_to_num(0.0, 0.0, 0.0), w.nan_to_num(0.0, 0.0, 0.0)
    return torch.allclose(g, w, equal_nan=True, **tolerances(want.dtype))


def _is_learner_frame(filename: str) -> bool:
    path = os.path.abspath(filename)
    return not (path.startswith(_PKG_DIR) or path.startswith(_TORCH_DIR)
                or path.startswith(_STDLIB_DIR) or "site-packages" in path)


def learner_error(exc: BaseException, signature: str = "", case: str = "") -> str:
    """A short message pointing at the learner's line instead of a traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_frame(f.filename)]
    what = f"{type(exc).__name__}: {exc}".strip()
    where = f" on {case}" if case else ""
    if not frames:
        hint = f" Check that it can be called as {signature}." if signature else ""
        return f"Calling your code raised {what}{where}.{hint}"
    f = frames[-1]
    name = os.path.basename(f.filename)
    if name.startswith("<"):  # "<cell 5>" from the list command
        place = name.strip("<>")
    elif "ipykernel" in f.filename or "ipython-input" in f.filename:
        place = "its cell"  # the notebook cell's temp file name changes per run
    else:
        place = name
    code = f"\n    {f.line.strip()}" if f.line else ""
    return (f"Your code raised {what}{where}\n"
            f"  at line {f.lineno} of {place}, in {f.name}():{code}")


def _shape(x: Any) -> str:
    if isinstance(x, Tensor):
        return str(tuple(x.shape)) if x.dim() else "a 0-d tensor"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    return type(x).__name__


def _structure(got: Any, want: Any, names: Sequence[str]) -> str | None:
    """Describe a type/shape/dtype mismatch, or None when the structure fits."""
    if got is None:
        what = f"a tuple ({', '.join(names)})" if isinstance(want, tuple) else names[0]
        return (f"your function returned None instead of {what}: it probably lacks a "
                f"`return` statement (a value computed but never returned)")
    if isinstance(want, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"should return a tuple ({', '.join(names)}), got {_shape(got)}"
        for g, w, n in zip(got, want, names):
            if g is None:
                return f"{n} is None: compute it and return it in the tuple"
            msg = _structure(g, w, [n])
            if msg:
                return msg
        return None
    name = names[0]
    if not isinstance(want, Tensor):
        if isinstance(got, Tensor) and got.numel() != 1:
            return f"{name} should be one number (the mean over users), got shape {_shape(got)}"
        try:
            float(got)
        except (TypeError, ValueError):
            return f"{name} should be a number, got {type(got).__name__}"
        return None
    if not isinstance(got, Tensor):
        hint = ("; stay in torch (no .numpy() or np. functions), or convert back with "
                "torch.from_numpy(...)" if type(got).__module__.startswith("numpy") else "")
        return f"{name} should be a torch.Tensor, got {type(got).__name__}{hint}"
    if got.shape != want.shape:
        msg = f"{name} has the wrong shape: expected {_shape(want)}, got {_shape(got)}"
        if [s for s in want.shape if s != 1] == list(got.shape) and 1 in want.shape:
            msg += ("; a .squeeze() without a dim drops every size-1 axis (here a batch, "
                    "query or length of 1): squeeze only the axis you mean, e.g. .squeeze(-1)")
        return msg
    if got.device != want.device:
        return f"{name} is on {got.device}, expected {want.device} (the inputs' device)"
    if want.dtype == torch.bool and got.dtype != torch.bool:
        return f"{name} should be a boolean tensor (True = may attend), got {got.dtype}; use .bool()"
    if want.is_floating_point() and got.dtype != want.dtype:
        return (f"{name} should keep the input dtype {want.dtype}, got {got.dtype}; "
                f"avoid creating tensors without dtype=...")
    return None


def _first_error(got: Any, want: Any, names: Sequence[str]) -> str:
    pairs = list(zip(got, want, names)) if isinstance(want, tuple) else [(got, want, names[0])]
    for g, w, n in pairs:
        if close(g, w):
            continue
        if not isinstance(w, Tensor):
            return f"{n} is {float(g):.6g}, expected {float(w):.6g}"
        g64, w64 = g.detach().double(), w.detach().double()
        if torch.isnan(g64).any() and not torch.isnan(w64).any():
            return f"{n} contains NaN where the reference is finite"
        if w.dtype == torch.bool:
            idx = tuple(int(i) for i in (g != w).nonzero()[0])
            return f"{n}{list(idx)} is {bool(g[idx])}, expected {bool(w[idx])}"
        err = (g64 - w64).abs().nan_to_num(float("inf"))
        idx = tuple(int(i) for i in (err == err.max()).nonzero()[0])
        return (f"{n} differs from the reference: at index {list(idx)} "
                f"got {g64[idx].item():.6g}, expected {w64[idx].item():.6g}")
    return "output differs from the reference"


def diagnose(got: Any, case: Case, mistakes: Sequence[Mistake]) -> Mistake | None:
    """The first catalogued mistake whose output equals ``got`` on this case."""
    for nan_as_zero in (False, True):
        for m in mistakes:
            try:
                with torch.no_grad():
                    buggy = m.fn(*case.args, **case.kwargs)
            except Exception:
                continue
            if close(got, buggy, nan_as_zero):
                return m
    return None


def arg_names(signature: str) -> list[str]:
    """``"fn(q, k, v, mask=None) -> ..."`` -> ``["q", "k", "v", "mask"]``."""
    m = re.match(r"[^(]*\(([^)]*)\)", signature)
    if not m:
        return []
    return [a.split("=")[0].split(":")[0].strip() for a in m.group(1).split(",") if a.strip()]


def _same_tensor(a: Tensor, b: Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        return torch.equal(a.nan_to_num(0.5, 7.0, -7.0), b.nan_to_num(0.5, 7.0, -7.0))
    return torch.equal(a, b)


def changed_inputs(originals: Sequence, copies: Sequence, names: Sequence[str]) -> str | None:
    """A message naming the first tensor argument that the learner's call modified."""
    for i, (a, b) in enumerate(zip(originals, copies)):
        if isinstance(a, Tensor) and isinstance(b, Tensor) and not _same_tensor(a, b):
            name = names[i] if i < len(names) else f"argument {i + 1}"
            return (f"your function modified its input `{name}` in place (e.g. `{name} /= ...`, "
                    f"`{name}.masked_fill_(...)` or `{name}[...] = ...`); the caller's tensor "
                    f"must stay as it was: write `{name} = {name} / ...` or use the out-of-place "
                    f"`masked_fill`")
    return None


def _swapped(got: Any, want: Any, names: Sequence[str]) -> str | None:
    if (isinstance(want, tuple) and len(want) == 2 and isinstance(got, (tuple, list))
            and len(got) == 2 and close(tuple(got[::-1]), want)):
        return (f"Likely bug: ({names[1]}, {names[0]}) returned in the wrong order. "
                f"Return ({', '.join(names)}).")
    return None


def _varies(fn: Callable, case: Case, got: Any) -> bool:
    """True when calling ``fn`` again on the same inputs gives another answer."""
    try:
        again = fn(*(a.clone() if isinstance(a, Tensor) else a for a in case.args), **case.kwargs)
    except Exception:
        return False
    return not close(again, got)


def run_cases(fn: Callable, cases: Sequence[Case], reference: Callable,
              mistakes: Sequence[Mistake] = (), names: Sequence[str] = ("output",),
              signature: str = "",
              fallback: Callable[[Any, Any, Case], Mistake | None] | None = None) -> None:
    """Grade ``fn`` on every case; raise CheckFailure at the first wrong one.

    Each case checks, in order: the call does not raise, the inputs are left
    as they were, the structure (type, shape, dtype, device) and the values.
    ``fallback(got, want, case)`` may name a mistake that no catalogued
    variant reproduces exactly (e.g. "the rows sum to 1: a softmax").
    """
    params = arg_names(signature)
    for i, case in enumerate(cases, 1):
        want = reference(*case.args, **case.kwargs)
        where = f"case {i}/{len(cases)} ({case.desc})"
        args = tuple(a.clone() if isinstance(a, Tensor) else a for a in case.args)
        try:  # on copies: an in-place edit of the inputs must not skew the diagnosis
            got = fn(*args, **case.kwargs)
        except Exception as exc:
            if is_stub(exc):
                raise
            raise CheckFailure(learner_error(exc, signature, where)) from None
        edited = changed_inputs(case.args, args, params)
        if edited:
            raise CheckFailure(f"On {where}: {edited}.")
        structural = _structure(got, want, names)
        if structural is None and close(got, want):
            continue
        swapped = _swapped(got, want, names)
        if swapped:
            raise CheckFailure(f"{swapped}\nSeen on {where}.")
        problem = structural or _first_error(got, want, names)
        found = diagnose(got, case, mistakes)
        if found is None and fallback is not None:
            found = fallback(got, want, case)
        # only an answer of the right structure can be tested for varying between calls
        if found is None and structural is None and _varies(fn, case, got):
            raise CheckFailure(f"On {where}: two calls on the same input give different "
                               f"results: dropout or random sampling is still on in eval mode (after "
                               f"model.eval() dropout must be off: use nn.Dropout or "
                               f"F.dropout(x, p, training=self.training)).")
        if found is not None:
            raise CheckFailure(f"Likely bug: {found.name}. {found.explain}\n"
                               f"Seen on {where}: {problem}.")
        raise CheckFailure(f"Wrong answer on {where}: {problem}.")
