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
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import metrics
from ..data.splits import Split, histories, left_pad

__all__ = ["eval_negatives", "evaluate", "evaluate_ranks"]


def _full_histories(split: Split, stage: str) -> Tensor:
    seen = split.seen(stage)
    return left_pad(seen, max(1, max(len(s) for s in seen)))  # (U, longest)


def eval_negatives(split: Split, stage: str, seed: int, n: int = 100) -> Tensor:
    """``(U, n)`` seeded negatives for the sampled protocol of ``stage``."""
    g = torch.Generator().manual_seed(10_007 * seed + (1 if stage == "valid" else 2))
    return metrics.sample_negatives(_full_histories(split, stage), split.n_items, n=n,
                                    generator=g, targets=split.targets(stage))


@torch.no_grad()
def evaluate_ranks(model, split: Split, stage: str, maxlen: int, negatives: Tensor,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   progress: bool = False) -> dict[str, Tensor]:
    """``{"full": (U,), "sampled100": (U,)}`` 0-based ranks, in fp32, eval mode."""
    was_training = model.training
    model.eval()
    hist = histories(split, stage, maxlen)  # (U, L)
    full_hist = _full_histories(split, stage)  # (U, longest) for exclusion
    targets = split.targets(stage)
    full, sampled = [], []
    try:
        for lo in tqdm(range(0, split.n_users, batch_size), desc=f"evaluate {stage}",
                       leave=False, disable=not progress, mininterval=1.0):
            rows = slice(lo, lo + batch_size)
            scores = model.score(hist[rows].to(device)).float().cpu()  # (b, N+1)
            exclude = metrics.seen_mask(full_hist[rows], split.n_items)  # (b, N+1)
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
