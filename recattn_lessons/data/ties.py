"""How the order of same-second ratings can leak (issue 12, lesson 05).

MovieLens stores a user's ratings that share a timestamp in ascending
movie id. If a split keeps that file order, the last item of a tie group
is always its highest id, so "the next movie has a higher id than the last
one" is a real, but meaningless, signal. :func:`tie_stats` counts where the
order matters; :class:`PreferHigherIds` is the cheapest model that exploits
it, and :func:`tie_leak` evaluates it on the file-order split and on the
random-tie split (``tie_seed``), which is what the course uses.

    >>> from recattn_lessons.data.ties import tie_leak
    >>> tie_leak()          # doctest: +SKIP
    {'file order': {'popularity': ..., 'prefer higher ids': ...}, 'tie_seed=0': {...}}
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.base import check_history
from ..models.baselines import Popularity, PopularityConfig
from .movielens import Interactions
from .splits import leave_one_out

__all__ = ["tie_stats", "PreferHigherIds", "tie_leak"]


def tie_stats(data: Interactions) -> dict[str, int]:
    """Counts of the tie structure of ``data`` (needs ``data.timestamps``).

    - ``n_tied`` / ``n_tie_groups``: ratings sharing a (user, second), and
      the number of such groups;
    - ``test_tied_with_valid``: users whose test item shares its second with
      their validation item; ``test_higher_id_than_valid``: how many of
      those have the higher item id (all of them in file order);
    - ``train_tied_transitions`` / ``train_tied_ascending``: training
      transitions ``s_t -> s_{t+1}`` inside a tie group, and how many go to
      a higher id (all in file order, about half with random ties).
    """
    if data.timestamps is None:
        raise ValueError("these Interactions carry no timestamps; build them with interactions_from_frame")
    tied_test = higher_test = tied_train = up_train = 0
    for s, t in zip(data.sequences, data.timestamps):
        if len(s) < 3:
            continue
        if t[-1] == t[-2]:
            tied_test += 1
            higher_test += int(s[-1] > s[-2])
        st, tt = s[:-2], t[:-2]  # the training part
        same = tt[1:] == tt[:-1]
        tied_train += int(same.sum())
        up_train += int((st[1:] > st[:-1])[same].sum())
    return {"n_tied": data.n_tied, "n_tie_groups": data.n_tie_groups,
            "test_tied_with_valid": tied_test, "test_higher_id_than_valid": higher_test,
            "train_tied_transitions": tied_train, "train_tied_ascending": up_train}


class PreferHigherIds(Popularity):
    """Popularity, but every item with a higher id than the history's last
    item ranks above every other item (popularity orders each group).

    It knows nothing about movies; it only reads the file's tie order.
    """

    def __init__(self, n_items: int) -> None:
        super().__init__(PopularityConfig(n_items))

    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        check_history(history, self.n_items, candidates)
        last = history[:, -1:]  # (B, 1) most recent item (left-padded histories)
        ids = torch.arange(self.n_items + 1, device=history.device)  # (N+1,)
        bonus = (ids[None, :] > last).float() * (self.counts.max() + 1.0)  # (B, N+1)
        scores = self.counts[None, :] + bonus  # (B, N+1)
        return scores if candidates is None else scores.gather(1, candidates)


def tie_leak(tie_seeds=(None, 0), stage: str = "test", k: int = 10) -> dict[str, dict[str, float]]:
    """Full-ranking NDCG@``k`` of popularity and :class:`PreferHigherIds`
    on MovieLens split with each tie order (``None`` = the file's).

    Returns ``{"file order" | "tie_seed=S": {"popularity", "prefer higher ids"}}``.
    """
    from ..train.evaluate import eval_negatives, evaluate  # late: train imports data
    from .movielens import load_movielens

    out = {}
    for seed in tie_seeds:
        split = leave_one_out(load_movielens(tie_seed=seed))
        negs = eval_negatives(split, stage, seed=0)
        row = {}
        for name, model in (("popularity", Popularity(PopularityConfig(split.n_items))),
                            ("prefer higher ids", PreferHigherIds(split.n_items))):
            model.fit_counts(split.train)
            row[name] = evaluate(model, split, stage, maxlen=1, negatives=negs, k=k)["full"][f"ndcg@{k}"]
        out["file order" if seed is None else f"tie_seed={seed}"] = row
    return out
