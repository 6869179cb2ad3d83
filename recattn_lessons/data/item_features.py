"""What items are: genres and title words as tensors (lesson 09).

- :func:`genre_multi_hot`  ``(n_items + 1, G)`` 0/1 matrix of each movie's genres
- :func:`title_tokens`     ``(n_items + 1, T)`` word ids of each title (0 = padding)
- :func:`item_popularity`  ``(n_items + 1,)`` training interaction counts
- :func:`feature_tokens`   ``(n_items + 1, T)`` one token per genre and title word (0 = pad),
  what :mod:`recattn_lessons.models.item_encoder` embeds
- :func:`cold_items`       ``(n_items + 1,)`` True for items with at most 3 training interactions

Row 0 is the padding item everywhere and is all zeros. MovieLens marks a movie without
genres as ``"(no genres listed)"``: that is no genre, not a 21st genre (a row of zeros).
"""

from __future__ import annotations

import re
from collections import Counter

import torch
from torch import Tensor

from .movielens import Interactions

__all__ = ["genre_multi_hot", "title_tokens", "item_popularity", "feature_tokens", "cold_items",
           "FEATURE_KINDS", "NO_GENRE"]

NO_GENRE = "(no genres listed)"
FEATURE_KINDS = ("genres", "title")  # what feature_tokens can read
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


def feature_tokens(data: Interactions, kinds=FEATURE_KINDS, max_title_tokens: int = 8,
                   min_count: int = 2) -> tuple[Tensor, list[str]]:
    """``(tokens, vocab)``: every item's side information as one row of token ids.

    One token per genre the item has (``"genre:Comedy"``) followed by its title words
    (``"title:story"``, from :func:`title_tokens`; ``<unk>`` words are dropped: a word of one
    title only is shared with no other item). ``tokens`` is ``(n_items + 1, T)`` long,
    left-aligned, 0 = padding, ``T`` the most tokens any item has; ``vocab[0] == "<pad>"``.
    An item may have no token at all (row of zeros), like the padding item 0.
    """
    kinds = tuple(kinds)
    bad = sorted(set(kinds) - set(FEATURE_KINDS))
    if not kinds or bad:
        raise ValueError(f"kinds must be a non-empty subset of {FEATURE_KINDS}, got {kinds}")
    vocab, columns = ["<pad>"], []
    if "genres" in kinds:
        multi_hot, names = genre_multi_hot(data)  # (N+1, G)
        ids = torch.arange(len(vocab), len(vocab) + len(names))  # (G,)
        columns.append(torch.where(multi_hot > 0, ids, 0))  # (N+1, G)
        vocab += [f"genre:{g}" for g in names]
    if "title" in kinds:
        words, title_vocab = title_tokens(data, max_title_tokens, min_count)  # (N+1, Tt)
        offset = len(vocab) - 2  # title ids 2.. (past <pad>, <unk>) -> offset + 2..
        columns.append(torch.where(words > 1, words + offset, 0))  # (N+1, Tt)
        vocab += [f"title:{w}" for w in title_vocab[2:]]
    raw = torch.cat(columns, dim=1)  # (N+1, G + Tt), zeros scattered
    order = (raw == 0).to(torch.int8).argsort(dim=1, stable=True)  # real tokens first, in order
    tokens = raw.gather(1, order)  # (N+1, G + Tt) left-aligned
    width = max(1, int((tokens > 0).sum(1).max()))
    return tokens[:, :width].contiguous(), vocab  # (N+1, T)


def cold_items(sequences: list[Tensor], n_items: int, max_count: int = 3) -> Tensor:
    """``(n_items + 1,)`` bool: items occurring at most ``max_count`` times in ``sequences``.

    Lesson 09's **cold items**: with ``sequences = split.train``, the items whose id
    embedding saw at most 3 training interactions (0 included). The padding item is never cold.
    """
    if max_count < 0:
        raise ValueError(f"max_count must be >= 0, got {max_count}")
    cold = item_popularity(sequences, n_items) <= max_count
    cold[0] = False
    return cold
