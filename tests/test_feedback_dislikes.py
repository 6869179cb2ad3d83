"""Lesson 09, negative feedback: three readings of a low rating, one set of targets."""

import pandas as pd
import pytest
import torch

from recattn_lessons.data import interactions_from_frame, leave_one_out
from recattn_lessons.data.batching import Batch
from recattn_lessons.data.feedback import (VARIANTS, decode_dislikes, encode_dislikes, feedback_variant,
                                           keep_popular_items)
from recattn_lessons.models import build
from recattn_lessons.models.feedback import DislikeSASRecConfig
from recattn_lessons.train.evaluate import eval_negatives, evaluate
from recattn_lessons.train.feedback import evaluate_same_candidates

# user 0: liked 1, 2, disliked 3, liked 4 (L1), disliked 5 (between), liked 6 (L2), disliked 7 (after)
# user 1: 8 (1 star), 1, 2, 3 liked; user 2 has only 2 likes (left out)
USER0 = [(1, 4), (2, 5), (3, 1), (4, 4), (5, 2), (6, 5), (7, 1)]  # (item, stars)
ROWS = ([(0, i, t, r) for t, (i, r) in enumerate(USER0)]
        + [(1, i, t, r) for t, (i, r) in enumerate([(8, 1), (1, 3), (2, 4), (3, 5)])]
        + [(2, i, t, r) for t, (i, r) in enumerate([(1, 5), (2, 1), (3, 5)])])


def tiny():
    df = pd.DataFrame(ROWS, columns=["userId", "movieId", "timestamp", "rating"])
    return interactions_from_frame(df, rating="rating")


def test_variants_share_targets_and_differ_only_in_dislikes():
    data = tiny()
    out = {v: feedback_variant(data, v) for v in VARIANTS}
    splits = {v: leave_one_out(d) for v, d in out.items()}
    for v in VARIANTS:
        assert torch.equal(splits[v].valid_target, torch.tensor([4, 2]))
        assert torch.equal(splits[v].test_target, torch.tensor([6, 3]))
        assert out[v].n_users == 2 and out[v].raw_user_ids == [0, 1]
    assert out["positive"].sequences[0].tolist() == [1, 2, 3, 4, 6]  # 5 (between) and 7 (after) gone
    assert out["dropped"].sequences[0].tolist() == [1, 2, 4, 6]
    assert out["dislike"].sequences[0].tolist() == [1, 2, 3 + 8, 4, 6]  # N = 8
    assert out["dislike"].sequences[1].tolist() == [8 + 8, 1, 2, 3]
    assert out["dislike"].n_items == 16 and out["dropped"].n_items == 8
    assert all((r > 2).all() for r in out["dropped"].ratings)


def test_encode_decode_round_trip_and_errors():
    items = torch.tensor([[0, 3, 5], [1, 2, 8]])
    flags = torch.tensor([[False, True, False], [True, False, True]])
    enc = encode_dislikes(items.clamp(min=1), flags, 8)
    dec, back = decode_dislikes(enc, 8)
    assert torch.equal(dec, items.clamp(min=1)) and torch.equal(back, flags)
    with pytest.raises(ValueError, match="boolean"):
        encode_dislikes(items, flags.long(), 8)
    with pytest.raises(ValueError, match="0..16"):
        decode_dislikes(torch.tensor([17]), 8)
    with pytest.raises(ValueError, match="variant must be"):
        feedback_variant(tiny(), "ignored")
    with pytest.raises(ValueError, match="no ratings"):
        unrated = pd.DataFrame(ROWS, columns=["userId", "movieId", "timestamp", "rating"])
        feedback_variant(interactions_from_frame(unrated), "dropped")


def model(n=16, **kw):
    torch.manual_seed(0)
    return build("sasrec-dislike", n, maxlen=6, d_model=8, **kw).double().eval()


def test_dislike_flag_changes_only_flagged_positions():
    m = model()
    plain = torch.tensor([[0, 1, 2, 3, 4, 5]])
    flagged = torch.tensor([[0, 1, 2, 3 + 8, 4, 5]])  # item 3, disliked
    e0, e1 = m.item_emb(plain), m.item_emb(flagged)  # (1, L, D)
    diff = (e1 - e0).abs().sum(-1)[0]  # (L,)
    assert (diff[[0, 1, 2, 4, 5]] == 0).all() and diff[3] > 0
    torch.testing.assert_close(e1[0, 3] - e0[0, 3], m.item_emb.dislike)
    with torch.no_grad():
        h0, h1 = m(plain), m(flagged)  # (1, L, D): causal, so only positions 3.. move
    torch.testing.assert_close(h0[:, :3], h1[:, :3], atol=1e-12, rtol=0)
    assert not torch.allclose(h0[:, 3:], h1[:, 3:])


def test_scores_cover_items_only_and_flagged_targets_are_skipped():
    m = model()
    hist = torch.tensor([[0, 1, 2, 11, 4, 5], [1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        s = m.score(hist)
    assert s.shape == (2, 17)
    assert (s[:, 9:] < s[:, 1:9].min()).all()  # flag columns never outrank an item
    cand = torch.tensor([[1, 9], [3, 16]])
    torch.testing.assert_close(m.score(hist, cand), s.gather(1, cand))
    targets = torch.tensor([[0, 2, 11, 4, 5, 6], [2, 3, 4, 13, 14, 7]])
    skipped = torch.where(targets > 8, 0, targets)
    a = m.loss(Batch(hist, targets, torch.arange(2)))
    b = m.loss(Batch(hist, skipped, torch.arange(2)))
    torch.testing.assert_close(a, b)


def test_dislike_config_errors():
    with pytest.raises(ValueError, match="even id space"):
        DislikeSASRecConfig(n_items=9)
    with pytest.raises(ValueError, match="loss='ce' only"):
        DislikeSASRecConfig(n_items=10, loss="bce")


def test_same_candidates_exclude_every_rated_item():
    data = tiny()
    ref = leave_one_out(feedback_variant(data, "positive"))
    drop = leave_one_out(feedback_variant(data, "dropped"))
    torch.manual_seed(0)
    m = build("sasrec", 8, maxlen=6, d_model=8).double().eval()
    for stage in ("valid", "test"):  # the positive variant: the loop's own numbers
        mine = evaluate_same_candidates(m, ref, ref, stage, maxlen=6)
        theirs = evaluate(m, ref, stage, maxlen=6, negatives=eval_negatives(ref, stage, 0, n=2))["full"]
        assert mine == pytest.approx(theirs)
    # every history reads h = (1, .., 1), so an item's score is its embedding's sum: item 3
    # (disliked by user 0 before the valid target) outranks everything
    with torch.no_grad():
        m.ln.weight.fill_(0)
        m.ln.bias.fill_(1)
        m.item_emb.weight[3] = 100.0
    same = evaluate_same_candidates(m, drop, ref, "valid", maxlen=6)
    own = evaluate_same_candidates(m, drop, drop, "valid", maxlen=6)  # the loop's protocol
    assert same["mrr"] > own["mrr"]
    with pytest.raises(ValueError, match="same users"):
        evaluate_same_candidates(m, leave_one_out(keep_popular_items(data, 1)), ref, "valid", maxlen=6)
