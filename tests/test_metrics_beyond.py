"""Beyond-accuracy metrics (lesson 09) against brute-force loops over their definitions."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from recattn_lessons import metrics
from recattn_lessons.data import genre_multi_hot, item_popularity, load_movielens, title_tokens

N_ITEMS, N_FEATS = 30, 6


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    feats = (torch.rand(N_ITEMS + 1, N_FEATS, generator=g) < 0.35).float()
    feats[0] = 0
    feats[3] = 0  # an item without any feature
    top = torch.stack([torch.randperm(N_ITEMS, generator=g)[:5] + 1 for _ in range(40)])  # (40, 5)
    top[0, :2] = 3  # two featureless items in one list
    counts = torch.randint(0, 50, (N_ITEMS + 1,), generator=g)
    return feats, top, counts


def brute_ild(top, feats):
    out = []
    for row in top.tolist():
        d = []
        for a, b in itertools.combinations(row, 2):
            A = {j for j in range(feats.shape[1]) if feats[a, j] > 0}
            B = {j for j in range(feats.shape[1]) if feats[b, j] > 0}
            d.append(0.0 if not (A | B) else 1 - len(A & B) / len(A | B))
        out.append(sum(d) / len(d))
    return out


def test_intra_list_diversity_matches_brute_force(toy):
    feats, top, _ = toy
    expect = brute_ild(top, feats)
    got = metrics.intra_list_diversity(top, feats, per_user=True)
    assert got.shape == (len(top),)
    assert torch.allclose(got, torch.tensor(expect, dtype=torch.float64))
    assert metrics.intra_list_diversity(top, feats) == pytest.approx(sum(expect) / len(expect))


def test_intra_list_diversity_extremes(toy):
    feats, _, _ = toy
    same = torch.full((2, 4), 5)
    assert metrics.intra_list_diversity(same, feats) == 0.0
    disjoint = torch.eye(5)
    disjoint = torch.cat([torch.zeros(1, 5), disjoint])  # items 1..5, one distinct feature each
    assert metrics.intra_list_diversity(torch.tensor([[1, 2, 3, 4, 5]]), disjoint) == 1.0


def test_coverage_exposure_gini_match_brute_force(toy):
    _, top, _ = toy
    counts = [0] * N_ITEMS
    for i in top.reshape(-1).tolist():
        counts[i - 1] += 1
    assert metrics.exposure_counts(top, N_ITEMS).tolist() == counts
    assert metrics.catalog_coverage(top, N_ITEMS) == sum(c > 0 for c in counts) / N_ITEMS
    # Gini as mean absolute difference over all ordered pairs / (2 * mean)
    mad = sum(abs(a - b) for a in counts for b in counts) / N_ITEMS ** 2
    assert metrics.gini_index(top, N_ITEMS) == pytest.approx(mad / (2 * sum(counts) / N_ITEMS))


def test_gini_extremes():
    assert metrics.gini_index(torch.tensor([[1], [2], [3], [4]]), 4) == pytest.approx(0.0)
    assert metrics.gini_index(torch.full((7, 1), 2), 4) == pytest.approx(3 / 4)


def test_novelty_matches_brute_force(toy):
    _, top, counts = toy
    total = int(counts[1:].sum())
    bits = [-math.log2((int(counts[i]) + 1) / (total + N_ITEMS)) for i in top.reshape(-1).tolist()]
    assert metrics.novelty(top, counts) == pytest.approx(sum(bits) / len(bits))
    popular = torch.full((3, 1), int(counts[1:].argmax()) + 1)
    rare = torch.full((3, 1), int(counts[1:].argmin()) + 1)
    assert metrics.novelty(popular, counts) < metrics.novelty(rare, counts)


def brute_genre_distribution(items, feats):
    p = [0.0] * feats.shape[1]
    for i in items:
        gs = [j for j in range(feats.shape[1]) if feats[i, j] > 0]
        for j in gs:
            p[j] += 1 / len(gs)
    s = sum(p)
    return [x / s for x in p] if s else p


def test_genre_calibration_matches_brute_force(toy):
    feats, top, _ = toy
    g = torch.Generator().manual_seed(1)
    hists = [torch.randint(1, N_ITEMS + 1, (int(n),), generator=g) for n in torch.randint(1, 12, (len(top),), generator=g)]
    alpha = 0.01
    expect = []
    for u, row in enumerate(top.tolist()):
        p = brute_genre_distribution(hists[u].tolist(), feats)
        q = brute_genre_distribution(row, feats)
        expect.append(sum(pg * math.log(pg / ((1 - alpha) * qg + alpha * pg)) for pg, qg in zip(p, q) if pg > 0))
    got = metrics.genre_calibration(top, hists, feats, alpha=alpha, per_user=True)
    assert torch.allclose(got, torch.tensor(expect, dtype=torch.float64))
    # padded (U, L) histories give the same numbers
    padded = torch.zeros(len(hists), 12, dtype=torch.long)
    for u, h in enumerate(hists):
        padded[u, -len(h):] = h
    assert metrics.genre_calibration(top, padded, feats) == pytest.approx(sum(expect) / len(expect))


def test_calibration_is_zero_for_a_list_that_mirrors_the_history(toy):
    feats, _, _ = toy
    top = torch.tensor([[1, 2, 4, 5]])
    assert metrics.genre_calibration(top, [top[0]], feats) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([[1, 0, 2]]), "outside 1..30"),
    (torch.tensor([[1, 31]]), "outside 1..30"),
    (torch.zeros(0, 3, dtype=torch.long), "empty"),
    (torch.tensor([1, 2, 3]), r"\(U, k\)"),
    (torch.tensor([[1.0, 2.0]]), "integer tensor"),
])
def test_bad_lists_get_a_clear_error(toy, bad, message):
    feats, _, counts = toy
    for call in (lambda: metrics.catalog_coverage(bad, N_ITEMS), lambda: metrics.gini_index(bad, N_ITEMS),
                 lambda: metrics.novelty(bad, counts)):
        with pytest.raises(ValueError, match=message):
            call()


def test_other_bad_inputs(toy):
    feats, top, counts = toy
    with pytest.raises(ValueError, match="k >= 2"):
        metrics.intra_list_diversity(top[:, :1], feats)
    with pytest.raises(ValueError, match="multi-hot"):
        metrics.intra_list_diversity(top, feats[1])
    with pytest.raises(ValueError, match="3 users"):
        metrics.genre_calibration(top, [top[0]] * 3, feats)
    with pytest.raises(ValueError, match="empty history"):
        metrics.genre_calibration(top[:1], [torch.zeros(0, dtype=torch.long)], feats)
    with pytest.raises(ValueError, match="item id 31"):
        metrics.genre_calibration(top[:1], [torch.tensor([2, 31])], feats)
    with pytest.raises(ValueError, match="alpha"):
        metrics.genre_calibration(top[:1], [top[0]], feats, alpha=0.0)
    with pytest.raises(ValueError, match="negative"):
        metrics.novelty(top, counts - 100)


def test_movielens_item_features():
    data = load_movielens()
    feats, names = genre_multi_hot(data)
    assert feats.shape == (data.n_items + 1, 19) and "(no genres listed)" not in names
    assert feats[0].sum() == 0
    toy_story = data.titles.index("Toy Story (1995)")
    assert {names[j] for j in feats[toy_story].nonzero().flatten()} == set(data.genres[toy_story].split("|"))
    tokens, vocab = title_tokens(data)
    assert tokens.shape == (data.n_items + 1, 8) and vocab[:2] == ["<pad>", "<unk>"]
    assert [vocab[j] for j in tokens[toy_story] if j] == ["toy", "story"]  # year dropped
    assert tokens[0].sum() == 0
    pop = item_popularity(data.sequences, data.n_items)
    assert int(pop.sum()) == data.n_interactions and pop[0] == 0


def test_top_k_lists_agree_with_full_ranks():
    from recattn_lessons.data import leave_one_out
    from recattn_lessons.models import build
    from recattn_lessons.train.evaluate import top_k_lists

    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 21, (int(n),), generator=g) for n in torch.randint(4, 9, (12,), generator=g)]
    from recattn_lessons.data import Interactions
    data = Interactions(sequences=seqs, n_users=12, n_items=20, titles=["<pad>"] + [f"i{i}" for i in range(20)],
                        genres=[""] * 21, raw_item_ids=list(range(-1, 20)), raw_user_ids=list(range(12)),
                        n_tied=0, n_tie_groups=0)
    split = leave_one_out(data)
    torch.manual_seed(0)
    model = build("sasrec", 20, maxlen=8, d_model=16, dropout=0.0)
    items, scores, ranks = top_k_lists(model, split, "test", 8, k=20, batch_size=5)
    seen = split.seen("test")
    repeats = 0
    for u in range(split.n_users):
        target = int(split.test_target[u])
        repeats += target in set(seen[u].tolist())
        candidates = [i for i in range(1, 21) if i == target or i not in set(seen[u].tolist())]
        shown = [i for i, s in zip(items[u].tolist(), scores[u].tolist()) if s > float("-inf")]
        assert sorted(shown) == candidates  # unseen items and the target; nothing else, no padding
        assert scores[u][: len(shown)].diff().le(0).all()  # best first
        assert int(ranks[u]) == shown.index(target)  # the full-protocol rank, from the same scores
    assert repeats > 0  # the case where a seen target must still compete is exercised
    with pytest.raises(ValueError, match="k must lie"):
        top_k_lists(model, split, "test", 8, k=0)



def test_partial_coverage_and_the_messages_name_the_numbers(toy):
    feats, top, counts = toy
    few = torch.tensor([[1, 2], [2, 3]])
    assert metrics.catalog_coverage(few, N_ITEMS) == pytest.approx(3 / N_ITEMS)
    for call in (lambda: metrics.intra_list_diversity(torch.tensor([[1, 31]]), feats),
                 lambda: metrics.genre_calibration(torch.tensor([[1, 31]]), [top[0]], feats)):
        with pytest.raises(ValueError, match=r"outside 1\.\.30 \(min 1, max 31\)"):
            call()
    with pytest.raises(ValueError, match=r"integer tensor \(U, k\) of item ids; got list"):
        metrics.catalog_coverage([[1, 2]], N_ITEMS)
    with pytest.raises(ValueError, match=r"got shape \(3,\), dtype torch.int64"):
        metrics.catalog_coverage(torch.tensor([1, 2, 3]), N_ITEMS)
    with pytest.raises(ValueError, match=r"must be a \(n_items \+ 1, n_features\) multi-hot tensor \(row 0 = padding\)"):
        metrics.intra_list_diversity(top, feats[1])
    with pytest.raises(ValueError, match=r"^item_popularity must be a 1-D tensor \(n_items \+ 1,\) of interaction counts$"):
        metrics.novelty(top, [1, 2, 3])
    with pytest.raises(ValueError, match="^item_popularity holds negative counts$"):
        metrics.novelty(top, counts - 100)
    with pytest.raises(ValueError, match="alpha must lie in"):
        metrics.genre_calibration(top[:1], [top[0]], feats, alpha=1.0)
    with pytest.raises(ValueError, match="histories has 3 users but top_items has 40 rows"):
        metrics.genre_calibration(top, [top[0]] * 3, feats)
    with pytest.raises(ValueError, match=r"item id 31 but item_features has rows for ids 0\.\.30"):
        metrics.genre_calibration(top[:1], [torch.tensor([2, 31])], feats)
