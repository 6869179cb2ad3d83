"""Serving: ``Recommender.recommend`` against a brute-force path (issue 9)."""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from recattn_lessons.models import SASRec, SASRecConfig
from recattn_lessons.serving import Recommender, popularity_counts
from recattn_lessons.serving.ranking import top_items, top_items_many
from recattn_lessons.train import TrainConfig, run
from ring_data import N_ITEMS, ring

MAXLEN = 8


def cfg(**kw):
    base = dict(maxlen=MAXLEN, d_model=16, batch_size=8, epochs=2, min_epochs=2, progress=False,
                device="cpu", eval_batch_size=16, n_sampled=10)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny():
    return ring()


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return run(cfg(out=str(out)), data=tiny), out


@pytest.fixture(scope="module")
def rec(trained):
    return Recommender.from_result(trained[0])


def brute_force(model, history, k, exclude_seen=True):
    """Pad by hand, score one candidate at a time, sort by (-score, id)."""
    window = list(history)[-MAXLEN:]
    x = torch.tensor([[0] * (MAXLEN - len(window)) + window])  # (1, L) left-padded
    seen = set(history) if exclude_seen else set()
    with torch.no_grad():
        s = {i: float(model.score(x, torch.tensor([[i]]))[0, 0])
             for i in range(1, N_ITEMS + 1) if i not in seen}
    return sorted(s.items(), key=lambda p: (-p[1], p[0]))[:k]


HISTORIES = [[5], [3, 4, 6], [1, 2, 3, 4, 5, 6, 7, 8], list(range(10, 31)), [7, 7, 9, 7]]


@pytest.mark.parametrize("history", HISTORIES)
def test_recommend_equals_brute_force(rec, history):
    model = rec.model
    for k, exclude in ((10, True), (N_ITEMS - len(set(history)), True), (5, False)):
        got = rec.recommend(history, k=k, exclude_seen=exclude)
        want = brute_force(model, history, k, exclude)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)  # best first
        if exclude:
            assert not set(history) & {i for i, _ in got}


def test_recommend_is_the_score_row(rec):
    history = [3, 4, 6]
    x = torch.tensor([[0] * (MAXLEN - 3) + history])
    with torch.no_grad():
        row = rec.model.score(x)[0]  # (N+1,) the full-row path
    got = rec.recommend(history, k=5)
    assert [s for _, s in got] == [float(row[i]) for i, _ in got]  # exactly equal


def test_long_history_reads_the_most_recent_maxlen(rec):
    recent = list(range(21, 21 + MAXLEN))
    older = list(range(1, 12))
    full = rec.recommend(older + recent, k=N_ITEMS, exclude_seen=False)
    assert full == rec.recommend(recent, k=N_ITEMS, exclude_seen=False)
    assert full != rec.recommend(older[:MAXLEN], k=N_ITEMS, exclude_seen=False)
    excluded = {i for i, _ in rec.recommend(older + recent, k=10)}
    assert not excluded & set(older + recent)  # every seen item is excluded, not only the window


def test_empty_history_falls_back_to_popularity(rec, trained):
    split = trained[0].split
    counts = Counter(int(i) for s in split.train for i in s)
    want = sorted(((i, float(counts.get(i, 0))) for i in range(1, N_ITEMS + 1)),
                  key=lambda p: (-p[1], p[0]))[:7]
    assert rec.recommend([], k=7) == want
    assert popularity_counts(split.train, N_ITEMS)[want[0][0]] == want[0][1]


def test_exclusion_can_leave_fewer_than_k(rec):
    history = list(range(1, N_ITEMS - 1))  # all but items 39 and 40
    got = rec.recommend(history, k=5)
    assert sorted(i for i, _ in got) == [N_ITEMS - 1, N_ITEMS]


@pytest.mark.parametrize("history, named", [
    ([0], "[0]"), ([-3, 2], "[-3]"), ([N_ITEMS + 1], f"[{N_ITEMS + 1}]"), ([2, 1.5], "[1.5]"),
    (["3"], "['3']"), ([True], "[True]"), ([1, 0, 99], "[0, 99]")])
def test_unknown_ids_are_named(rec, history, named):
    with pytest.raises(ValueError) as err:
        rec.recommend(history)
    assert named in str(err.value) and f"1..{N_ITEMS}" in str(err.value)


@pytest.mark.parametrize("history", ["12", None, 7])
def test_history_must_be_a_list(rec, history):
    with pytest.raises(ValueError, match="history must be a list"):
        rec.recommend(history)


@pytest.mark.parametrize("k", [0, -1, N_ITEMS + 1, 2.0, True, "3"])
def test_bad_k(rec, k):
    with pytest.raises(ValueError, match=rf"k must be an integer in 1\.\.{N_ITEMS}.*got {k!r}"):
        rec.recommend([1], k=k)


def test_id_and_k_bounds_are_inclusive(rec):
    assert len(rec.recommend([1], k=1)) == 1
    assert N_ITEMS not in {i for i, _ in rec.recommend([N_ITEMS], k=N_ITEMS - 1)}
    assert len(rec.recommend([], k=N_ITEMS)) == N_ITEMS


def test_constructor_checks():
    model = SASRec(SASRecConfig(n_items=N_ITEMS, maxlen=MAXLEN, d_model=8))
    with pytest.raises(ValueError, match="titles must have n_items \\+ 1 = 41"):
        Recommender(model, titles=["a"] * N_ITEMS)
    with pytest.raises(ValueError, match=r"popularity must have shape \(41,\)"):
        Recommender(model, popularity=torch.zeros(N_ITEMS))
    with pytest.raises(ValueError, match="n_items=39 but the model scores 40"):
        Recommender(model, n_items=39)
    bare = Recommender(model)
    assert bare.maxlen == MAXLEN and bare.name == "sasrec" and bare.title(3) is None
    with pytest.raises(ValueError, match="no popularity"):
        bare.recommend([])
    assert len(bare.recommend([4], k=3)) == 3


def test_from_run_loads_the_best_weights(trained, tiny, rec):
    result, out = trained
    loaded = Recommender.from_run(out, data=tiny)
    assert loaded.name == "sasrec" and loaded.maxlen == MAXLEN and loaded.titles == tiny.titles
    for name, value in result.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    for history in ([], [3, 4, 6], list(range(10, 31))):
        assert loaded.recommend(history, k=10) == rec.recommend(history, k=10)
    assert not loaded.model.training


def test_from_run_reads_best_not_last(trained, tiny, tmp_path):
    """last.pt holds the last epoch's weights and the best ones; serve the best."""
    result, out = trained
    ck = torch.load(out / "last.pt", weights_only=True)
    ck["model"] = {k: v + 1.0 if v.is_floating_point() else v for k, v in ck["model"].items()}
    (tmp_path / "metrics.json").write_text((out / "metrics.json").read_text())
    torch.save(ck, tmp_path / "last.pt")
    loaded = Recommender.from_run(tmp_path, data=tiny)
    for name, value in result.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name


def test_from_run_popularity(tiny, tmp_path):
    result = run(cfg(model="popularity", out=str(tmp_path)), data=tiny)
    assert not (tmp_path / "last.pt").exists()
    loaded = Recommender.from_run(tmp_path, data=tiny)
    counts = popularity_counts(result.split.train, N_ITEMS)
    got = loaded.recommend([3], k=N_ITEMS - 1)
    assert [s for _, s in got] == [float(counts[i]) for i, _ in got]  # scores = counts
    assert got == [p for p in loaded.recommend([], k=N_ITEMS) if p[0] != 3]  # minus the seen


def test_from_run_errors(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        Recommender.from_run(tmp_path)
    with pytest.raises(ValueError, match="do not fit sasrec on 50 items.*pass data="):
        Recommender.from_run(trained[1], data=ring(n_items=50))
    bad = tmp_path / "nockpt"
    bad.mkdir()
    (bad / "metrics.json").write_text((trained[1] / "metrics.json").read_text())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Recommender.from_run(bad, data=ring())
    assert json.loads((bad / "metrics.json").read_text())["model"] == "sasrec"


def test_threads_get_the_same_answers(rec):
    histories = [HISTORIES[i % len(HISTORIES)] for i in range(40)]
    want = [rec.recommend(h, k=5) for h in histories]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda h: rec.recommend(h, k=5), histories))
    assert got == want


def stable_sort_top(s, history, k, exclude_seen=True):
    """The issue-9 ranking: mask, stable full sort, first k."""
    s = s.clone()
    s[0] = float("-inf")
    if exclude_seen and history:
        s[torch.tensor(history)] = float("-inf")
    n_left = (len(s) - 1) - (len(set(history)) if exclude_seen else 0)
    order = torch.sort(s, descending=True, stable=True).indices[:min(k, n_left)]
    return [(int(i), float(s[i])) for i in order]


@pytest.mark.parametrize("seed", range(5))
def test_top_items_equals_a_stable_full_sort_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 6, (N_ITEMS + 1,), generator=g).float()  # many ties
    history = torch.randint(1, N_ITEMS + 1, (7,), generator=g).tolist()
    for k in (1, 3, 10, N_ITEMS):
        for exclude in (True, False):
            want = stable_sort_top(s, history, k, exclude)
            assert top_items(s.clone(), history, k, exclude) == want


def test_recommend_many_equals_recommend(rec):
    histories = HISTORIES + [[], [N_ITEMS]] + HISTORIES[::-1]
    ks = [1 + i % 7 for i in range(len(histories))]
    exclude = [i % 3 != 0 for i in range(len(histories))]
    got = rec.recommend_many(histories, ks, exclude)
    for h, k, ex, pairs in zip(histories, ks, exclude, got):
        want = rec.recommend(h, k, ex)
        assert [i for i, _ in pairs] == [i for i, _ in want]
        assert [s for _, s in pairs] == pytest.approx([s for _, s in want], abs=1e-5)
    assert rec.recommend_many([[3]], 4) == [rec.recommend([3], 4)]  # one row: bit for bit
    with pytest.raises(ValueError, match="2 histories but 1 k values"):
        rec.recommend_many([[1], [2]], [3])
    with pytest.raises(ValueError, match=r"unknown item ids \[0\]"):
        rec.recommend_many([[1], [0]])


def test_top_items_many_equals_row_by_row_with_ties():
    g = torch.Generator().manual_seed(7)
    s = torch.randint(0, 4, (12, N_ITEMS + 1), generator=g).float()  # ties everywhere
    s[3] = 1.0  # a constant row
    s[5, 1:] = float("-inf")  # nothing but -inf
    histories = [torch.randint(1, N_ITEMS + 1, (r,), generator=g).tolist() for r in range(12)]
    ks = [1, 2, 3, 5, 10, N_ITEMS, 7, 4, 1, 9, 6, 8]
    exclude = [r % 3 != 1 for r in range(12)]
    got = top_items_many(s.clone(), histories, ks, exclude)
    for r in range(12):
        assert got[r] == stable_sort_top(s[r], histories[r], ks[r], exclude[r]), r
    everything = list(range(1, N_ITEMS + 1))
    assert top_items_many(s[:2].clone(), [everything, [1]], [3, 3], [True, True])[0] == []
