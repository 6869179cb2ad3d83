"""What the ``test_grading_mutants*.py`` files share: a catalogue of learner
programs per exercise (wrong ones with the words their verdict must contain,
correct-but-unusual ones), the assertions every program goes through, and the
three tests that run them (:func:`catalogue_tests`)."""

from __future__ import annotations

import pytest
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


def catalogue_tests(cat: Catalogue) -> tuple:
    """The three tests every mutants file runs over its catalogue, to assign to ``test_*``
    names at module level: each wrong program is rejected with its words, each correct
    one accepted, and each exercise's last correct program accepted when ``check`` runs
    under ``torch.no_grad()`` and ``torch.inference_mode()``."""
    wrong, right = cat.cases_wrong(), cat.cases_right()
    no_grad = [(e, len(progs) - 1, progs[-1]) for e, progs in cat.right.items()]

    @pytest.mark.parametrize("eid, i, program, words", wrong, ids=case_ids(wrong, "wrong"))
    def rejected(eid, i, program, words):
        assert_rejected_and_named(eid, program, words)

    @pytest.mark.parametrize("eid, i, program", right, ids=case_ids(right, "right"))
    def accepted(eid, i, program):
        assert_accepted(eid, program)

    @pytest.mark.parametrize("eid, i, program", no_grad, ids=case_ids(no_grad, "nograd"))
    def accepted_under_no_grad(eid, i, program):
        assert_accepted_under_no_grad(eid, program)

    return rejected, accepted, accepted_under_no_grad
