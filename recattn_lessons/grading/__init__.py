"""The exercise checker: ``check(exercise_id, fn)`` and ``hint(exercise_id, level)``.

Introduced with the interview exercises (``solutions/`` and ``exercises/``).
From a terminal, ``python -m recattn_lessons.grading list [DIR]`` lists every
exercise in a working copy as passed, failed or not attempted.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Callable

import torch

from recattn_lessons.grading import exercises_attention, exercises_bugs, exercises_modules
from recattn_lessons.grading import exercises_recsys
from recattn_lessons.grading.core import (CheckFailure, CheckResult, Exercise, learner_error,
                                          single_thread)
from recattn_lessons.grading.hints import hint

__all__ = ["check", "hint", "CheckResult", "EXERCISES", "get_exercise"]

EXERCISES: dict[str, Exercise] = {
    e.id: e for mod in (exercises_attention, exercises_recsys, exercises_modules, exercises_bugs)
    for e in mod.EXERCISES
}


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise called ``exercise_id``; a clear KeyError if there is none."""
    if exercise_id not in EXERCISES:
        near = get_close_matches(str(exercise_id), EXERCISES, n=1)
        raise KeyError(f"no exercise {exercise_id!r}"
                       + (f"; did you mean {near[0]!r}?" if near else
                          f"; known ids: {', '.join(sorted(EXERCISES))}"))
    return EXERCISES[exercise_id]


def check(exercise_id: str, fn: Callable) -> CheckResult:
    """Grade the learner's ``fn`` (a function, or a class for module exercises).

    Randomized cases run against the course's reference code; a wrong answer
    is compared with the catalogue of known mistakes to name the bug. The
    global random state is left untouched.
    """
    ex = get_exercise(exercise_id)
    if not callable(fn):
        return CheckResult(False, f"check() needs your function or class, got "
                                  f"{type(fn).__name__}; call it as "
                                  f"check({exercise_id!r}, {ex.signature.split('(')[0]})",
                           exercise_id)
    try:
        with torch.random.fork_rng(devices=[]), single_thread():
            note = ex.checker(fn)
    except NotImplementedError:
        return CheckResult(False, "Not attempted yet: replace the `raise "
                                  "NotImplementedError` with your code. "
                                  f"Stuck? hint({exercise_id!r}, 1)", exercise_id, attempted=False)
    except CheckFailure as failure:
        return CheckResult(False, str(failure), exercise_id)
    except Exception as exc:  # raised by the learner's code outside a graded call
        return CheckResult(False, learner_error(exc, ex.signature), exercise_id)
    return CheckResult(True, note, exercise_id)
