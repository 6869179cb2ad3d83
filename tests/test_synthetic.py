"""Planted-cause sequences (recattn_lessons.data.synthetic, lesson 06)."""

import pytest
import torch

from recattn_lessons.data.splits import histories, leave_one_out
from recattn_lessons.data.synthetic import SyntheticConfig, final_histories, make_planted


@pytest.fixture(scope="module")
def data():
    return make_planted(n_users=300, n_decoys=2, min_len=21, max_len=25, seed=3)


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_planted(n_users=50, seed=1), make_planted(n_users=50, seed=1)
    c = make_planted(n_users=50, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.sequences, b.sequences))
    assert not all(torch.equal(x, y) for x, y in zip(a.sequences, c.sequences))


def test_final_item_is_the_effect_of_the_planted_cause(data):
    cfg = data.config
    for u, seq in enumerate(data.sequences):
        p = int(data.cause_position[u])
        cause, effect = seq[p], seq[-1]
        assert cfg.min_len <= len(seq) <= cfg.max_len
        assert cfg.min_gap <= int(data.gap[u]) <= cfg.max_gap
        assert len(seq) - 1 - p == int(data.gap[u])
        assert data.is_cause(cause) and data.effect_of(cause) == effect
        assert int((seq == cause).sum()) == 1 and int((seq == effect).sum()) == 1


def test_decoys_are_complete_earlier_pairs_and_the_rest_are_fillers(data):
    cfg = data.config
    for u, seq in enumerate(data.sequences):
        causes = seq[data.is_cause(seq)]
        assert len(causes) == 1 + cfg.n_decoys  # distinct pairs, each once
        assert len(set(causes.tolist())) == len(causes)
        for c in causes.tolist():
            if c == int(seq[data.cause_position[u]]):
                continue
            (ci,), (ei,) = (seq == c).nonzero()[:, 0], (seq == c + cfg.n_pairs).nonzero()[:, 0]
            assert cfg.min_gap <= int(ei - ci) <= cfg.max_gap
            assert ei < len(seq) - 1  # a decoy's effect is already in the past
        n_planted = 2 * (1 + cfg.n_decoys)
        fillers = seq[seq > 2 * cfg.n_pairs]
        assert len(fillers) == len(seq) - n_planted
        assert int(seq.max()) <= data.n_items and int(seq.min()) >= 1


def test_titles_name_every_item(data):
    assert data.titles[0] == "<pad>" and len(data.titles) == data.n_items + 1
    assert data.titles[1].startswith("cause") and data.titles[1 + data.config.n_pairs].startswith("effect")


def test_final_histories_point_at_the_cause(data):
    h, target, ci = final_histories(data, maxlen=30)
    assert h.shape == (data.n_users, 30) and target.shape == ci.shape == (data.n_users,)
    rows = torch.arange(data.n_users)
    assert torch.equal(data.effect_of(h[rows, ci]), target)
    for u in (0, 7):  # left-padded copy of all but the final item
        seq = data.sequences[u]
        assert torch.equal(h[u, -(len(seq) - 1):], seq[:-1])
        assert (h[u, : 30 - (len(seq) - 1)] == 0).all()
    h_short, _, ci_short = final_histories(data, maxlen=data.config.max_gap)
    assert torch.equal(data.effect_of(h_short[rows, ci_short]), target)
    with pytest.raises(ValueError, match="max_gap"):
        final_histories(data, maxlen=data.config.max_gap - 1)


def test_to_interactions_matches_the_course_split(data):
    inter = data.to_interactions()
    split = leave_one_out(inter)
    assert split.n_users == data.n_users
    assert torch.equal(split.test_target, torch.stack([s[-1] for s in data.sequences]))
    h, _, _ = final_histories(data, maxlen=25)
    assert torch.equal(histories(split, "test", 25), h)


@pytest.mark.parametrize("kwargs, match", [
    (dict(min_gap=5, max_gap=2), "min_gap"),
    (dict(min_len=5), "min_len"),
    (dict(n_decoys=20), "n_decoys"),
    (dict(n_users=0), "n_users"),
])
def test_bad_configs_say_what_to_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kwargs)


def test_config_and_overrides_are_exclusive():
    with pytest.raises(TypeError, match="not both"):
        make_planted(SyntheticConfig(), n_users=3)
