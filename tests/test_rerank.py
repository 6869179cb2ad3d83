"""MMR and calibrated re-ranking (lesson 09) against brute-force greedy loops."""

from __future__ import annotations

import math

import pytest
import torch

from recattn_lessons import metrics
from recattn_lessons.serving.rerank import calibrated_rerank, mmr_rerank

N_ITEMS, G = 40, 5


@pytest.fixture(scope="module")
def case():
    g = torch.Generator().manual_seed(3)
    feats = (torch.rand(N_ITEMS + 1, G, generator=g) < 0.4).float()
    feats[0] = 0
    items = torch.stack([torch.randperm(N_ITEMS, generator=g)[:12] + 1 for _ in range(9)])  # (9, 12)
    scores = torch.randn(9, 12, generator=g)
    hists = [torch.randint(1, N_ITEMS + 1, (6,), generator=g) for _ in range(9)]
    return feats, items, scores, hists


def jac(a, b, feats):
    A, B = set(feats[a].nonzero().flatten().tolist()), set(feats[b].nonzero().flatten().tolist())
    return 1.0 if not (A | B) else len(A & B) / len(A | B)


def scaled(row):
    lo, hi = min(row), max(row)
    return [(s - lo) / (hi - lo) for s in row]


def brute_mmr(items, scores, feats, k, lam):
    out = []
    for its, sc in zip(items.tolist(), scores.tolist()):
        rel, chosen = scaled(sc), []
        for _ in range(k):
            best, best_gain = None, -math.inf
            for c in range(len(its)):
                if c in chosen:
                    continue
                pen = max((jac(its[c], its[j], feats) for j in chosen), default=0.0)
                gain = lam * rel[c] - (1 - lam) * pen
                if gain > best_gain + 1e-9:
                    best, best_gain = c, gain
            chosen.append(best)
        out.append([its[c] for c in chosen])
    return out


def dist(ids, feats):
    p = [0.0] * feats.shape[1]
    for i in ids:
        gs = feats[i].nonzero().flatten().tolist()
        for j in gs:
            p[j] += 1 / len(gs)
    return p


def brute_calibrated(items, scores, hists, feats, k, lam, alpha=0.01):
    out = []
    for its, sc, h in zip(items.tolist(), scores.tolist(), hists):
        rel, chosen = scaled(sc), []
        p = dist(h.tolist(), feats)
        p = [x / sum(p) for x in p]
        for n in range(1, k + 1):
            best, best_gain = None, -math.inf
            for c in range(len(its)):
                if c in chosen:
                    continue
                q = [x / n for x in dist([its[j] for j in chosen + [c]], feats)]
                kl = sum(pg * math.log(pg / ((1 - alpha) * qg + alpha * pg)) for pg, qg in zip(p, q) if pg > 0)
                gain = (1 - lam) * sum(rel[j] for j in chosen + [c]) - lam * kl
                if gain > best_gain + 1e-9:
                    best, best_gain = c, gain
            chosen.append(best)
        out.append([its[c] for c in chosen])
    return out


@pytest.mark.parametrize("lam", [1.0, 0.8, 0.5, 0.2, 0.0])
def test_mmr_matches_brute_force(case, lam):
    feats, items, scores, _ = case
    assert mmr_rerank(items, scores, feats, k=6, lam=lam).tolist() == brute_mmr(items, scores, feats, 6, lam)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_calibrated_matches_brute_force(case, lam):
    feats, items, scores, hists = case
    got = calibrated_rerank(items, scores, hists, feats, k=5, lam=lam)
    assert got.tolist() == brute_calibrated(items, scores, hists, feats, 5, lam)


def test_the_end_points_keep_the_model_order_and_trade_as_promised(case):
    feats, items, scores, hists = case
    order = items.gather(1, scores.argsort(dim=1, descending=True))[:, :6]
    assert torch.equal(mmr_rerank(items, scores, feats, 6, lam=1.0), order)
    assert torch.equal(calibrated_rerank(items, scores, hists, feats, 6, lam=0.0), order)
    assert metrics.intra_list_diversity(mmr_rerank(items, scores, feats, 6, lam=0.3), feats) > \
        metrics.intra_list_diversity(order, feats)
    assert metrics.genre_calibration(calibrated_rerank(items, scores, hists, feats, 6, lam=0.9), hists, feats) < \
        metrics.genre_calibration(order, hists, feats)


def test_rerank_bad_input(case):
    feats, items, scores, hists = case
    with pytest.raises(ValueError, match="k must lie"):
        mmr_rerank(items, scores, feats, k=13)
    with pytest.raises(ValueError, match="lam"):
        mmr_rerank(items, scores, feats, lam=1.5)
    with pytest.raises(ValueError, match=r"\(U, C\)"):
        mmr_rerank(items, scores[:, :5], feats)
    with pytest.raises(ValueError, match="inf or NaN"):
        mmr_rerank(items, scores.masked_fill(scores > 1, float("-inf")), feats)
    with pytest.raises(ValueError, match="ids 1.."):
        calibrated_rerank(items * 0, scores, hists, feats)
    with pytest.raises(ValueError, match="histories has 2"):
        calibrated_rerank(items, scores, hists[:2], feats)


def test_relevance_scales_each_row_to_0_1_and_a_constant_row_to_ones():
    from recattn_lessons.serving.rerank import relevance
    got = relevance(torch.tensor([[2.0, 4.0, 3.0], [-5.0, -1.0, -3.0], [7.0, 7.0, 7.0], [0.1, 0.3, 0.2]]))
    want = torch.tensor([[0.0, 1.0, 0.5], [0.0, 1.0, 0.5], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5]])
    assert torch.allclose(got, want)  # the last row spans 0.2 < 1: still scaled to [0, 1]


def test_more_bad_input_is_named(case):
    feats, items, scores, hists = case
    assert mmr_rerank(items, scores, feats, k=1).shape == (9, 1)  # k = 1 and k = C are allowed
    assert mmr_rerank(items, scores, feats, k=12).shape == (9, 12)
    assert mmr_rerank(items, scores, feats).shape == calibrated_rerank(items, scores, hists, feats).shape == (9, 10)
    with pytest.raises(ValueError, match=r"^scores hold inf or NaN: pass the model's finite scores of real candidates$"):
        mmr_rerank(items, scores.masked_fill(scores > 1, float("nan")), feats)
    with pytest.raises(ValueError, match=r"ids 1\.\.40 and item_features an \(n_items \+ 1, F\) matrix"):
        mmr_rerank(items.clamp(max=40) + 1, scores, feats)  # id 41 > N
    with pytest.raises(ValueError, match="ids 1"):
        mmr_rerank(items, scores, feats[:, 0])  # 1-D features
    with pytest.raises(ValueError, match="lam"):
        calibrated_rerank(items, scores, hists, feats, lam=1.5)
    with pytest.raises(ValueError, match="histories has 2 users but items has 9 rows"):
        calibrated_rerank(items, scores, hists[:2], feats)
