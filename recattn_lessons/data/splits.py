"""Leave-one-out split and evaluation histories (lesson 05).

For each user with sequence ``s`` (oldest first):

- ``test_target``  = ``s[-1]``  (the last item),
- ``valid_target`` = ``s[-2]``  (the second-to-last),
- ``train``        = ``s[:-2]`` (everything before).

Models are fitted on ``train``, selected on ``valid_target`` and reported on
``test_target``. At test time the history also contains the validation
item, so the model sees everything that happened before the test item.

Users with fewer than ``min_length`` (default 3) items cannot give one
training item plus two held-out items; they are **left out** of the split
(``Split.users`` lists the kept users' indices, ``Split.n_dropped`` counts
the others). MovieLens has no such users (every user rated 20+ movies).

Cold items (lesson 10): :func:`hold_out_items` removes a seeded share of the
items from every training sequence, so no model learns anything about them
from interactions; they still occur as held-out targets and in the histories
read at evaluation, as a new film would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .movielens import Interactions

__all__ = ["Split", "leave_one_out", "histories", "left_pad", "cold_targets", "hold_out_items",
           "held_out_item_ids"]


@dataclass(frozen=True)
class Split:
    """A leave-one-out split. Row ``r`` of every field is user ``users[r]``.

    Attributes:
        train: per-user training sequences (all but the last two items).
        valid_target: ``(U,)`` second-to-last item of each user.
        test_target: ``(U,)`` last item of each user.
        users: ``(U,)`` index of each row's user in the source
            :class:`Interactions`.
        n_items: item ids run ``1..n_items``; 0 is padding.
        n_dropped: users left out for having too few items.
    """

    train: list[Tensor]
    valid_target: Tensor
    test_target: Tensor
    users: Tensor
    n_items: int
    n_dropped: int = 0

    @property
    def n_users(self) -> int:
        return len(self.train)

    def seen(self, stage: str) -> list[Tensor]:
        """Each user's history before the held-out item of ``stage``."""
        _check_stage(stage)
        if stage == "valid":
            return list(self.train)
        return [torch.cat([t, v.view(1)]) for t, v in zip(self.train, self.valid_target)]

    def targets(self, stage: str) -> Tensor:
        """``(U,)`` held-out items of ``stage`` ('valid' or 'test')."""
        _check_stage(stage)
        return self.valid_target if stage == "valid" else self.test_target


def _check_stage(stage: str) -> None:
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")


def leave_one_out(interactions: Interactions, min_length: int = 3) -> Split:
    """Split every user's sequence into train / validation / test items."""
    if min_length < 3:
        raise ValueError(f"min_length must be at least 3 (1 train + 2 held out), got {min_length}")
    keep = [u for u, s in enumerate(interactions.sequences) if len(s) >= min_length]
    if not keep:
        raise ValueError(f"no user has {min_length}+ items; nothing to split")
    seqs = [interactions.sequences[u] for u in keep]
    return Split(
        train=[s[:-2] for s in seqs],
        valid_target=torch.stack([s[-2] for s in seqs]),
        test_target=torch.stack([s[-1] for s in seqs]),
        users=torch.tensor(keep, dtype=torch.long),
        n_items=interactions.n_items,
        n_dropped=interactions.n_users - len(keep),
    )


def left_pad(sequences: list[Tensor], maxlen: int) -> Tensor:
    """``(U, maxlen)``: the last ``maxlen`` items of each sequence, right-aligned.

    Shorter sequences are padded with 0 on the left, so the most recent item
    is always in the last column (what SASRec-style models read out).
    """
    if maxlen < 1:
        raise ValueError(f"maxlen must be positive, got {maxlen}")
    out = torch.zeros(len(sequences), maxlen, dtype=torch.long)  # (U, L)
    for u, s in enumerate(sequences):  # one copy per user, not per item
        s = s[-maxlen:]
        if len(s):
            out[u, maxlen - len(s):] = s
    return out


def histories(split: Split, stage: str = "valid", maxlen: int = 50) -> Tensor:
    """``(U, maxlen)`` left-padded histories to score at evaluation time.

    For ``stage='valid'`` the history is the training sequence; for
    ``stage='test'`` it also ends with the validation item.
    """
    return left_pad(split.seen(stage), maxlen)


def cold_targets(split: Split) -> dict[str, int]:
    """Held-out items that never occur in any user's training sequence.

    No model trained on ``split.train`` can have learned anything about such
    an item (its embedding is still its initialisation), so they cap what
    any model can reach: ``{"n_users", "n_cold_valid", "n_cold_test"}``.
    """
    seen = torch.zeros(split.n_items + 1, dtype=torch.bool)
    if split.train:
        seen[torch.cat([t.long() for t in split.train])] = True
    return {"n_users": split.n_users,
            "n_cold_valid": int((~seen[split.valid_target]).sum()),
            "n_cold_test": int((~seen[split.test_target]).sum())}


def held_out_item_ids(n_items: int, fraction: float, seed: int) -> Tensor:
    """``(round(fraction * n_items),)`` sorted item ids drawn uniformly, seeded by ``seed``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the share of held-out items must lie in [0, 1), got {fraction}")
    g = torch.Generator().manual_seed(7_919 * seed + 13)
    n = round(fraction * n_items)
    return (torch.randperm(n_items, generator=g)[:n] + 1).sort().values


def hold_out_items(split: Split, fraction: float, seed: int = 0) -> tuple[Split, Tensor]:
    """``(split without those items in training, cold item ids)``: lesson 10's cold items.

    A share ``fraction`` of the items (:func:`held_out_item_ids`) is deleted from every
    user's training sequence; the validation and test targets are kept, so some users'
    targets are items no model was trained on. ``fraction=0`` returns ``split`` unchanged.
    """
    cold = held_out_item_ids(split.n_items, fraction, seed)
    if not len(cold):
        return split, cold
    is_cold = torch.zeros(split.n_items + 1, dtype=torch.bool)
    is_cold[cold] = True
    train = [t[~is_cold[t]] for t in split.train]
    return Split(train=train, valid_target=split.valid_target, test_target=split.test_target,
                 users=split.users, n_items=split.n_items, n_dropped=split.n_dropped), cold
