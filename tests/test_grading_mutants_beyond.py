"""Mutation test of the grader for the beyond-accuracy exercises (24, 25, 26; lesson 09):
wrong programs fail with a message naming the mistake, correct-but-unusual programs pass
(loops over users and pairs, sets, einsum, a Python greedy loop, -1e9 fills, float64
inside), also under ``torch.no_grad()``. The graders' references are checked here against
brute force. See tests/test_grading_mutants.py.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mutant_catalogue import Catalogue, catalogue_tests
from recattn_lessons.grading import EXERCISES, exercises_beyond as B

CAT = Catalogue()
wrong, right = CAT.add_wrong, CAT.add_right


def counts() -> dict[str, tuple[int, int]]:
    """Exercise id -> (wrong programs, correct programs) tried here."""
    return CAT.counts([e.id for e in B.EXERCISES])


# --------------------------------------------------------------------------
# 24 intra-list diversity
# --------------------------------------------------------------------------
def ild(*, dist="jaccard", diag=False, empty=0.0, union="ok", out="per_user", binarise=True):
    """A learner's vectorised ILD with one switch per bug."""
    def fn(top_items, item_features):
        f = item_features[top_items]  # (U, k, F)
        if binarise:
            f = (f > 0).to(item_features.dtype)
        inter = torch.einsum("ukf,ujf->ukj", f, f)
        size = f.sum(-1)
        if dist == "cosine":
            denom = torch.sqrt(size[:, :, None] * size[:, None, :])
        elif union == "sum":
            denom = size[:, :, None] + size[:, None, :]
        else:
            denom = size[:, :, None] + size[:, None, :] - inter
        sim = inter / denom if empty is None else torch.where(denom > 0, inter / denom.clamp(min=1e-9),
                                                              torch.full_like(inter, 1.0 - empty))
        d = sim if dist == "similarity" else 1 - sim
        k = top_items.shape[1]
        if diag:
            res = d.sum((1, 2)) / (k * k)
        else:
            res = (d.sum((1, 2)) - d.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1))
        if out == "mean":
            return res.mean()
        if out == "neighbours":
            return (1 - (inter / denom.clamp(min=1e-9)).diagonal(offset=1, dim1=1, dim2=2)).mean(-1)
        return res
    return fn


E = "intra_list_diversity"
for kw, words in [({"dist": "similarity"}, "similarity instead of distance"),
                  ({"diag": True}, "diagonal counted"), ({"empty": None}, "NaN"),
                  ({"empty": 1.0}, "featureless items counted as different"),
                  ({"union": "sum"}, "intersection subtracted"), ({"dist": "cosine"}, "cosine"),
                  ({"out": "mean"}, "shape"), ({"binarise": False}, "wrong answer")]:
    wrong(E, words)(ild(**kw))


@wrong(E, "each pair counted twice")
def _ild_twice(top_items, item_features):
    f = (item_features[top_items] > 0).double()
    inter = f @ f.transpose(1, 2)
    union = f.sum(-1)[:, :, None] + f.sum(-1)[:, None, :] - inter
    d = 1 - torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
    k = top_items.shape[1]
    return ((d.sum((1, 2))) / (k * (k - 1) / 2)).to(item_features.dtype)


@wrong(E, "neighbouring pairs")
def _ild_neighbours(top_items, item_features):  # only consecutive pairs: depends on the order
    f = (item_features[top_items] > 0).double()
    a, b = f[:, :-1], f[:, 1:]
    inter, union = (a * b).sum(-1), ((a + b) > 0).double().sum(-1)
    return (1 - torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))).mean(-1).to(item_features.dtype)


@right(E)
def _ild_sets(top_items, item_features):  # Python sets, pair by pair
    out = []
    for row in top_items.tolist():
        sets = [set((item_features[i] > 0).nonzero().flatten().tolist()) for i in row]
        d = [0.0 if not (a | b) else 1 - len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2)]
        out.append(sum(d) / len(d))
    return torch.tensor(out, dtype=item_features.dtype)


right(E)(ild())


@right(E)
def _ild_bool_float64(top_items, item_features):  # logical ops, float64 inside
    f = item_features[top_items] > 0  # (U, k, F) bool
    inter = (f[:, :, None] & f[:, None, :]).sum(-1).double()
    union = (f[:, :, None] | f[:, None, :]).sum(-1).double()
    jac = torch.where(union == 0, torch.ones_like(union), inter / union.clamp(min=1))
    k = top_items.shape[1]
    iu = torch.triu_indices(k, k, offset=1)
    return (1 - jac[:, iu[0], iu[1]]).mean(-1).to(item_features.dtype)


def test_ild_reference_is_brute_force():
    for case in B._ild_cases():
        top, feats = case.args
        want = _ild_sets(top, feats)
        assert torch.allclose(B.ild_reference(top, feats).double(), want.double())


# --------------------------------------------------------------------------
# 25 MMR re-ranking
# --------------------------------------------------------------------------
def mmr(*, penalty="max", weights="ok", exclude=True, greedy=True, sort=False, self_in=False, tie="first"):
    """A learner's MMR as a Python loop, one switch per bug."""
    def fn(relevance, similarity, k, lam):
        C = len(relevance)
        picked: list[int] = []
        for _ in range(k):
            best, best_gain = None, -math.inf
            for i in range(C):
                if exclude and i in picked:
                    continue
                against = (picked if greedy else picked[:1]) + ([i] if self_in else [])
                sims = [float(similarity[i, j]) for j in against]
                pen = 0.0 if not sims else {"max": max, "sum": sum, "mean": lambda s: sum(s) / len(s)}[penalty](sims)
                a, b = (lam, 1 - lam) if weights == "ok" else (1 - lam, lam)
                gain = a * float(relevance[i]) - b * pen
                if gain > best_gain or (tie == "last" and gain == best_gain):
                    best, best_gain = i, gain
            picked.append(best)
        return torch.tensor(sorted(picked) if sort else picked, dtype=torch.long)
    return fn


E = "mmr_rerank"
for kw, words in [({"exclude": False}, "picked twice"), ({"weights": "swapped"}, "wrong term"),
                  ({"penalty": "sum"}, "sum of similarities"), ({"penalty": "mean"}, "mean similarity"),
                  ({"greedy": False}, "not updated"), ({"self_in": True}, "never changes the order"),
                  ({"sort": True}, "pick order"), ({"tie": "last"}, "wrong answer")]:
    wrong(E, words)(mmr(**kw))


@wrong(E, "never changes the order")
def _mmr_relevance_only(relevance, similarity, k, lam):  # never diversifies
    return relevance.argsort(descending=True, stable=True)[:k]


right(E)(mmr())


@right(E)
def _mmr_vectorised(relevance, similarity, k, lam):
    rel, sim = relevance.double(), similarity.double()
    taken = torch.zeros(len(rel), dtype=torch.bool)
    closest = torch.zeros(len(rel), dtype=torch.float64)
    out = []
    for _ in range(k):
        gain = torch.where(taken, torch.tensor(-1e9, dtype=torch.float64), lam * rel - (1 - lam) * closest)
        i = int(torch.argmax(gain))
        out.append(i)
        taken[i] = True
        closest = torch.maximum(closest, sim[:, i])
    return torch.tensor(out)


@right(E)
def _mmr_remaining_list(relevance, similarity, k, lam):  # pops from a list of the remaining positions
    remaining, picked = list(range(len(relevance))), []
    while len(picked) < k:
        def gain(i):
            pen = max((similarity[i, j].item() for j in picked), default=0.0)
            return lam * relevance[i].item() - (1 - lam) * pen
        i = max(remaining, key=gain)  # max() keeps the first maximum
        remaining.remove(i)
        picked.append(i)
    return torch.tensor(picked, dtype=torch.int64)


def test_mmr_reference_is_brute_force():
    for case in B._mmr_cases():
        assert B.mmr_reference(*case.args).tolist() == mmr()(*case.args).tolist()


# --------------------------------------------------------------------------
# 26 cross-attention fusion
# --------------------------------------------------------------------------
def fuse(*, scale=True, residual=True, mask="before", project_v=True, fill=float("-inf"), axis=-1):
    """A learner's fusion with one switch per bug."""
    def fn(id_emb, feature_emb, feature_mask, W_q, W_k, W_v):
        q = id_emb @ W_q  # (N, D)
        k = feature_emb @ W_k  # (N, T, D)
        v = feature_emb @ W_v if project_v else feature_emb
        s = torch.einsum("nd,ntd->nt", q, k)
        if scale:
            s = s / math.sqrt(q.shape[-1])
        if mask == "before":
            s = s.masked_fill(~feature_mask, fill)
        elif mask == "inverted":
            s = s.masked_fill(feature_mask, fill)
        w = torch.softmax(s, dim=axis)
        if fill == float("-inf"):
            w = torch.nan_to_num(w, nan=0.0)
        if mask == "after":
            w = w * feature_mask
        att = torch.einsum("nt,ntd->nd", w, v)
        return (id_emb + att if residual else att), w
    return fn


E = "cross_attention_fusion"
for kw, words in [({"scale": False}, "missing scaling"), ({"residual": False}, "no residual"),
                  ({"project_v": False}, "values not projected"), ({"mask": "none"}, "not masked"),
                  ({"mask": "after"}, "after the softmax"), ({"mask": "inverted"}, "inverted"),
                  ({"fill": 0.0}, "instead of -inf"), ({"axis": 0}, "over the items"),
                  ({"fill": -1e9}, "uniform weights on a fully-masked row")]:
    wrong(E, words)(fuse(**kw))


@wrong(E, "NaN for an item without tokens")
def _fuse_nan(id_emb, feature_emb, feature_mask, W_q, W_k, W_v):
    s = torch.einsum("nd,ntd->nt", id_emb @ W_q, feature_emb @ W_k) / math.sqrt(id_emb.shape[-1])
    w = torch.softmax(s.masked_fill(~feature_mask, float("-inf")), -1)
    return id_emb + torch.einsum("nt,ntd->nd", w, feature_emb @ W_v), w


@wrong(E, "wrong answer")
def _fuse_mean_over_batch(id_emb, feature_emb, feature_mask, W_q, W_k, W_v):
    """Keys from the mean over items of the features: mixes items (and fails the values)."""
    k = (feature_emb.mean(0, keepdim=True) + 0 * feature_emb) @ W_k
    s = torch.einsum("nd,ntd->nt", id_emb @ W_q, k) / math.sqrt(id_emb.shape[-1])
    w = torch.softmax(s.masked_fill(~feature_mask, float("-inf")), -1).nan_to_num(0.0)
    return id_emb + torch.einsum("nt,ntd->nd", w, feature_emb @ W_v), w


right(E)(fuse())


@right(E)
def _fuse_where(id_emb, feature_emb, feature_mask, W_q, W_k, W_v):  # -1e9 fill, zeros by torch.where
    s = (feature_emb @ W_k) @ (id_emb @ W_q)[:, :, None] / id_emb.shape[-1] ** 0.5  # (N, T, 1)
    w = torch.softmax(s[..., 0].masked_fill(~feature_mask, -1e9), -1)
    w = torch.where(feature_mask.any(-1, keepdim=True), w, torch.zeros_like(w))
    return id_emb + (w[:, :, None] * (feature_emb @ W_v)).sum(1), w


@right(E)
def _fuse_loop(id_emb, feature_emb, feature_mask, W_q, W_k, W_v):  # item by item, float64 inside
    fused, weights = id_emb.clone(), torch.zeros(feature_mask.shape, dtype=id_emb.dtype)
    for i in range(id_emb.shape[0]):
        real = feature_mask[i].nonzero().flatten()
        if len(real) == 0:
            continue
        q = id_emb[i].double() @ W_q.double()
        k, v = feature_emb[i, real].double() @ W_k.double(), feature_emb[i, real].double() @ W_v.double()
        w = torch.softmax(k @ q / math.sqrt(len(q)), 0)
        weights[i, real] = w.to(id_emb.dtype)
        fused[i] = (id_emb[i].double() + w @ v).to(id_emb.dtype)
    return fused, weights


def test_fusion_reference_agrees_with_a_loop():
    for case in B._fuse_cases():
        for a, b in zip(B.fusion_reference(*case.args), _fuse_loop(*case.args)):
            assert torch.allclose(a.double(), b.double(), atol=1e-5)


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


def test_every_beyond_exercise_has_enough_programs():
    few = {e: c for e, c in counts().items() if c[0] < 6 or c[1] < 3}
    assert set(counts()) == {"intra_list_diversity", "mmr_rerank", "cross_attention_fusion"}
    assert set(counts()) <= set(EXERCISES) and not few, few


(test_wrong_program_fails_and_names_the_mistake, test_correct_program_passes,
 test_correct_program_passes_under_no_grad) = catalogue_tests(CAT)
