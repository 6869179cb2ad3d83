"""What the three ``test_grading_mutants*.py`` files share: a catalogue of learner
programs per exercise (wrong ones with the words their verdict must contain,
correct-but-unusual ones) and the assertions every program goes through."""

from __future__ import annotations

import torch

from recattn_lessons.grading import check


class Catalogue:
    """``wrong[eid]``: ``[(program, words), ...]``; ``right[eid]``: ``[program, ...]``."""

    def __init__(self) -> None:
        self.wrong: dict[str, list] = {}
        self.right: dict[str, list] = {}

    def add_wrong(self, eid: str, words: str):
        """Decorator: a wrong program whose verdict must contain ``words``."""
        def add(fn):
            self.wrong.setdefault(eid, []).append((fn, words))
            return fn
        return add

    def add_right(self, eid: str):
        """Decorator: a correct program that must pass."""
        def add(fn):
            self.right.setdefault(eid, []).append(fn)
            return fn
        return add

    def counts(self, ids=None) -> dict[str, tuple[int, int]]:
        """Exercise id -> (wrong programs, correct programs); ``ids`` defaults to every id seen."""
        ids = set(self.wrong) | set(self.right) if ids is None else ids
        return {e: (len(self.wrong.get(e, [])), len(self.right.get(e, []))) for e in ids}

    def cases_wrong(self) -> list[tuple]:
        return [(e, i, fn, w) for e, progs in self.wrong.items() for i, (fn, w) in enumerate(progs)]

    def cases_right(self) -> list[tuple]:
        return [(e, i, fn) for e, progs in self.right.items() for i, fn in enumerate(progs)]


def case_ids(cases: list[tuple], kind: str) -> list[str]:
    return [f"{c[0]}-{kind}{c[1]}" for c in cases]


def assert_rejected_and_named(eid: str, program, words: str) -> None:
    res = check(eid, program)
    assert not res.passed and res.attempted, f"a wrong program passed {eid}: {res.message}"
    assert words.lower() in res.message.lower(), f"{eid}: expected {words!r} in:\n{res.message}"


def assert_accepted(eid: str, program) -> None:
    res = check(eid, program)
    assert res.passed, f"a correct program failed {eid}: {res.message}"


def assert_accepted_under_no_grad(eid: str, program) -> None:
    """The lessons' "try it" cells use no_grad; check() must not depend on the caller's mode."""
    with torch.no_grad():
        res = check(eid, program)
        assert res.passed, res.message
        assert not torch.is_grad_enabled()  # the caller's mode is restored
    with torch.inference_mode():
        assert check(eid, program).passed
