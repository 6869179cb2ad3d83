"""Data pipeline: loading, leave-one-out, windows, negatives (lesson 05)."""

import pandas as pd
import pytest
import torch

from recattn_lessons.data import (
    SeenIndex,
    histories,
    interactions_from_frame,
    iterate_batches,
    leave_one_out,
    left_pad,
    load_movielens,
    sample_negatives,
    sliding_windows,
)


def random_sequences(seed, n_users=12, n_items=40, lo=1, hi=30):
    """Per-user sequences of distinct items (so each pair is identifiable)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n_users,), generator=g)
    return [torch.randperm(n_items, generator=g)[:n] + 1 for n in lengths.tolist()]


def test_movielens_counts_and_ties():
    d = load_movielens()
    assert (d.n_users, d.n_items, d.n_interactions) == (671, 9066, 100_004)
    assert len(d.titles) == len(d.genres) == len(d.raw_item_ids) == d.n_items + 1
    assert d.titles[0] == "<pad>" and d.raw_item_ids[0] == -1
    flat = torch.cat(d.sequences)
    assert int(flat.min()) == 1 and int(flat.max()) == d.n_items
    # 31,945 ratings share a timestamp with another of the same user, in
    # 10,100 (user, timestamp) groups; the 21,845 counts the
    # ratings that repeat an earlier one's timestamp (31,945 - 10,100).
    assert (d.n_tied, d.n_tie_groups) == (31_945, 10_100)
    assert d.n_tied - d.n_tie_groups == 21_845


def tie_frame():
    return pd.DataFrame({
        "userId": [7, 7, 7, 7, 3, 3, 3],
        "movieId": [50, 10, 30, 20, 10, 40, 50],
        "timestamp": [5, 9, 5, 1, 2, 2, 1],
        "title": ["e", "a", "c", "b", "a", "d", "e"],
        "genres": ["x"] * 7,
    })


def test_time_order_with_ties_in_file_order():
    df = tie_frame()
    d = interactions_from_frame(df, title="title", genres="genres", tie_seed=None)
    assert d.tie_seed is None
    assert [t.tolist() for t in d.timestamps] == [[1, 2, 2], [1, 5, 5, 9]]
    assert d.raw_user_ids == [3, 7] and d.raw_item_ids == [-1, 10, 20, 30, 40, 50]
    raw = [[d.raw_item_ids[i] for i in s.tolist()] for s in d.sequences]
    assert raw == [[50, 10, 40], [20, 50, 30, 10]]  # ties 5/5 and 2/2 keep file order
    assert (d.n_tied, d.n_tie_groups) == (4, 2)
    assert d.titles == ["<pad>", "a", "b", "c", "d", "e"]


def test_ties_get_a_seeded_random_order():
    df = tie_frame()
    orders = set()
    for seed in range(40):
        d = interactions_from_frame(df, tie_seed=seed)
        again = interactions_from_frame(df, tie_seed=seed)
        assert all(torch.equal(a, b) for a, b in zip(d.sequences, again.sequences))  # seeded
        raw = [[d.raw_item_ids[i] for i in s.tolist()] for s in d.sequences]
        # only the order inside a tie group may change; the times stay sorted
        assert raw[0][0] == 50 and set(raw[0][1:]) == {10, 40}
        assert raw[1][0] == 20 and set(raw[1][1:3]) == {30, 50} and raw[1][3] == 10
        assert [t.tolist() for t in d.timestamps] == [[1, 2, 2], [1, 5, 5, 9]]
        orders.add((tuple(raw[0]), tuple(raw[1])))
    assert len(orders) == 4  # both groups take both orders: not the file's order every time
    assert interactions_from_frame(df).tie_seed == 0  # random by default
    with pytest.raises(TypeError, match="tie_seed"):
        interactions_from_frame(df, tie_seed="0")


def test_random_ties_remove_the_ascending_id_order():
    """In the file every tie group is in ascending item id (the leak, issue 12)."""
    def ascending_share(d):
        up = total = 0
        for s, t in zip(d.sequences, d.timestamps):
            same = t[1:] == t[:-1]
            up += int((s[1:] > s[:-1])[same].sum())
            total += int(same.sum())
        return up / total
    assert ascending_share(load_movielens(tie_seed=None)) == 1.0
    assert 0.45 < ascending_share(load_movielens(tie_seed=0)) < 0.55


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="timestamp"):
        interactions_from_frame(pd.DataFrame({"userId": [1], "movieId": [2]}))


def test_leave_one_out_and_histories():
    seqs = [torch.tensor([1, 2, 3, 4, 5]), torch.tensor([6, 7]), torch.tensor([8, 9, 10])]
    df = pd.DataFrame({"u": [u for u, s in enumerate(seqs) for _ in s],
                       "i": torch.cat(seqs).tolist(), "t": list(range(10))})
    s = leave_one_out(interactions_from_frame(df, "u", "i", "t"))
    assert s.users.tolist() == [0, 2] and s.n_dropped == 1  # the 2-item user is left out
    assert [t.tolist() for t in s.train] == [[1, 2, 3], [8]]
    assert s.valid_target.tolist() == [4, 9] and s.test_target.tolist() == [5, 10]
    assert histories(s, "valid", 4).tolist() == [[0, 1, 2, 3], [0, 0, 0, 8]]
    assert histories(s, "test", 3).tolist() == [[2, 3, 4], [0, 8, 9]]  # ends with valid item
    with pytest.raises(ValueError, match="stage"):
        histories(s, "train", 3)


@pytest.mark.parametrize("maxlen,stride", [(5, None), (5, 2), (1, 1), (7, 7), (50, None)])
@pytest.mark.parametrize("seed", range(3))
def test_windows_cover_every_transition_once(seed, maxlen, stride):
    seqs = random_sequences(seed)
    w = sliding_windows(seqs, maxlen, stride)
    assert w.inputs.shape == w.targets.shape == (len(w), maxlen)
    pad = w.inputs == 0
    assert (w.targets[pad] == 0).all()  # padding never has a target
    got = sorted((u, int(x), int(y)) for u, xs, ys in zip(w.users.tolist(), w.inputs, w.targets)
                 for x, y in zip(xs, ys) if y > 0)
    want = sorted((u, int(a), int(b)) for u, s in enumerate(seqs) for a, b in zip(s[:-1], s[1:]))
    assert got == want
    for u, row in zip(w.users.tolist(), w.inputs):  # inputs are a contiguous slice, left-padded
        real = row[row > 0]
        assert (row[: maxlen - len(real)] == 0).all()
        start = int((seqs[u] == real[0]).nonzero())
        assert torch.equal(seqs[u][start:start + len(real)], real)


def test_overlapping_windows_give_context():
    w = sliding_windows([torch.arange(1, 12)], maxlen=4, stride=2)
    for xs, ys in zip(w.inputs, w.targets):
        for j in range(4):
            if ys[j] > 0 and xs[0] > 0:
                assert j >= 2  # each kept target has at least maxlen - stride items before


def test_seen_index_matches_brute_force():
    seqs = random_sequences(1)
    idx = SeenIndex(seqs, 40)
    users = torch.arange(len(seqs))[:, None].expand(-1, 41)
    items = torch.arange(41)[None].expand(len(seqs), -1)
    brute = torch.tensor([[i in set(s.tolist()) for i in range(41)] for s in seqs])
    assert torch.equal(idx.contains(users, items), brute)


def test_negatives_are_unseen_and_seeded():
    seqs = random_sequences(2, n_items=40, lo=20, hi=38)
    idx = SeenIndex(seqs, 40)
    users = torch.arange(len(seqs))
    a = sample_negatives(idx, users, (6, 5), torch.Generator().manual_seed(3))
    b = sample_negatives(idx, users, (6, 5), torch.Generator().manual_seed(3))
    assert a.shape == (len(seqs), 6, 5) and torch.equal(a, b)
    assert ((a >= 1) & (a <= 40)).all()
    for u, s in enumerate(seqs):
        assert not set(a[u].flatten().tolist()) & set(s.tolist())
    with pytest.raises(ValueError, match="every item"):
        sample_negatives(SeenIndex([torch.arange(1, 41)], 40), torch.tensor([0]), (2,),
                         torch.Generator().manual_seed(0))


def test_batches_cover_every_window_once():
    seqs = random_sequences(4)
    w = sliding_windows(seqs, 6)
    g = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(w, 5, g, SeenIndex(seqs, 40), n_negatives=3))
    rows = torch.cat([b.inputs for b in batches])
    assert len(rows) == len(w)
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, w.inputs.tolist()))
    for b in batches:
        assert b.negatives.shape == (len(b.users), 6, 3)
        for u, neg in zip(b.users.tolist(), b.negatives):
            assert not set(neg.flatten().tolist()) & set(seqs[u].tolist())


def test_left_pad_rejects_bad_maxlen():
    assert left_pad([torch.tensor([1, 2, 3])], 2).tolist() == [[2, 3]]
    with pytest.raises(ValueError, match="maxlen"):
        left_pad([torch.tensor([1])], 0)
