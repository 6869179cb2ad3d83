"""Confidence intervals over users: the paired bootstrap (issue 12, lesson 05).

A test set of ``U`` users is one sample of users; another sample would give
other numbers. The bootstrap redraws ``U`` users *with replacement*
``n_boot`` times and recomputes the metric each time; the 2.5th and 97.5th
percentiles of those redraws give a 95% interval.

To compare two models, both are evaluated on the **same** redrawn users
(a *paired* bootstrap): the users that are hard for one model are usually
hard for the other, so the interval of the *difference* is much narrower
than the two separate intervals suggest. If the difference's interval
excludes 0 the test set resolves the comparison; if not, it does not.

Everything is vectorised (one ``(n_boot, U)`` index draw, chunked) and
seeded by an explicit generator, so the intervals are reproducible.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ranking import _as_ranks

__all__ = ["per_user", "bootstrap_ci", "paired_bootstrap", "paired_bootstrap_values"]


def per_user(ranks: Tensor, k: int = 10) -> dict[str, Tensor]:
    """``{"hr@K", "ndcg@K", "mrr"}``: each a ``(U,)`` float64 tensor of
    per-user values whose mean is :func:`~recattn_lessons.metrics.summarize`'s number."""
    r = _as_ranks(torch.as_tensor(ranks), k).double()
    hit = r < k
    return {f"hr@{k}": hit.double(), f"ndcg@{k}": torch.where(hit, 1.0 / torch.log2(r + 2.0), 0.0),
            "mrr": 1.0 / (r + 1.0)}


def _boot_means(values: Tensor, n_boot: int, generator: torch.Generator,
                chunk_elements: int = 1 << 24) -> Tensor:
    """``(n_boot, M)`` means of ``values`` ``(U, M)`` over resampled users."""
    U = values.shape[0]
    step = max(1, chunk_elements // max(U, 1))
    out = []
    for lo in range(0, n_boot, step):
        idx = torch.randint(0, U, (min(step, n_boot - lo), U), generator=generator)  # (b, U)
        out.append(values[idx].mean(dim=1))  # (b, M)
    return torch.cat(out)


def _check(n_boot: int, level: float, generator) -> torch.Generator:
    if n_boot < 10:
        raise ValueError(f"n_boot must be at least 10, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if generator is None:
        raise ValueError("pass seed= or generator=: the bootstrap must be reproducible")
    return torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator


def _interval(means: Tensor, level: float) -> tuple[Tensor, Tensor]:
    a = (1 - level) / 2
    q = torch.quantile(means, torch.tensor([a, 1 - a], dtype=means.dtype), dim=0)  # (2, M)
    return q[0], q[1]


def bootstrap_ci(ranks: Tensor, k: int = 10, n_boot: int = 1000, seed: int | torch.Generator = 0,
                 level: float = 0.95) -> dict[str, dict[str, float]]:
    """Percentile bootstrap interval of every metric over users.

    Returns ``{metric: {"mean", "lo", "hi"}}`` (``mean`` is the metric on
    the real test set, ``lo``/``hi`` the interval's ends).
    """
    g = _check(n_boot, level, seed)
    pu = per_user(ranks, k)
    names = list(pu)
    values = torch.stack([pu[m] for m in names], dim=1)  # (U, M)
    lo, hi = _interval(_boot_means(values, n_boot, g), level)
    mean = values.mean(0)
    return {m: {"mean": float(mean[i]), "lo": float(lo[i]), "hi": float(hi[i])} for i, m in enumerate(names)}


def paired_bootstrap(ranks_a: Tensor, ranks_b: Tensor, k: int = 10, n_boot: int = 1000,
                     seed: int | torch.Generator = 0, level: float = 0.95) -> dict[str, dict[str, float]]:
    """Interval of ``metric(a) - metric(b)`` with users resampled jointly.

    ``ranks_a`` and ``ranks_b`` are the two models' ranks of the **same**
    users in the same order. Returns ``{metric: {"diff", "lo", "hi",
    "p_not_better"}}``; ``p_not_better`` is the share of redraws where
    ``a`` does not beat ``b`` (a one-sided bootstrap p-value).
    """
    g = _check(n_boot, level, seed)
    ra, rb = torch.as_tensor(ranks_a), torch.as_tensor(ranks_b)
    if ra.shape != rb.shape:
        raise ValueError(f"paired ranks need the same users: shapes {tuple(ra.shape)} and {tuple(rb.shape)} differ")
    pa, pb = per_user(ra, k), per_user(rb, k)
    names = list(pa)
    d = torch.stack([pa[m] - pb[m] for m in names], dim=1)  # (U, M) per-user differences
    means = _boot_means(d, n_boot, g)  # (n_boot, M)
    lo, hi = _interval(means, level)
    diff = d.mean(0)
    worse = (means <= 0).double().mean(0)
    return {m: {"diff": float(diff[i]), "lo": float(lo[i]), "hi": float(hi[i]),
                "p_not_better": float(worse[i])} for i, m in enumerate(names)}


def paired_bootstrap_values(values_a: Tensor, values_b: Tensor, n_boot: int = 1000,
                            seed: int | torch.Generator = 0, level: float = 0.95) -> dict[str, float]:
    """Interval of ``mean(a) - mean(b)`` for any per-user values (lesson 09: per-user ILD).

    ``values_a`` and ``values_b`` are ``(U,)``, the same users in the same order. Returns
    ``{"diff", "lo", "hi", "p_not_better"}`` as :func:`paired_bootstrap` does for one metric.
    """
    g = _check(n_boot, level, seed)
    a, b = torch.as_tensor(values_a, dtype=torch.float64), torch.as_tensor(values_b, dtype=torch.float64)
    if a.dim() != 1 or a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"paired values need the same users, one value each: shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    means = _boot_means((a - b)[:, None], n_boot, g)  # (n_boot, 1)
    lo, hi = _interval(means, level)
    return {"diff": float((a - b).mean()), "lo": float(lo[0]), "hi": float(hi[0]),
            "p_not_better": float((means <= 0).double().mean())}
