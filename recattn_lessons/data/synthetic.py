"""Synthetic sequences with planted causes (introduced in lesson 06).

Real data never tells us *why* a user watched a movie, so it cannot tell us
whether attention points at the right reason. Here we plant the reason:

- ``n_pairs`` **cause -> effect** pairs of items. In every user's sequence
  the last item is the effect of a cause that appeared ``gap`` positions
  earlier (``min_gap <= gap <= max_gap``; ``gap = 1`` means adjacent).
- **Distractors** fill every other position, drawn uniformly at random, so
  they carry no information about the next item.
- Optional **decoy pairs**: complete cause -> effect pairs placed earlier in
  the sequence. Their cause is in the history too, but its effect already
  happened, so it does not explain the final item; a model has to look at
  the right cause, not at any cause.

The ground truth is ``cause_position[u]``: the index in ``sequences[u]`` of
the cause of the final item. Item ids follow the course's convention:
0 is padding, real items are ``1..n_items``; causes come first
(``1..n_pairs``), then their effects, then the distractors.

Everything is seeded through an explicit ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["SyntheticConfig", "PlantedSequences", "make_planted", "final_histories"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of the planted data set (defaults train in seconds on a CPU)."""

    n_users: int = 2000  # one sequence per user
    n_pairs: int = 20  # cause -> effect pairs (2 * n_pairs items)
    n_distractors: int = 200  # filler items that carry no signal
    min_len: int = 14  # shortest sequence, final effect included
    max_len: int = 20  # longest sequence, final effect included
    min_gap: int = 1  # effect comes at least this many positions after its cause
    max_gap: int = 6  # ... and at most this many
    n_decoys: int = 1  # complete, earlier cause -> effect pairs per user
    seed: int = 0  # seed of the torch.Generator that draws everything

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_pairs, self.n_distractors, self.min_gap) < 1:
            raise ValueError(
                "n_users, n_pairs, n_distractors and min_gap must all be >= 1, got "
                f"{self.n_users}, {self.n_pairs}, {self.n_distractors}, {self.min_gap}"
            )
        if not self.min_gap <= self.max_gap:
            raise ValueError(f"min_gap={self.min_gap} must be <= max_gap={self.max_gap}")
        if self.n_decoys < 0 or self.n_decoys >= self.n_pairs:
            raise ValueError(
                f"n_decoys={self.n_decoys} must lie in [0, n_pairs - 1] = "
                f"[0, {self.n_pairs - 1}]: each decoy needs its own pair"
            )
        # room for the final pair and every decoy pair at the longest gap
        need = (1 + self.n_decoys) * (self.max_gap + 1)
        if self.min_len < need or self.max_len < self.min_len:
            raise ValueError(
                f"need max_len >= min_len >= (1 + n_decoys) * (max_gap + 1) = {need} "
                f"so every pair fits; got min_len={self.min_len}, "
                f"max_len={self.max_len}: raise min_len or lower max_gap/n_decoys"
            )

    @property
    def n_items(self) -> int:
        return 2 * self.n_pairs + self.n_distractors


@dataclass(frozen=True)
class PlantedSequences:
    """Planted sequences, shaped like ``recattn_lessons.data``'s interactions.

    ``sequences[u]`` is a 1-D LongTensor of item ids in time order; its last
    item is always an effect whose cause sits at ``cause_position[u]``.
    """

    sequences: list[Tensor]  # per user, item ids 1..n_items
    n_users: int
    n_items: int
    titles: list[str]  # titles[item_id]; titles[0] == "<pad>"
    pairs: Tensor  # (n_pairs, 2): cause id, effect id
    cause_position: Tensor  # (U,) index of the final item's cause in sequences[u]
    gap: Tensor  # (U,) len(sequences[u]) - 1 - cause_position[u]
    config: SyntheticConfig = field(repr=False)

    def is_cause(self, items: Tensor) -> Tensor:
        """Boolean tensor: True where ``items`` holds a cause item."""
        return (items >= 1) & (items <= self.config.n_pairs)

    def effect_of(self, cause: Tensor) -> Tensor:
        """Effect ids of cause ids (same shape)."""
        return cause + self.config.n_pairs

    def to_interactions(self):
        """The same sequences as ``data.movielens.Interactions``, so the course's
        training code (``train.run(config, data=...)``) accepts them.

        Under ``leave_one_out`` the test target is each user's final effect
        and training sees everything but the last two items, so the
        cause -> effect rule is learned from the decoy pairs.
        """
        from recattn_lessons.data.movielens import Interactions

        P = self.config.n_pairs
        genres = [""] + ["cause"] * P + ["effect"] * P + ["filler"] * self.config.n_distractors
        return Interactions(
            sequences=list(self.sequences), n_users=self.n_users, n_items=self.n_items,
            titles=list(self.titles), genres=genres,
            raw_item_ids=[-1] + list(range(1, self.n_items + 1)),
            raw_user_ids=list(range(self.n_users)), n_tied=0, n_tie_groups=0)


def _titles(cfg: SyntheticConfig) -> list[str]:
    w = len(str(cfg.n_pairs))
    causes = [f"cause {k:0{w}d}" for k in range(1, cfg.n_pairs + 1)]
    effects = [f"effect {k:0{w}d}" for k in range(1, cfg.n_pairs + 1)]
    w = len(str(cfg.n_distractors))
    fillers = [f"filler {k:0{w}d}" for k in range(1, cfg.n_distractors + 1)]
    return ["<pad>"] + causes + effects + fillers


def _place_pair(free: Tensor, cfg: SyntheticConfig, g: torch.Generator) -> tuple[int, int]:
    """Pick (cause_pos, effect_pos) among free slots; ``free`` is bool (T,)."""
    gaps = torch.arange(cfg.min_gap, cfg.max_gap + 1)
    T = free.numel()
    starts = torch.arange(T)
    # ok[s, k]: cause at s and effect at s + gaps[k] are both free
    ends = starts[:, None] + gaps[None, :]  # (T, G)
    inside = ends < T
    ok = free[:, None] & inside & free[ends.clamp(max=T - 1)]
    options = ok.nonzero()
    if len(options) == 0:  # rare: earlier pairs fragmented the free slots
        raise ValueError("no room left for a decoy pair: raise min_len or lower n_decoys")
    s, k = options[torch.randint(len(options), (1,), generator=g).item()].tolist()
    return s, s + int(gaps[k])


def make_planted(config: SyntheticConfig | None = None, **overrides) -> PlantedSequences:
    """Draw a planted data set (lesson 06).

    ``make_planted(n_users=500, max_gap=4)`` is shorthand for
    ``make_planted(SyntheticConfig(n_users=500, max_gap=4))``.
    The same config (seed included) always gives the same sequences.
    """
    if config is None:
        config = SyntheticConfig(**overrides)
    elif overrides:
        raise TypeError("pass either a SyntheticConfig or keyword overrides, not both")
    cfg = config
    g = torch.Generator().manual_seed(cfg.seed)
    P = cfg.n_pairs
    U = cfg.n_users
    lengths = torch.randint(cfg.min_len, cfg.max_len + 1, (U,), generator=g)
    gaps = torch.randint(cfg.min_gap, cfg.max_gap + 1, (U,), generator=g)
    # pair 0 of each user explains the final item; pairs 1.. are decoys
    pair_ids = torch.stack([torch.randperm(P, generator=g)[: 1 + cfg.n_decoys]
                            for _ in range(U)])  # (U, 1 + n_decoys), 0-based
    sequences = []
    for u in range(U):
        T = int(lengths[u])
        seq = 2 * P + 1 + torch.randint(cfg.n_distractors, (T,), generator=g)  # (T,)
        free = torch.ones(T, dtype=torch.bool)
        c, e = T - 1 - int(gaps[u]), T - 1
        for k, p in enumerate(pair_ids[u].tolist()):
            if k > 0:
                c, e = _place_pair(free, cfg, g)
            seq[c], seq[e] = p + 1, p + 1 + P
            free[c] = free[e] = False
        sequences.append(seq)
    cause_position = lengths - 1 - gaps  # (U,)
    pairs = torch.stack([torch.arange(1, P + 1), torch.arange(P + 1, 2 * P + 1)], dim=1)
    return PlantedSequences(sequences, U, cfg.n_items, _titles(cfg), pairs,
                            cause_position, gaps, cfg)


def final_histories(data: PlantedSequences, maxlen: int) -> tuple[Tensor, Tensor, Tensor]:
    """The question every faithfulness check asks: which past item caused the last one?

    Returns ``(history, target, cause_index)``:

    - ``history`` ``(U, maxlen)``: each sequence without its final item, the
      last ``maxlen`` items kept, left-padded with 0 (the model's input);
    - ``target`` ``(U,)``: the final (effect) item;
    - ``cause_index`` ``(U,)``: the column of ``history`` holding the cause.
    """
    if maxlen < data.config.max_gap:
        raise ValueError(
            f"maxlen={maxlen} is shorter than max_gap={data.config.max_gap}: the "
            f"cause could be cut off; use maxlen >= {data.config.max_gap}"
        )
    U = data.n_users
    history = torch.zeros(U, maxlen, dtype=torch.long)  # (U, maxlen)
    target = torch.empty(U, dtype=torch.long)
    for u, seq in enumerate(data.sequences):
        past = seq[:-1][-maxlen:]
        history[u, maxlen - len(past):] = past
        target[u] = seq[-1]
    cause_index = maxlen - data.gap  # (U,): gap 1 -> last column
    return history, target, cause_index
