"""Paired bootstrap confidence intervals over users (issue 12)."""

import pytest
import torch

from recattn_lessons.metrics import bootstrap_ci, paired_bootstrap, per_user, summarize


def ranks(seed, U=300, hi=40):
    return torch.randint(0, hi, (U,), generator=torch.Generator().manual_seed(seed))


def test_per_user_values_average_to_the_summary():
    r = ranks(0)
    pu, s = per_user(r), summarize(r)
    for m in s:
        assert pu[m].mean().item() == pytest.approx(s[m])


def test_interval_matches_a_loop_over_the_same_redraws():
    r = ranks(1, U=50)
    out = bootstrap_ci(r, n_boot=200, seed=3)
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 50, (200, 50), generator=g)  # the same draws, one redraw per row
    vals = per_user(r)["ndcg@10"]
    means = torch.stack([vals[i].mean() for i in idx])
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=means.dtype))
    assert out["ndcg@10"]["lo"] == pytest.approx(float(lo)) and out["ndcg@10"]["hi"] == pytest.approx(float(hi))
    assert out["ndcg@10"]["lo"] <= out["ndcg@10"]["mean"] <= out["ndcg@10"]["hi"]


def test_seeded_and_shrinks_with_more_users():
    small, big = bootstrap_ci(ranks(2, U=100)), bootstrap_ci(ranks(2, U=10_000))
    assert bootstrap_ci(ranks(2, U=100)) == small  # seeded: identical
    width = lambda c: c["hr@10"]["hi"] - c["hr@10"]["lo"]  # noqa: E731
    assert width(big) < width(small) / 5  # ~ 1 / sqrt(U): 10x narrower


def test_paired_difference_is_narrower_than_unpaired_and_signed():
    a = ranks(4, U=400)
    b = (a + (torch.arange(400) % 3 == 0).long() * 5).clamp(max=39)  # b is a, slightly worse
    d = paired_bootstrap(a, b)["ndcg@10"]
    assert d["diff"] > 0 and d["lo"] > 0 and d["p_not_better"] < 0.025  # resolved
    ca, cb = bootstrap_ci(a)["ndcg@10"], bootstrap_ci(b)["ndcg@10"]
    assert d["hi"] - d["lo"] < (ca["hi"] - ca["lo"]) / 2  # pairing removes the user-to-user spread
    same = paired_bootstrap(a, a)["mrr"]
    assert same["diff"] == same["lo"] == same["hi"] == 0.0


def test_errors_are_named():
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap(ranks(0, U=5), ranks(0, U=6))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(ranks(0), n_boot=1)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(ranks(0), level=1.5)
    with pytest.raises(ValueError, match="seed"):
        bootstrap_ci(ranks(0), seed=None)


def test_paired_bootstrap_values_agrees_with_the_rank_version_and_brute_force():
    from recattn_lessons.metrics import paired_bootstrap_values, per_user
    g = torch.Generator().manual_seed(5)
    ra, rb = torch.randint(0, 40, (300,), generator=g), torch.randint(0, 60, (300,), generator=g)
    by_ranks = paired_bootstrap(ra, rb, n_boot=400, seed=3)["ndcg@10"]
    by_values = paired_bootstrap_values(per_user(ra)["ndcg@10"], per_user(rb)["ndcg@10"], n_boot=400, seed=3)
    assert by_values == pytest.approx(by_ranks)
    a, b = torch.rand(50, generator=g, dtype=torch.float64), torch.rand(50, generator=g, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 50, (200, 50), generator=gen)  # the same draws, by hand
    means = (a - b)[idx].mean(1)
    got = paired_bootstrap_values(a, b, n_boot=200, seed=1)
    assert got["lo"] == pytest.approx(float(torch.quantile(means, 0.025)))
    assert got["hi"] == pytest.approx(float(torch.quantile(means, 0.975)))
    assert got["diff"] == pytest.approx(float((a - b).mean()))
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_values(a, b[:10])
