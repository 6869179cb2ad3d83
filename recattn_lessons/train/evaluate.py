"""From a model to honest numbers: both protocols in one pass (lesson 05).

For each user and stage ('valid' or 'test') the model scores every item
after the left-padded history (:func:`recattn_lessons.data.histories`).

- **full**: the target's rank among all items except the user's other
  history items (:func:`recattn_lessons.metrics.ranks_full`);
- **sampled100**: its rank among 100 sampled items the user never saw
  (the SASRec paper's protocol, :func:`recattn_lessons.metrics.sample_negatives`),
  read from the same score matrix.

Both use pessimistic ties, so a constant model gets the worst rank. The
negatives are drawn once per stage from a generator seeded by the run's
seed, so every model and epoch meets the same ones.

Evaluation **streams**: the users' seen items are kept as one
:class:`~recattn_lessons.metrics.CSRHistory` (memory O(interactions)) and
the exclusion mask is built per batch of users, so memory is
O(interactions + batch x items), never users x items or users x longest
history (issue 12: ML-20M's 138k users x 27k items would need GBs).
"""

from __future__ import annotations

import torch
from torch import Tensor
from recattn_lessons.progress import tqdm

from .. import metrics
from ..data.splits import Split, left_pad

__all__ = ["eval_negatives", "evaluate", "evaluate_ranks", "seen_csr", "top_k_lists"]


def seen_csr(split: Split, stage: str) -> metrics.CSRHistory:
    """Every user's items before the held-out item of ``stage``, as CSR."""
    return metrics.CSRHistory.from_sequences(split.seen(stage), split.n_items)


def eval_negatives(split: Split, stage: str, seed: int, n: int = 100) -> Tensor:
    """``(U, n)`` seeded negatives for the sampled protocol of ``stage``."""
    g = torch.Generator().manual_seed(10_007 * seed + (1 if stage == "valid" else 2))
    return metrics.sample_negatives(seen_csr(split, stage), split.n_items, n=n,
                                    generator=g, targets=split.targets(stage))


@torch.no_grad()
def evaluate_ranks(model, split: Split, stage: str, maxlen: int, negatives: Tensor,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   progress: bool = False) -> dict[str, Tensor]:
    """``{"full": (U,), "sampled100": (U,)}`` 0-based ranks, in eval mode, from
    scores in fp32 or better (bf16 scores are upcast, float64 ones kept)."""
    was_training = model.training
    model.eval()
    seen = split.seen(stage)  # per-user tensors (views, no copy)
    csr = metrics.CSRHistory.from_sequences(seen, split.n_items)  # O(interactions)
    targets = split.targets(stage)
    full, sampled = [], []
    try:
        for lo in tqdm(range(0, split.n_users, batch_size), desc=f"evaluate {stage}",
                       leave=False, disable=not progress, mininterval=1.0):
            rows = slice(lo, lo + batch_size)
            hist = left_pad(seen[rows], maxlen)  # (b, L) this batch only
            scores = model.score(hist.to(device))  # (b, N+1)
            scores = scores.to("cpu", torch.promote_types(scores.dtype, torch.float32))  # bf16 up, fp64 kept
            exclude = csr.mask(lo, lo + batch_size)  # (b, N+1) this batch only
            full.append(metrics.ranks_full(scores, targets[rows], exclude))
            t = scores.gather(1, targets[rows, None]).squeeze(1)  # (b,)
            sampled.append(metrics.ranks_sampled(t, scores.gather(1, negatives[rows])))
    finally:
        model.train(was_training)
    return {"full": torch.cat(full), "sampled100": torch.cat(sampled)}


def evaluate(model, split: Split, stage: str, maxlen: int, negatives: Tensor,
             batch_size: int = 128, device: str | torch.device = "cpu", k: int = 10,
             progress: bool = False) -> dict:
    """``{"full": {"hr@10", "ndcg@10", "mrr"}, "sampled100": {...}}``."""
    ranks = evaluate_ranks(model, split, stage, maxlen, negatives, batch_size, device, progress)
    return {name: metrics.summarize(r, k) for name, r in ranks.items()}


@torch.no_grad()
def top_k_lists(model, split: Split, stage: str, maxlen: int, k: int = 10,
                batch_size: int = 128, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """What the model would show each user at ``stage``: ``(items, scores, full_ranks)``.

    ``items`` and ``scores`` are ``(U, k)``, best first, over the items the user has not
    seen (the full protocol's candidates: padding and the history before ``stage`` are
    excluded, the held-out target never is, as in :func:`~recattn_lessons.metrics.ranks_full`),
    so ``target in items[u]`` exactly when ``full_ranks[u] < k``; ``full_ranks`` is ``(U,)``, the target's
    0-based full-protocol rank from the same scores (lesson 09 re-ranks these lists).
    """
    if not 1 <= k <= split.n_items:
        raise ValueError(f"k must lie in 1..n_items={split.n_items}, got {k}")
    was_training = model.training
    model.eval()
    seen = split.seen(stage)
    csr = metrics.CSRHistory.from_sequences(seen, split.n_items)
    targets = split.targets(stage)
    items, values, ranks = [], [], []
    try:
        for lo in range(0, split.n_users, batch_size):
            rows = slice(lo, lo + batch_size)
            hist = left_pad(seen[rows], maxlen)  # (b, L)
            scores = model.score(hist.to(device))  # (b, N+1)
            scores = scores.to("cpu", torch.promote_types(scores.dtype, torch.float32))
            exclude = csr.mask(lo, lo + batch_size)  # (b, N+1), column 0 True
            exclude[torch.arange(exclude.shape[0]), targets[rows]] = False  # as ranks_full: the target competes
            ranks.append(metrics.ranks_full(scores, targets[rows], exclude))
            top = scores.masked_fill(exclude, float("-inf")).topk(k, dim=1)  # (b, k)
            items.append(top.indices)
            values.append(top.values)
    finally:
        model.train(was_training)
    return torch.cat(items), torch.cat(values), torch.cat(ranks)
