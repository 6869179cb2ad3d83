"""What items are: genres and title words as tensors (lesson 09).

- :func:`genre_multi_hot`  ``(n_items + 1, G)`` 0/1 matrix of each movie's genres
- :func:`title_tokens`     ``(n_items + 1, T)`` word ids of each title (0 = padding)
- :func:`item_popularity`  ``(n_items + 1,)`` training interaction counts

Row 0 is the padding item everywhere and is all zeros. MovieLens marks a movie without
genres as ``"(no genres listed)"``: that is no genre, not a 21st genre (a row of zeros).
"""

from __future__ import annotations

import re
from collections import Counter

import torch
from torch import Tensor

from .movielens import Interactions

__all__ = ["genre_multi_hot", "title_tokens", "item_popularity", "NO_GENRE"]

NO_GENRE = "(no genres listed)"
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_WORD = re.compile(r"[a-z0-9]+")


def genre_multi_hot(data: Interactions) -> tuple[Tensor, list[str]]:
    """``(features, names)``: ``features[i, g] = 1`` if item ``i`` has genre ``names[g]``.

    ``features`` is ``(n_items + 1, G)`` float32, genres sorted by name.
    """
    per_item = [set(g.split("|")) - {"", NO_GENRE} for g in data.genres]
    names = sorted(set().union(*per_item))
    if not names:
        raise ValueError("these Interactions carry no genres; build them with genres=<column> "
                         "(load_movielens() does)")
    column = {g: j for j, g in enumerate(names)}
    features = torch.zeros(len(per_item), len(names))
    for i, genres in enumerate(per_item):
        features[i, [column[g] for g in genres]] = 1.0
    features[0] = 0.0
    return features, names


def _words(title: str) -> list[str]:
    """Lower-case words of a title, its ``(year)`` suffix dropped: "Toy Story (1995)" -> toy, story."""
    return _WORD.findall(_YEAR.sub("", title).lower())


def title_tokens(data: Interactions, max_tokens: int = 8, min_count: int = 2) -> tuple[Tensor, list[str]]:
    """``(tokens, vocab)``: each title as up to ``max_tokens`` word ids, left-aligned, 0 = pad.

    ``vocab[0] == "<pad>"``, ``vocab[1] == "<unk>"`` (a word seen in fewer than ``min_count``
    titles: it says nothing another item could share). ``tokens`` is ``(n_items + 1, T)``
    long with ``T = max_tokens``; row 0 (the padding item) is all padding.
    """
    if max_tokens < 1 or min_count < 1:
        raise ValueError(f"max_tokens and min_count must be >= 1, got {max_tokens}, {min_count}")
    words = [[] if i == 0 else _words(t) for i, t in enumerate(data.titles)]
    counts = Counter(w for ws in words for w in set(ws))
    vocab = ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_count)
    index = {w: j for j, w in enumerate(vocab)}
    tokens = torch.zeros(len(words), max_tokens, dtype=torch.long)
    for i, ws in enumerate(words):
        ids = [index.get(w, 1) for w in ws[:max_tokens]]
        tokens[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return tokens, vocab


def item_popularity(sequences: list[Tensor], n_items: int) -> Tensor:
    """``(n_items + 1,)`` how often each item occurs in ``sequences`` (e.g. ``split.train``)."""
    if not sequences:
        raise ValueError("no sequences to count")
    flat = torch.cat([s.long() for s in sequences])
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) > n_items):
        raise ValueError(f"sequences hold ids outside 0..{n_items}")
    counts = torch.bincount(flat, minlength=n_items + 1)
    counts[0] = 0
    return counts
