"""Synthetic users at scale, for throughput measurements (lesson 08).

MovieLens has 671 users: too few to see what a second process buys. This
draws ``n_users`` sequences (a million in a few seconds) whose items follow
a Zipf law, popularity ``p_i ~ 1 / i^exponent``, the long tail of real
catalogues; lengths are ``min_len`` plus a geometric number of extra
items with mean ``mean_len - min_len``. The items of a sequence are drawn
independently, so there is nothing to learn: use it to time training
steps, never to judge a model's quality.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["zipf_sequences"]


def zipf_sequences(n_users: int, n_items: int, mean_len: float = 20.0, min_len: int = 3,
                   exponent: float = 1.0, seed: int = 0) -> list[Tensor]:
    """``n_users`` item sequences, ids ``1..n_items`` (Zipf popularity), seeded.

    Returns one ``LongTensor`` per user (views into one flat tensor).
    """
    if n_users < 1 or n_items < 1 or min_len < 2:
        raise ValueError(f"need n_users >= 1, n_items >= 1 and min_len >= 2 (an input and a target), "
                         f"got {n_users}, {n_items}, {min_len}")
    if mean_len < min_len:
        raise ValueError(f"mean_len={mean_len} must be >= min_len={min_len}")
    g = torch.Generator().manual_seed(seed)
    extra = mean_len - min_len
    if extra > 0:  # geometric on {0, 1, ...} with mean `extra`: P(stop) = 1 / (1 + extra)
        u = torch.rand(n_users, generator=g, dtype=torch.float64).clamp_min(1e-12)
        more = torch.floor(u.log() / torch.log1p(torch.tensor(-1.0 / (1.0 + extra), dtype=torch.float64)))
    else:
        more = torch.zeros(n_users, dtype=torch.float64)
    lengths = (min_len + more).long()  # (U,)
    weights = torch.arange(1, n_items + 1, dtype=torch.float64) ** -exponent  # (N,)
    # inverse-CDF sampling: multinomial is limited to 2^24 categories and slow for 10^7 draws
    cdf = weights.cumsum(0) / weights.sum()  # (N,)
    draws = torch.rand(int(lengths.sum()), generator=g, dtype=torch.float64)  # (E,)
    flat = torch.searchsorted(cdf, draws).clamp_max(n_items - 1) + 1  # (E,) ids 1..N
    return list(flat.split(lengths.tolist()))
