"""Explicit negative feedback: the same users, three ways to read a 1-star rating (lesson 09).

Every lesson up to 08 reads a rating as "the user watched it": a 1-star movie is a positive
interaction like a 5-star one. Lesson 09 compares three readings of the **disliked**
interactions (``rating <= threshold``, 2 stars by default; 13.4% of MovieLens):

- ``"positive"``: today's behaviour, every rating is a plain item (and a training target);
- ``"dropped"``: disliked interactions are removed from the sequences;
- ``"dislike"``: they stay in the history, flagged: a disliked occurrence of item ``i`` is
  written as id ``i + N`` (``N`` = the catalogue size), and the returned ``Interactions`` has
  ``n_items = 2 N``. :class:`recattn_lessons.models.feedback.DislikeSASRec` decodes it as
  ``E[i] + d`` (``d`` a learned "dislike" vector), scores only the real items ``1..N``, and
  never trains on a flagged id as a target.

**Same targets for every variant.** Validation and test targets are each user's last two
*liked* interactions (``L1``, ``L2``), so the three variants are ranked on identical items.
Everything after ``L1`` except ``L2`` is dropped from every variant: the dislikes after
``L2`` are the test target's future, and the dislikes between ``L1`` and ``L2`` cannot be
test context without also being validation context (the split holds one history per user;
MovieLens: 141 + 169 of 100,004 ratings). Each variant's sequence is
``prefix + [L1, L2]``, so :func:`recattn_lessons.data.leave_one_out` of any of them gives
the same ``valid_target`` and ``test_target``. Users with fewer than 3 liked interactions
are left out of every variant (MovieLens has none: each user likes 5 or more).

:func:`keep_popular_items` shrinks a catalogue to its items with many ratings, for the
feedback-loop simulation (:mod:`recattn_lessons.simulation.feedback_loop`) to run in seconds.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from .movielens import Interactions

__all__ = ["VARIANTS", "feedback_variant", "encode_dislikes", "decode_dislikes", "liked_users",
           "keep_popular_items"]

VARIANTS = ("positive", "dropped", "dislike")


def encode_dislikes(items: Tensor, disliked: Tensor, n_items: int) -> Tensor:
    """Item ids ``(...)`` in ``1..N`` -> ids where disliked ones read ``i + N`` (``1..2N``)."""
    if items.shape != disliked.shape or disliked.dtype != torch.bool:
        raise ValueError(f"disliked must be a boolean tensor shaped like items {tuple(items.shape)}, "
                         f"got {tuple(disliked.shape)} {disliked.dtype}")
    if items.numel() and (int(items.min()) < 1 or int(items.max()) > n_items):
        raise ValueError(f"items must lie in 1..{n_items} to be encoded")
    return torch.where(disliked, items + n_items, items)


def decode_dislikes(ids: Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`encode_dislikes`: ``(items, disliked)``, padding 0 stays 0."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > 2 * n_items):
        raise ValueError(f"encoded ids must lie in 0..{2 * n_items} (0 = padding, "
                         f"{n_items + 1}..{2 * n_items} = disliked)")
    disliked = ids > n_items
    return torch.where(disliked, ids - n_items, ids), disliked


def _check(data: Interactions, threshold: float) -> None:
    if data.ratings is None:
        raise ValueError("these Interactions carry no ratings; load them with a rating column "
                         "(load_movielens() does)")
    if not 0 < threshold < 5:
        raise ValueError(f"threshold must lie in (0, 5) stars, got {threshold}")


def liked_users(data: Interactions, threshold: float = 2.0) -> list[int]:
    """Indices of the users with 3+ liked interactions (``rating > threshold``)."""
    _check(data, threshold)
    return [u for u, r in enumerate(data.ratings) if int((r > threshold).sum()) >= 3]


def _kept_mask(stars: Tensor, variant: str, threshold: float) -> Tensor:
    """``(n,)`` True at the positions of one user's ``prefix + [L1, L2]`` in ``variant``."""
    liked = stars > threshold  # (n,)
    where = liked.nonzero().flatten()
    p, q = int(where[-2]), int(where[-1])  # positions of L1 and L2
    keep = torch.zeros_like(liked)
    keep[:p] = True
    if variant == "dropped":
        keep &= liked
    keep[p] = keep[q] = True
    return keep


def feedback_variant(data: Interactions, variant: str, threshold: float = 2.0) -> Interactions:
    """``data`` read in ``variant`` (see the module docstring), users with 3+ likes only.

    The result feeds :func:`recattn_lessons.train.run` unchanged; for ``"dislike"`` its
    ``n_items`` is ``2 * data.n_items`` and its sequences hold encoded ids. ``titles``,
    ``genres`` and ``raw_item_ids`` still describe the ``data.n_items`` real items.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    users = liked_users(data, threshold)
    if not users:
        raise ValueError(f"no user has 3+ ratings above {threshold} stars")
    n = data.n_items
    keep = [_kept_mask(data.ratings[u], variant, threshold) for u in users]
    stars = [data.ratings[u][k] for u, k in zip(users, keep)]
    seqs = [data.sequences[u][k] for u, k in zip(users, keep)]
    if variant == "dislike":
        seqs = [encode_dislikes(s, r <= threshold, n) for s, r in zip(seqs, stars)]
    times = None if data.timestamps is None else [data.timestamps[u][k] for u, k in zip(users, keep)]
    return replace(
        data,
        sequences=seqs,
        ratings=stars,
        timestamps=times,
        n_users=len(users),
        n_items=2 * n if variant == "dislike" else n,
        raw_user_ids=[data.raw_user_ids[u] for u in users],
    )



def keep_popular_items(data: Interactions, min_count: int = 20, min_length: int = 3) -> Interactions:
    """``data`` restricted to items with ``min_count``+ interactions, ids remapped to ``1..M``
    (in the old id order), users with fewer than ``min_length`` items left dropped."""
    if min_count < 1 or min_length < 1:
        raise ValueError(f"min_count and min_length must be >= 1, got {min_count}, {min_length}")
    counts = torch.bincount(torch.cat(data.sequences), minlength=data.n_items + 1)  # (N+1,)
    keep = counts >= min_count  # (N+1,)
    keep[0] = False
    new_id = torch.cumsum(keep.long(), 0) * keep  # (N+1,) old id -> new id, 0 = gone
    m = int(keep.sum())
    masks = [keep[s] for s in data.sequences]
    users = [u for u, k in enumerate(masks) if int(k.sum()) >= min_length]
    if m == 0 or not users:
        raise ValueError(f"no item has {min_count}+ interactions, or no user keeps {min_length} of them")
    old = keep.nonzero().flatten()  # (M,) the kept old ids

    def pick(per_user):
        return None if per_user is None else [per_user[u][masks[u]] for u in users]

    return replace(
        data,
        sequences=[new_id[data.sequences[u][masks[u]]] for u in users],
        ratings=pick(data.ratings),
        timestamps=pick(data.timestamps),
        n_users=len(users),
        n_items=m,
        titles=["<pad>"] + [data.titles[i] for i in old.tolist()],
        genres=[""] + [data.genres[i] for i in old.tolist()],
        raw_item_ids=[-1] + [data.raw_item_ids[i] for i in old.tolist()],
        raw_user_ids=[data.raw_user_ids[u] for u in users],
    )
