"""Train and rank the three readings of a 1-star rating on the same candidates (lesson 09).

:func:`run_variant` builds the variant's data
(:func:`recattn_lessons.data.feedback.feedback_variant`), trains it with the course's loop
(:func:`recattn_lessons.train.run`: same epochs, early stopping on validation NDCG@10), and
then ranks validation and test once more with :func:`evaluate_same_candidates`:

- every variant reads its own history (liked items only, all items, or items with the
  dislike flag),
- but the candidates are the same for all three: every item except the padding and the
  items the user rated before the target, liked or disliked. The loop's own numbers
  exclude only the variant's history, so in ``"dropped"`` (and ``"dislike"``, whose history
  holds flag ids) a disliked movie competes again, while ``"positive"`` excludes it.

Variants: ``"positive"`` trains ``sasrec`` on every interaction (today's behaviour: a
disliked movie is a training target like any other); ``"dropped"`` trains ``sasrec`` on the
liked ones; ``"dislike"`` trains ``sasrec-dislike`` (:mod:`recattn_lessons.models.feedback`)
on the liked targets, with the dislikes in its input.
"""

from __future__ import annotations

import torch

from .. import metrics
from ..data.feedback import VARIANTS, decode_dislikes, feedback_variant
from ..data.movielens import Interactions
from ..data.splits import Split, leave_one_out, left_pad
from .config import TrainConfig
from .loop import load_dataset, resolve_device, run

__all__ = ["MODEL_OF", "run_variant", "evaluate_same_candidates"]

MODEL_OF = {"positive": "sasrec", "dropped": "sasrec", "dislike": "sasrec-dislike"}


@torch.no_grad()
def evaluate_same_candidates(model, split: Split, reference: Split, stage: str, maxlen: int,
                             batch_size: int = 128, device: str | torch.device = "cpu",
                             k: int = 10) -> dict:
    """Full-ranking ``{"hr@10", "ndcg@10", "mrr"}`` of ``model`` reading ``split``'s histories,
    with the candidates of ``reference`` (the ``"positive"`` split: every rated item excluded).

    Scores are kept for the real items ``0..N`` only (``N = reference.n_items``), so a
    ``sasrec-dislike`` model's flag columns are cut off.
    """
    same = (split.n_users == reference.n_users
            and torch.equal(split.targets(stage), reference.targets(stage)))
    if not same:
        raise ValueError(f"split and reference must hold the same users and {stage} targets; build "
                         "both with feedback_variant from the same data and threshold")
    n = reference.n_items
    inputs = split.seen(stage)  # what the model reads, ids up to 2N for "dislike"
    csr = metrics.CSRHistory.from_sequences(
        [decode_dislikes(s, n)[0] for s in reference.seen(stage)], n)  # every rated item
    targets = reference.targets(stage)
    was_training = model.training
    model.eval()
    ranks = []
    try:
        for lo in range(0, reference.n_users, batch_size):
            rows = slice(lo, lo + batch_size)
            scores = model.score(left_pad(inputs[rows], maxlen).to(device))[:, :n + 1]  # (b, N+1)
            scores = scores.to("cpu", torch.promote_types(scores.dtype, torch.float32))
            ranks.append(metrics.ranks_full(scores, targets[rows], csr.mask(lo, lo + batch_size)))
    finally:
        model.train(was_training)
    return metrics.summarize(torch.cat(ranks), k)


def run_variant(cfg: TrainConfig, variant: str, data: Interactions | None = None,
                threshold: float = 2.0) -> dict:
    """Train ``variant`` with ``cfg`` (its ``model`` is replaced by :data:`MODEL_OF`) and
    return ``{"variant", "threshold", "valid", "test", "loop", "data"}``: same-candidate
    full-ranking metrics, the loop's own ``metrics.json`` and what the data hold."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    data = load_dataset(cfg.dataset, cfg.tie_seed) if data is None else data
    cfg = cfg.replace(model=MODEL_OF[variant])
    reference = leave_one_out(feedback_variant(data, "positive", threshold))
    vdata = feedback_variant(data, variant, threshold)
    result = run(cfg, vdata)
    ev = dict(maxlen=cfg.maxlen, batch_size=cfg.eval_batch_size, device=resolve_device(cfg.device))
    out = {"variant": variant, "threshold": threshold,
           **{s: evaluate_same_candidates(result.model, result.split, reference, s, **ev)
              for s in ("valid", "test")},
           "loop": result.metrics, "data": _describe(result.split, vdata, data.n_items, threshold)}
    return out


def _describe(split: Split, vdata: Interactions, n: int, threshold: float) -> dict:
    """Counts that say what the variant trained on."""
    flat = torch.cat(split.train)  # (S,) training sequences, ids up to 2N in "dislike"
    stars = torch.cat([r[:-2] for r in vdata.ratings])  # (S,) their ratings
    return {"n_users": split.n_users, "n_train_items": int(flat.numel()),
            "n_train_disliked": int((stars <= threshold).sum()),
            "n_flagged": int(decode_dislikes(flat, n)[1].sum())}
