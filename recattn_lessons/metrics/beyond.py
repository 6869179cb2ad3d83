"""Beyond accuracy: what a list of recommendations looks like as a whole (lesson 09).

Every function takes the lists the model would show, ``top_items``: a ``(U, k)`` integer
tensor, row ``u`` the ``k`` item ids shown to user ``u`` (ids ``1..n_items``; 0 is padding
and may not appear). All are vectorised over users; ``tests/test_metrics_beyond.py``
checks each against a brute-force loop over its definition.

- :func:`intra_list_diversity`  mean pairwise (1 - Jaccard) distance inside each list
- :func:`catalog_coverage`      share of the catalogue shown to anyone
- :func:`novelty`               mean self-information of what is shown
- :func:`gini_index`            how concentrated exposure is over items
- :func:`genre_calibration`     KL divergence between a user's history and list genres
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["jaccard_similarity", "intra_list_diversity", "catalog_coverage", "novelty", "gini_index",
           "genre_calibration", "exposure_counts"]


def _check_lists(top_items: Tensor, n_items: int, min_k: int = 1) -> Tensor:
    """Validate ``(U, k)`` id lists; return them as a long tensor."""
    if not isinstance(top_items, Tensor) or top_items.dim() != 2 or top_items.dtype.is_floating_point:
        got = f"shape {tuple(top_items.shape)}, dtype {top_items.dtype}" if isinstance(top_items, Tensor) \
            else type(top_items).__name__
        raise ValueError(f"top_items must be an integer tensor (U, k) of item ids; got {got}")
    if top_items.shape[0] == 0 or top_items.shape[1] < min_k:
        raise ValueError(f"top_items is empty or too short: shape {tuple(top_items.shape)}; "
                         f"need at least one user and k >= {min_k} items per list")
    if int(top_items.min()) < 1 or int(top_items.max()) > n_items:
        raise ValueError(f"top_items holds ids outside 1..{n_items} (min {int(top_items.min())}, "
                         f"max {int(top_items.max())}); 0 is padding and is never recommended")
    return top_items.long()


def _check_features(item_features: Tensor) -> Tensor:
    if not isinstance(item_features, Tensor) or item_features.dim() != 2:
        raise ValueError("item_features must be a (n_items + 1, n_features) multi-hot tensor "
                         "(row 0 = padding), e.g. recattn_lessons.data.genre_multi_hot(data)")
    return item_features.to(torch.float64)


def jaccard_similarity(items: Tensor, item_features: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """``(U, C, C)`` Jaccard similarity ``|A & B| / |A | B|`` of the feature sets of each
    row's items (``items`` ``(U, C)``, rows of ``item_features``); two empty sets: 1."""
    f = (item_features[items] > 0).to(dtype)  # (U, C, F) binary
    inter = f @ f.transpose(1, 2)  # (U, C, C) |A & B|
    size = f.sum(-1)  # (U, C)
    union = size[:, :, None] + size[:, None, :] - inter  # (U, C, C) |A | B|
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def intra_list_diversity(top_items: Tensor, item_features: Tensor, per_user: bool = False):
    """Mean pairwise distance between the items of each list (Ziegler et al., 2005).

    ILD(u) = 2 / (k (k - 1)) * sum_{a < b} (1 - J(f_a, f_b)),  J(A, B) = |A & B| / |A | B|

    with ``f_i`` item ``i``'s feature set (a row of ``item_features``, e.g. its genres).
    Two items without any feature count as identical (distance 0). Returns the mean over
    users (a float), or the ``(U,)`` tensor with ``per_user=True``. Needs ``k >= 2``.
    """
    feats = _check_features(item_features)
    top = _check_lists(top_items, feats.shape[0] - 1, min_k=2)
    jaccard = jaccard_similarity(top, feats)  # (U, k, k), float64
    k = top.shape[1]
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool), diagonal=1)  # pairs a < b
    ild = (1 - jaccard)[:, upper].mean(dim=1)  # (U,)
    return ild if per_user else float(ild.mean())


def exposure_counts(top_items: Tensor, n_items: int) -> Tensor:
    """``(n_items,)`` how many lists show each item ``1..n_items``."""
    top = _check_lists(top_items, n_items)
    return torch.bincount(top.reshape(-1), minlength=n_items + 1)[1:]


def catalog_coverage(top_items: Tensor, n_items: int) -> float:
    """Share of the catalogue in at least one list: |union_u top(u)| / n_items."""
    return float((exposure_counts(top_items, n_items) > 0).sum()) / n_items


def novelty(top_items: Tensor, item_popularity: Tensor) -> float:
    """Mean self-information of the recommended items, in bits (Zhou et al., 2010).

    novelty = mean over all (u, slot) of -log2 p(i),  p(i) = (c_i + 1) / (sum_j c_j + N)

    with ``c_i = item_popularity[i]`` the item's training interaction count (row 0, the
    padding, is ignored) and add-one smoothing so an item nobody trained on is finite.
    A popularity ranker scores lowest; recommending the long tail scores high.
    """
    if not isinstance(item_popularity, Tensor) or item_popularity.dim() != 1:
        raise ValueError("item_popularity must be a 1-D tensor (n_items + 1,) of interaction counts")
    counts = item_popularity[1:].to(torch.float64)
    if (counts < 0).any():
        raise ValueError("item_popularity holds negative counts")
    top = _check_lists(top_items, len(counts))
    p = (counts + 1) / (counts.sum() + len(counts))  # (N,)
    return float((-torch.log2(p[top - 1])).mean())


def gini_index(top_items: Tensor, n_items: int) -> float:
    """Gini coefficient of exposure over the catalogue (0 = every item shown equally often).

    G = sum_{r=1..N} (2r - N - 1) x_(r) / (N sum_r x_(r)),  x_(1) <= ... <= x_(N)

    with ``x`` the :func:`exposure_counts` sorted ascending (unshown items count as 0).
    Showing one item to everyone gives (N - 1) / N, its maximum.
    """
    x = exposure_counts(top_items, n_items).to(torch.float64).sort().values  # (N,)
    r = torch.arange(1, n_items + 1, dtype=torch.float64)
    return float(((2 * r - n_items - 1) * x).sum() / (n_items * x.sum()))


def _genre_distributions(bags: list[Tensor], weights: Tensor) -> Tensor:
    """``(U, F)`` Steck's p(g) of each bag of item ids: each item spreads weight 1 over its
    genres (genre-less items add nothing), then each row is normalised to sum to 1."""
    flat = torch.cat(bags).long()  # (sum of lengths,)
    owner = torch.repeat_interleave(torch.arange(len(bags)), torch.tensor([len(b) for b in bags]))
    f = weights[flat]  # (n, F)
    per_item = f / f.sum(-1, keepdim=True).clamp_min(1)
    total = torch.zeros(len(bags), weights.shape[1], dtype=weights.dtype).index_add_(0, owner, per_item)
    return total / total.sum(-1, keepdim=True).clamp_min(1e-12)


def genre_calibration(top_items: Tensor, histories, item_features: Tensor,
                      alpha: float = 0.01, per_user: bool = False):
    """Miscalibration: KL(p_u || q~_u) between history and list genres (Steck, 2018).

    p_u(g) = sum_{i in history} w(g|i) / |history|,   q_u(g) = sum_{i in list} w(g|i) / k
    w(g|i) = 1 / |genres(i)| if i has genre g else 0,  q~_u = (1 - alpha) q_u + alpha p_u
    KL = sum_g p_u(g) log(p_u(g) / q~_u(g))   (natural log; 0 = perfectly calibrated)

    ``histories`` is one 1-D id tensor per user (or a ``(U, L)`` tensor padded with 0).
    Returns the mean over users, or the ``(U,)`` tensor with ``per_user=True``.
    """
    feats = _check_features(item_features)
    top = _check_lists(top_items, feats.shape[0] - 1)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if isinstance(histories, Tensor):
        histories = [h[h > 0] for h in histories]
    if len(histories) != top.shape[0]:
        raise ValueError(f"histories has {len(histories)} users but top_items has {top.shape[0]} rows")
    histories = [h[h > 0].long() for h in histories]
    empty = [u for u, h in enumerate(histories) if h.numel() == 0]
    if empty:
        raise ValueError(f"user row {empty[0]} has an empty history; calibration needs one")
    top_id = max(int(h.max()) for h in histories)
    if top_id >= feats.shape[0]:
        raise ValueError(f"histories hold item id {top_id} but item_features has rows for ids "
                         f"0..{feats.shape[0] - 1}")
    binary = (feats > 0).to(torch.float64)
    p = _genre_distributions(histories, binary)  # (U, F)
    q = (1 - alpha) * _genre_distributions(list(top), binary) + alpha * p  # (U, F)
    kl = torch.where(p > 0, p * torch.log(p / q.clamp_min(1e-300)), torch.zeros_like(p)).sum(-1)  # (U,)
    return kl if per_user else float(kl.mean())

