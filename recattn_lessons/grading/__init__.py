"""The exercise checker: ``check(exercise_id, fn)`` and ``hint(exercise_id, level)``.

Introduced with the interview exercises (``solutions/`` and ``exercises/``).
From a terminal, ``python -m recattn_lessons.grading list [DIR]`` lists every
exercise in a working copy as passed, failed or not attempted.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Callable

import torch

from recattn_lessons.grading import exercises_attention, exercises_beyond, exercises_bugs, exercises_modules
from recattn_lessons.grading import exercises_generative, exercises_recsys, exercises_semantic, exercises_serving
from recattn_lessons.grading.core import CheckFailure, CheckResult, Exercise, is_stub, learner_error
from recattn_lessons.grading.guard import DEFAULT_TIMEOUT, BoundedBuffer, CheckTimeout, guarded
from recattn_lessons.grading.hints import hint

__all__ = ["check", "hint", "CheckResult", "EXERCISES", "get_exercise"]

EXERCISES: dict[str, Exercise] = {
    e.id: e for mod in (exercises_attention, exercises_recsys, exercises_modules, exercises_bugs,
                        exercises_serving, exercises_generative, exercises_beyond,
                        exercises_semantic)
    for e in mod.EXERCISES
}


def _unknown(exercise_id) -> str:
    near = get_close_matches(str(exercise_id), EXERCISES, n=1, cutoff=0.4)
    return (f"no exercise {exercise_id!r}"
            + (f"; did you mean {near[0]!r}?" if near else
               f"; known ids: {', '.join(sorted(EXERCISES))}"))


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise called ``exercise_id``; a clear KeyError if there is none."""
    if exercise_id not in EXERCISES:
        raise KeyError(_unknown(exercise_id))
    return EXERCISES[exercise_id]


def _wrong_kind(ex: Exercise, fn) -> str | None:
    name = ex.signature.split("(")[0]
    if ex.takes_class and isinstance(fn, torch.nn.Module):
        return (f"check() needs the class itself, not an instance: pass "
                f"{type(fn).__name__} (without parentheses), e.g. "
                f"check({ex.id!r}, {type(fn).__name__}); the checker builds its own "
                f"instances with different sizes")
    if ex.takes_class and not isinstance(fn, type):
        return (f"check() needs your nn.Module class ({name}), got "
                f"{type(fn).__name__} {getattr(fn, '__name__', '')}".rstrip())
    if not ex.takes_class and isinstance(fn, type):
        return (f"check() needs your function, got the class {fn.__name__}; this exercise "
                f"is graded as {ex.signature}")
    if not callable(fn):
        return (f"check() needs your function or class, got {type(fn).__name__}; call it as "
                f"check({ex.id!r}, {name})")
    return None


def check(exercise_id: str, fn: Callable, timeout: float | None = DEFAULT_TIMEOUT) -> CheckResult:
    """Grade the learner's ``fn`` (a function, or a class for module exercises).

    Randomized cases run against the course's reference code; a wrong answer
    is compared with the catalogue of known mistakes to name the bug. Always
    returns a CheckResult (never raises): the learner's code runs with
    autograd on, its output captured, under a time limit of ``timeout``
    seconds (None: no limit), and global state (RNG, threads, default dtype)
    is left as it was.
    """
    if exercise_id not in EXERCISES:
        return CheckResult(False, _unknown(exercise_id) + " Copy the id from the notebook's "
                           "Check cell.", str(exercise_id))
    ex = EXERCISES[exercise_id]
    wrong = _wrong_kind(ex, fn)
    if wrong:
        return CheckResult(False, wrong, exercise_id)
    out = BoundedBuffer()
    try:
        with guarded(timeout, out):
            note = ex.checker(fn)
        result = CheckResult(True, note, exercise_id)
    except CheckTimeout:
        result = CheckResult(False, f"Your code was stopped after {timeout:g} s (the time "
                             f"limit; check({exercise_id!r}, fn, timeout=...) changes it). "
                             f"Look for a loop that never ends, e.g. a `while` whose "
                             f"condition never changes, or a loop over a huge range.",
                             exercise_id)
    except CheckFailure as failure:
        result = CheckResult(False, str(failure), exercise_id)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the stub, or learner code raising outside a graded call
        if is_stub(exc):
            result = CheckResult(False, "Not attempted yet: replace the `raise "
                                 "NotImplementedError(...)` line with your code. "
                                 f"Stuck? hint({exercise_id!r}, 1)", exercise_id,
                                 attempted=False)
        else:
            result = CheckResult(False, learner_error(exc, ex.signature), exercise_id)
    printed = out.summary()
    if printed and result.attempted:
        result = CheckResult(result.passed, f"{result.message}\n{printed}", exercise_id)
    return result
