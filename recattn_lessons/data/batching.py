"""Training windows, batches and negative sampling, vectorized (lesson 05).

**Windows.** A user's training sequence ``s_0 .. s_{n-1}`` gives ``n - 1``
transitions ``s_t -> s_{t+1}``. :func:`sliding_windows` cuts them into
left-padded windows of ``maxlen`` inputs, starting from the most recent
item and stepping back by ``stride``. Within a window, position ``j`` has
input ``x_j`` and target ``y_j`` = the item that followed ``x_j``; padding
positions have input 0 and target 0 (ignored by the losses). Each
transition is a target in **exactly one** window: with ``stride <
maxlen`` windows overlap, and a window only keeps the targets of its last
``stride`` positions, so every target sees at least ``maxlen - stride``
items of context (when the user has them). Long users give several
windows, so training uses every transition, not only the last ``maxlen``.

**Negatives.** :class:`SeenIndex` answers "has user u interacted with item
i?" for whole tensors at once (a sorted key array and ``searchsorted``),
and :func:`sample_negatives` draws uniform items that the user has never
seen, by vectorized rejection sampling with an explicit generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

__all__ = ["Windows", "Batch", "sliding_windows", "train_subset", "SeenIndex", "sample_negatives",
           "iterate_batches"]


@dataclass(frozen=True)
class Windows:
    """All training windows: inputs, targets ``(N, L)`` and users ``(N,)``."""

    inputs: Tensor
    targets: Tensor
    users: Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


@dataclass(frozen=True)
class Batch:
    """One training batch, the argument of every model's ``loss``.

    Attributes:
        inputs: ``(B, L)`` left-padded item ids (0 = padding).
        targets: ``(B, L)`` next item at each position (0 = no target).
        users: ``(B,)`` row index in the split of each window's user.
        negatives: ``(B, L, K)`` items the user never saw, or None when the
            model asked for no negatives.
    """

    inputs: Tensor
    targets: Tensor
    users: Tensor
    negatives: Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        neg = None if self.negatives is None else self.negatives.to(device)
        return Batch(self.inputs.to(device), self.targets.to(device), self.users.to(device), neg)


def _flat(sequences: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)  # (U,)
    starts = torch.cumsum(lengths, 0) - lengths  # (U,)
    flat = torch.cat([s.long() for s in sequences]) if len(sequences) else torch.zeros(0, dtype=torch.long)
    return flat, starts, lengths


def sliding_windows(sequences: list[Tensor], maxlen: int, stride: int | None = None) -> Windows:
    """Cut every sequence into windows covering each transition once.

    Args:
        sequences: per-user item ids (1..n_items), oldest first.
        maxlen: window length ``L``.
        stride: step between window ends; default ``maxlen`` (no overlap).
            Must lie in ``1..maxlen``.
    """
    stride = maxlen if stride is None else stride
    if maxlen < 1 or not 1 <= stride <= maxlen:
        raise ValueError(f"need maxlen >= 1 and 1 <= stride <= maxlen, got maxlen={maxlen}, stride={stride}")
    flat, starts, lengths = _flat(sequences)
    n_inputs = (lengths - 1).clamp(min=0)  # transitions per user
    counts = (n_inputs + stride - 1) // stride  # windows per user (U,)
    users = torch.repeat_interleave(torch.arange(len(sequences)), counts)  # (N,)
    first = torch.cumsum(counts, 0) - counts  # (U,)
    k = torch.arange(len(users)) - first[users]  # window number from the end
    end = starts[users] + lengths[users] - 2 - k * stride  # last input (N,)
    idx = end[:, None] - (maxlen - 1) + torch.arange(maxlen)  # (N, L)
    real = idx >= starts[users][:, None]  # (N, L)
    inputs = torch.where(real, flat[idx.clamp(min=0)], 0)  # (N, L)
    keep = real & (idx > (end - stride)[:, None])  # targets owned by this window
    targets = torch.where(keep, flat[(idx + 1).clamp(min=0)], 0)  # (N, L)
    return Windows(inputs, targets, users)


class SeenIndex:
    """Vectorized membership test for (user, item) pairs.

    Stores the sorted keys ``user * (n_items + 1) + item``; ``contains`` is
    one ``searchsorted``: O(log n) per query, memory O(interactions), so it
    scales to ML-20M where a dense (users x items) matrix would not.
    """

    def __init__(self, sequences: list[Tensor], n_items: int) -> None:
        flat, _, lengths = _flat(sequences)
        users = torch.repeat_interleave(torch.arange(len(sequences)), lengths)
        self.n_items = n_items
        self.keys = torch.unique(users * (n_items + 1) + flat)  # sorted (S,)
        self.n_seen = torch.bincount(torch.div(self.keys, n_items + 1, rounding_mode="floor"),
                                     minlength=len(sequences))  # distinct items per user

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """Boolean tensor of ``items``' shape: did ``users`` see ``items``?

        ``users`` must broadcast against ``items`` (e.g. ``users[:, None]``).
        """
        keys = users * (self.n_items + 1) + items
        pos = torch.searchsorted(self.keys, keys.reshape(-1)).clamp(max=len(self.keys) - 1)
        return (self.keys[pos] == keys.reshape(-1)).view(keys.shape)


def sample_negatives(seen: SeenIndex, users: Tensor, shape: tuple[int, ...],
                     generator: torch.Generator, max_rounds: int = 100) -> Tensor:
    """Uniform items in ``1..n_items`` that each user has never interacted with.

    Args:
        seen: the users' histories.
        users: ``(B,)`` user rows.
        shape: trailing shape per user, e.g. ``(L, K)``; result ``(B, *shape)``.
        generator: the only source of randomness (CPU generator).
    """
    n = seen.n_items
    if (seen.n_seen[users] >= n).any():
        raise ValueError("a user has interacted with every item: no negative exists for them")
    u = users.view(-1, *([1] * len(shape))).cpu()  # (B, 1, ...)
    neg = torch.randint(1, n + 1, (len(users), *shape), generator=generator)
    for _ in range(max_rounds):
        bad = seen.contains(u, neg)
        n_bad = int(bad.sum())
        if n_bad == 0:
            return neg
        neg[bad] = torch.randint(1, n + 1, (n_bad,), generator=generator)
    raise RuntimeError(f"could not draw unseen negatives in {max_rounds} rounds: users have seen "
                       "almost every item; lower the number of negatives")


def iterate_batches(windows: Windows, batch_size: int, generator: torch.Generator,
                    seen: SeenIndex | None = None, n_negatives: int = 0,
                    shuffle: bool = True) -> Iterator[Batch]:
    """Yield :class:`Batch` es covering every window once, in shuffled order.

    The permutation and the negatives come from ``generator`` only, so a
    run is reproduced by restoring the generator's state.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if n_negatives and seen is None:
        raise ValueError("n_negatives > 0 needs a SeenIndex of the users' histories")
    N, L = windows.inputs.shape
    order = torch.randperm(N, generator=generator) if shuffle else torch.arange(N)
    for lo in range(0, N, batch_size):
        rows = order[lo:lo + batch_size]
        users = windows.users[rows]
        neg = sample_negatives(seen, users, (L, n_negatives), generator) if n_negatives else None
        yield Batch(windows.inputs[rows], windows.targets[rows], users, neg)


def train_subset(windows: Windows, n_users: int, fraction: float, seed: int) -> Windows:
    """The windows of ``ceil(fraction * n_users)`` users drawn at random (scaling, lesson 08).

    The users are the first ones of a seeded permutation, so for one seed a
    smaller fraction's users are a subset of a larger one's. Only training
    shrinks: validation and test still cover every user.
    """
    if fraction >= 1.0:
        return windows
    order = torch.randperm(n_users, generator=torch.Generator().manual_seed(seed))  # (U,)
    chosen = torch.zeros(n_users, dtype=torch.bool)
    chosen[order[:math.ceil(fraction * n_users)]] = True
    keep = chosen[windows.users]  # (N,)
    return Windows(windows.inputs[keep], windows.targets[keep], windows.users[keep])
