"""Checks for the beyond-accuracy exercises (lesson 09, notebooks 24, 25, 26):
intra-list diversity, MMR re-ranking and cross-attention feature fusion.

The references are the course's own code, never the solutions:
``recattn_lessons.metrics.intra_list_diversity``,
``recattn_lessons.serving.rerank.mmr_select`` and
``recattn_lessons.models.item_encoder.cross_attention_fusion`` (each tested
against brute force in tests/test_metrics_beyond.py, tests/test_rerank.py and
tests/test_item_fusion.py). Beyond equal values on fixed cases, each check
tests a cause: permuting a list leaves its diversity alone; MMR with
``lam = 1`` is the relevance order and each pick depends on the items picked
before it; an item's fusion depends on its own real tokens only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recattn_lessons import metrics
from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import Case, CheckFailure, Exercise, Mistake, close, run_cases
from recattn_lessons.grading.exercises_attention import _randn
from recattn_lessons.models.item_encoder import cross_attention_fusion
from recattn_lessons.serving.rerank import mmr_select

__all__ = ["EXERCISES", "ild_reference", "mmr_reference", "fusion_reference"]


# --------------------------------------------------------------------------
# 24 intra-list diversity
# --------------------------------------------------------------------------
_ILD_SIG = "fn(top_items, item_features) -> (U,)"


def ild_reference(top_items: Tensor, item_features: Tensor) -> Tensor:
    """Per-user ILD (1 - Jaccard), in ``item_features``' dtype."""
    return metrics.intra_list_diversity(top_items, item_features, per_user=True).to(item_features.dtype)


def _ild(top, feats, *, dist="jaccard", pairs="upper", empty="same", union="ok"):
    """A learner's ILD with one switch per bug."""
    f = (feats[top] > 0).to(torch.float64)  # (U, k, F)
    inter = f @ f.transpose(1, 2)  # (U, k, k)
    size = f.sum(-1)
    if dist == "cosine":
        denom = (size[:, :, None] * size[:, None, :]).sqrt()
    elif union == "no_minus":
        denom = size[:, :, None] + size[:, None, :]
    else:
        denom = size[:, :, None] + size[:, None, :] - inter
    if empty == "nan":
        sim = inter / denom
    else:
        both_empty = torch.full_like(inter, 1.0 if empty == "same" else 0.0)  # J of two empty sets
        sim = torch.where(denom > 0, inter / denom.clamp_min(1e-12), both_empty)
    d = sim if dist == "similarity" else 1 - sim
    k = top.shape[1]
    if pairs == "all":  # the diagonal (distance 0) averaged in
        out = d.mean(dim=(1, 2))
    elif pairs == "neighbours":  # (a, a + 1) only: depends on the order of the list
        out = d.diagonal(offset=1, dim1=1, dim2=2).mean(-1)
    elif pairs == "twice":  # ordered pairs summed, divided by the unordered count
        out = (d.sum(dim=(1, 2)) - d.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1) / 2)
    else:
        upper = torch.triu(torch.ones(k, k, dtype=torch.bool), diagonal=1)
        out = d[:, upper].mean(dim=1)
    return out.to(feats.dtype)


_ILD_MISTAKES = (
    Mistake("similarity instead of distance", "ILD averages the *distance* 1 - J(A, B): "
            "a list of near-identical items must score low.", lambda t, f: _ild(t, f, dist="similarity")),
    Mistake("the diagonal counted as pairs", "Average over the k (k - 1) / 2 pairs a < b only: "
            "an item's distance to itself (0) is not a pair, and including it shrinks ILD by "
            "(k - 1) / k.", lambda t, f: _ild(t, f, pairs="all")),
    Mistake("each pair counted twice", "Summing the full k x k matrix counts (a, b) and (b, a): "
            "divide by k (k - 1), or keep a < b (torch.triu(..., diagonal=1)).",
            lambda t, f: _ild(t, f, pairs="twice")),
    Mistake("only neighbouring pairs compared", "ILD compares every pair a < b of the list, not "
            "just items a and a + 1: it is a property of the set shown, whatever its order.",
            lambda t, f: _ild(t, f, pairs="neighbours")),
    Mistake("NaN for two items without features", "Two empty sets give 0 / 0: "
            "the exercise defines J = 1 (distance 0) there; use torch.where(union > 0, ...).",
            lambda t, f: _ild(t, f, empty="nan")),
    Mistake("two featureless items counted as different", "The exercise defines two items "
            "without any feature as identical (J = 1, distance 0): nothing tells them apart.",
            lambda t, f: _ild(t, f, empty="different")),
    Mistake("union without the intersection subtracted", "|A ∪ B| = |A| + |B| - |A ∩ B|; "
            "|A| + |B| counts the shared features twice.", lambda t, f: _ild(t, f, union="no_minus")),
    Mistake("cosine instead of Jaccard", "Use Jaccard: |A ∩ B| / |A ∪ B|, not "
            "|A ∩ B| / sqrt(|A| |B|).", lambda t, f: _ild(t, f, dist="cosine")),
)


def _ild_cases() -> list[Case]:
    g = torch.Generator().manual_seed(24)
    feats = (torch.rand(31, 6, generator=g) < 0.4).to(torch.float64)
    feats[0] = 0
    feats[7] = 0  # items 7 and 8: no features at all
    feats[8] = 0
    f32 = feats.to(torch.float32)
    lists = torch.stack([torch.randperm(30, generator=g)[:5] + 1 for _ in range(6)])  # (6, 5)
    empty_pair = torch.tensor([[7, 8, 1, 2], [7, 3, 4, 5]])
    return [
        Case("6 users, k = 5, 30 items with 6 genres (float64)", (lists, feats)),
        Case("float32 features, 6 users, k = 5", (lists, f32)),
        Case("k = 2: one pair per list", (lists[:, :2].clone(), feats)),
        Case("one user, a list with the same item twice", (torch.tensor([[3, 3, 4]]), feats)),
        Case("two items without any feature in one list (and one with another)", (empty_pair, feats)),
        Case("features given as counts (2.0 for a doubled genre): a set is what is > 0",
             (lists, feats * 2)),
    ]


def _ild_properties(fn) -> None:
    """Shuffling a list's order changes nothing; one user's answer is its own."""
    g = torch.Generator().manual_seed(240)
    feats = (torch.rand(21, 5, generator=g) < 0.5).to(torch.float64)
    feats[0] = 0
    top = torch.stack([torch.randperm(20, generator=g)[:6] + 1 for _ in range(4)])
    base = fn(top.clone(), feats.clone())
    shuffled = fn(top[:, torch.randperm(6, generator=g)].clone(), feats.clone())
    if not close(shuffled, base):
        raise CheckFailure("Order: ILD is a property of the set of items shown, but shuffling each "
                           "list changed your answer. Compare every pair a < b, not neighbours.")
    if not close(fn(top[2:3].clone(), feats.clone()), base[2:3]):
        raise CheckFailure("Batch independence: user 3 alone gets another ILD than inside the batch: "
                           "nothing may mix users.")


def _check_ild(fn) -> str:
    run_cases(fn, _ild_cases(), ild_reference, _ILD_MISTAKES, ("ild",), _ILD_SIG)
    _ild_properties(fn)
    return ("Mean pairwise 1 - Jaccard over the pairs a < b of each list, with featureless items "
            "handled, in float32 and float64; the order of a list and the other users change nothing.")


# --------------------------------------------------------------------------
# 25 MMR re-ranking
# --------------------------------------------------------------------------
_MMR_SIG = "fn(relevance, similarity, k, lam) -> (k,) positions"


def mmr_reference(relevance: Tensor, similarity: Tensor, k: int, lam: float) -> Tensor:
    """The ``(k,)`` positions :func:`~recattn_lessons.serving.rerank.mmr_select` picks."""
    return mmr_select(relevance[None].double(), similarity[None].double(), k, lam)[0]


def _mmr(rel, sim, k, lam, *, agg="max", swap=False, update=True, exclude=True, self_sim=False,
         order="picked"):
    """A learner's MMR with one switch per bug."""
    rel, sim = rel.double(), sim.double()
    C = rel.shape[0]
    taken = torch.zeros(C, dtype=torch.bool)
    picks: list[int] = []
    for _ in range(k):
        against = picks if update else picks[:1]
        pen = torch.zeros(C, dtype=torch.float64)  # (C,)
        if against:
            s = sim[:, against]  # (C, |S|)
            pen = {"max": s.amax(1), "sum": s.sum(1), "mean": s.mean(1)}[agg]
        if self_sim:
            pen = torch.maximum(pen, sim.diagonal())
        a, b = (1 - lam, lam) if swap else (lam, 1 - lam)
        gain = a * rel - b * pen
        if exclude:
            gain = gain.masked_fill(taken, float("-inf"))
        best = int(gain.argmax())
        picks.append(best)
        taken[best] = True
    out = torch.tensor(picks, dtype=torch.long)
    return out.sort().values if order == "sorted" else out


_MMR_MISTAKES = (
    Mistake("an item picked twice", "Exclude the items already in the list from every later "
            "argmax (gain.masked_fill(taken, -inf)).", lambda *a: _mmr(*a, exclude=False)),
    Mistake("λ on the wrong term", "MMR = lam * relevance - (1 - lam) * max similarity: lam = 1 "
            "must give the relevance order.", lambda *a: _mmr(*a, swap=True)),
    Mistake("sum of similarities instead of the max", "The penalty is the similarity to the "
            "*closest* item already picked (a max over S), not a sum that grows with the list.",
            lambda *a: _mmr(*a, agg="sum")),
    Mistake("mean similarity instead of the max", "The penalty is max over S of sim(i, j): one "
            "near-duplicate already in the list is enough to push i down.",
            lambda *a: _mmr(*a, agg="mean")),
    Mistake("penalty not updated after each pick", "Recompute the penalty against every item "
            "picked so far, after each pick (greedy), not only against the first one.",
            lambda *a: _mmr(*a, update=False)),
    Mistake("the penalty never changes the order", "Your picks follow relevance alone, as if "
            "lam were 1. Penalise each candidate i by its largest similarity to the items "
            "already picked, S (not including i itself: sim(i, i) = 1 for every i would make "
            "every penalty 1).", lambda *a: _mmr(*a, self_sim=True)),
    Mistake("positions returned sorted, not in pick order", "Return the positions in the "
            "order MMR picks them: the first is the list's top slot.", lambda *a: _mmr(*a, order="sorted")),
)


def _sim_matrix(g: torch.Generator, C: int, F: int = 5) -> Tensor:
    f = (torch.rand(C, F, generator=g) < 0.4).to(torch.float64)
    inter = f @ f.T
    union = f.sum(1)[:, None] + f.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def _mmr_cases() -> list[Case]:
    g = torch.Generator().manual_seed(25)
    rel, sim = torch.rand(12, generator=g, dtype=torch.float64), _sim_matrix(g, 12)
    rel2, sim2 = torch.rand(30, generator=g, dtype=torch.float64), _sim_matrix(g, 30)
    return [
        Case("C = 12 candidates, k = 5, lam = 0.7", (rel, sim, 5, 0.7)),
        Case("lam = 0.3 (diversity first), C = 30, k = 10", (rel2, sim2, 10, 0.3)),
        Case("lam = 1: the relevance order", (rel, sim, 6, 1.0)),
        Case("lam = 0: only dissimilarity (ties go to the lower position)", (rel, sim, 4, 0.0)),
        Case("float32 inputs, k = C = 12", (rel.float(), sim.float(), 12, 0.5)),
        Case("k = 1", (rel2, sim2, 1, 0.6)),
    ]


def _mmr_properties(fn) -> None:
    """A near-duplicate of the top item drops when diversity matters and stays when it does not."""
    rel = torch.tensor([1.0, 0.95, 0.5, 0.4], dtype=torch.float64)
    sim = torch.eye(4, dtype=torch.float64)
    sim[0, 1] = sim[1, 0] = 1.0  # candidate 1 duplicates candidate 0
    got = fn(rel.clone(), sim.clone(), 3, 0.5)
    picks = [int(x) for x in got]
    if picks[:2] != [0, 2]:
        raise CheckFailure(f"Intervention: candidate 1 is a copy of candidate 0 (similarity 1) and "
                           f"lam = 0.5; MMR must pick 0, then 2 (0.5 * 0.5 > 0.5 * 0.95 - 0.5 * 1), "
                           f"but your picks start {picks[:2]}.")
    if [int(x) for x in fn(rel.clone(), sim.clone(), 3, 1.0)] != [0, 1, 2]:
        raise CheckFailure("With lam = 1 MMR is the relevance order, duplicates and all: "
                           "expected [0, 1, 2].")


def _check_mmr(fn) -> str:
    run_cases(fn, _mmr_cases(), mmr_reference, _MMR_MISTAKES, ("positions",), _MMR_SIG)
    _mmr_properties(fn)
    return ("Greedy MMR with the max-similarity penalty updated after every pick, lam = 0 and 1 at "
            "the ends, ties to the lower position; a near-duplicate is pushed down exactly when "
            "diversity is asked for.")


# --------------------------------------------------------------------------
# 26 cross-attention fusion of an id with its feature tokens
# --------------------------------------------------------------------------
_FUSE_SIG = "fn(id_emb, feature_emb, feature_mask, W_q, W_k, W_v) -> (fused, weights)"
_FUSE_NAMES = ("fused", "weights")


def fusion_reference(*args) -> tuple[Tensor, Tensor]:
    return cross_attention_fusion(*args)


def _fuse(x, F_, mask, Wq, Wk, Wv, *, scale="ok", residual=True, soft="ok", values="ok", axis="tokens"):
    q, k = x @ Wq, F_ @ Wk  # (N, D), (N, T, D)
    v = F_ if values == "raw" else F_ @ Wv
    s = (k @ q[:, :, None])[..., 0]  # (N, T)
    if scale == "ok":
        s = s / x.shape[-1] ** 0.5
    dim = 0 if axis == "items" else -1
    if soft == "ignored":
        w = torch.softmax(s, dim)
    elif soft == "after":
        w = torch.softmax(s, dim) * mask
    elif soft == "inverted":
        w = torch.softmax(s.masked_fill(mask, float("-inf")), dim).nan_to_num(0.0)
    elif soft == "nan":
        w = torch.softmax(s.masked_fill(~mask, float("-inf")), dim)
    elif soft == "zero":
        w = torch.softmax(s.masked_fill(~mask, 0.0), dim)
    elif soft == "big_negative":
        w = torch.softmax(s.masked_fill(~mask, -1e9), dim)
    else:
        w = torch.softmax(s.masked_fill(~mask, float("-inf")), dim).nan_to_num(0.0)
    att = (w[:, :, None] * v).sum(1)  # (N, D)
    return (x + att if residual else att), w


_FUSE_MISTAKES = (
    Mistake("missing scaling", "Divide q · k by sqrt(D) = sqrt(id_emb.shape[-1]) before the softmax.",
            lambda *a: _fuse(*a, scale="none")),
    Mistake("no residual: the id embedding is dropped", "fused = id_emb + attention output: "
            "without the id an item is only its features, and two films with the same genres "
            "and title words become the same item.", lambda *a: _fuse(*a, residual=False)),
    Mistake("values not projected", "The values are feature_emb @ W_v, not feature_emb itself.",
            lambda *a: _fuse(*a, values="raw")),
    Mistake("padding tokens not masked", "A padded token slot must get weight 0: fill its score "
            "with -inf before the softmax.", lambda *a: _fuse(*a, soft="ignored")),
    Mistake("mask applied after the softmax", "Mask before the softmax, so an item's weights over "
            "its real tokens sum to 1.", lambda *a: _fuse(*a, soft="after")),
    Mistake("mask with inverted polarity", "feature_mask is True at real tokens.",
            lambda *a: _fuse(*a, soft="inverted")),
    Mistake("NaN for an item without tokens", "An item with no real token gets zero weights "
            "(softmax over an all -inf row is NaN: torch.nan_to_num or a where), so fused = id_emb.",
            lambda *a: _fuse(*a, soft="nan")),
    Mistake(*M.ZERO_FILL, lambda *a: _fuse(*a, soft="zero")),
    Mistake(*M.BIG_NEGATIVE, lambda *a: _fuse(*a, soft="big_negative")),
    Mistake("softmax over the items instead of the tokens", "Each item attends over its own T "
            "tokens: the softmax runs over the last axis of the (N, T) scores.",
            lambda *a: _fuse(*a, axis="items")),
)


def _fuse_case(g, N, T, D, lengths, dtype=torch.float64, scale=1.0):
    r = lambda *s: _randn(g, *s, dtype=dtype)  # noqa: E731
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (N, T) real tokens first
    return (r(N, D) * scale, r(N, T, D) * scale, mask, r(D, D) / D ** 0.5, r(D, D) / D ** 0.5, r(D, D) / D ** 0.5)


def _fuse_cases() -> list[Case]:
    g = torch.Generator().manual_seed(26)
    return [
        Case("N = 4 items, T = 5 tokens, D = 8, token counts [5, 3, 1, 2]", _fuse_case(g, 4, 5, 8, [5, 3, 1, 2])),
        Case("an item without any token (counts [2, 0, 4])", _fuse_case(g, 3, 4, 6, [2, 0, 4])),
        Case("float32, N = 6, T = 7, D = 16", _fuse_case(g, 6, 7, 16, [7, 1, 3, 5, 2, 6], torch.float32)),
        Case("one item, one token", _fuse_case(g, 1, 1, 4, [1])),
        Case("large embeddings (x 10): a stable softmax", _fuse_case(g, 3, 4, 8, [4, 2, 3], scale=10.0)),
    ]


def _fuse_properties(fn) -> None:
    """Changing item 0's padded slots or another item's tokens leaves item 0 alone."""
    g = torch.Generator().manual_seed(260)
    x, F_, mask, Wq, Wk, Wv = _fuse_case(g, 3, 5, 8, [2, 5, 3])
    fused, w = fn(x.clone(), F_.clone(), mask.clone(), Wq.clone(), Wk.clone(), Wv.clone())
    F2 = F_.clone()
    F2[0, 2:] = _randn(g, 3, 8) * 5  # item 0's padded slots
    F2[1] = _randn(g, 5, 8)  # another item's tokens
    fused2, w2 = fn(x.clone(), F2, mask.clone(), Wq.clone(), Wk.clone(), Wv.clone())
    if not (close(fused2[0], fused[0]) and close(w2[0], w[0])):
        raise CheckFailure("Intervention: changing item 0's padded token slots and item 1's tokens "
                           "changed item 0's fusion. Each item attends over its own real tokens only.")


def _check_fusion(fn) -> str:
    run_cases(fn, _fuse_cases(), fusion_reference, _FUSE_MISTAKES, _FUSE_NAMES, _FUSE_SIG)
    _fuse_properties(fn)
    return ("Each id attends over its own real feature tokens (scaled, masked, stable), fused by a "
            "residual sum; an item without tokens keeps its id embedding; padding and other items "
            "change nothing.")


EXERCISES = (
    Exercise("intra_list_diversity", "24_intra_list_diversity", "Intra-list diversity (1 - Jaccard)",
             _ILD_SIG, _check_ild, "easy", 15),
    Exercise("mmr_rerank", "25_mmr_rerank", "MMR re-ranking", _MMR_SIG, _check_mmr, "medium", 20),
    Exercise("cross_attention_fusion", "26_cross_attention_fusion",
             "Cross-attention from an item's id to its feature tokens", _FUSE_SIG, _check_fusion,
             "medium", 25),
)
