"""The small synthetic dataset several test files train on: users walking a ring."""

from __future__ import annotations

import pandas as pd
import torch

from recattn_lessons.data import interactions_from_frame

N_ITEMS = 40


def ring(n_items: int = N_ITEMS, seed: int = 0, n_users: int = 30):
    """``n_users`` users walking a ring of items (next = current + 1 or + 2), 8-15 steps,
    as an :class:`~recattn_lessons.data.Interactions` (raw ids = ring positions)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for u in range(n_users):
        item = int(torch.randint(1, n_items + 1, (1,), generator=g))
        for t in range(int(torch.randint(8, 16, (1,), generator=g))):
            rows.append((u, item, t))
            item = (item + int(torch.randint(1, 3, (1,), generator=g)) - 1) % n_items + 1
    return interactions_from_frame(pd.DataFrame(rows, columns=["userId", "movieId", "timestamp"]))
