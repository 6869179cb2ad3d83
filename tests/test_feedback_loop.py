"""Lesson 09, the feedback-loop simulation: seeded, and exploration widens what is shown."""

import pytest
import torch

from recattn_lessons.data import Interactions
from recattn_lessons.data.scale import zipf_sequences
from recattn_lessons.simulation.feedback_loop import LoopConfig, acceptance, simulate

N_USERS, N_ITEMS = 40, 30


def tiny_data() -> Interactions:
    seqs = zipf_sequences(N_USERS, N_ITEMS, mean_len=10, min_len=5, exponent=1.2, seed=0)
    return Interactions(sequences=seqs, n_users=N_USERS, n_items=N_ITEMS,
                        titles=["<pad>"] + [f"item {i}" for i in range(1, N_ITEMS + 1)],
                        genres=[""] * (N_ITEMS + 1), raw_item_ids=list(range(-1, N_ITEMS)),
                        raw_user_ids=list(range(N_USERS)), n_tied=0, n_tie_groups=0)


CFG = LoopConfig(rounds=3, k=4, epochs=1, truth_epochs=2, d_model=8, batch_size=64,
                 model="meanpool", truth_model="meanpool")


@pytest.fixture(scope="module")
def setup():
    data = tiny_data()
    return data, acceptance(CFG, data)


def test_acceptance_is_a_probability_that_never_repeats_history(setup):
    data, p = setup
    assert p.shape == (N_USERS, N_ITEMS + 1)
    assert (p >= 0).all() and (p <= CFG.accept_max + 1e-12).all() and (p[:, 0] == 0).all()
    torch.testing.assert_close(p.max(1).values, torch.full((N_USERS,), CFG.accept_max, dtype=p.dtype))
    for u, s in enumerate(data.sequences):
        assert (p[u, s] == 0).all()  # seen items are never accepted (never shown)


def test_simulation_is_deterministic_per_seed(setup):
    data, p = setup
    cfg = LoopConfig(**{**CFG.to_dict(), "explore": 0.25})

    def strip(records):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records]

    a, b = strip(simulate(cfg, data, p)), strip(simulate(cfg, data, p))
    assert a == b and [r["round"] for r in a] == [1, 2, 3]
    c = strip(simulate(LoopConfig(**{**cfg.to_dict(), "seed": 1}), data, p))
    assert a != c
    for r in a:
        assert 0 < r["coverage"] <= 1 and 0 <= r["gini"] < 1 and 0 <= r["accept_rate"] <= 1


def test_exploration_raises_coverage(setup):
    data, p = setup
    plain = simulate(CFG, data, p)
    explore = simulate(LoopConfig(**{**CFG.to_dict(), "explore": 0.5}), data, p)
    for a, b in zip(plain, explore):
        assert b["coverage"] > a["coverage"] and b["gini"] < a["gini"]
        assert b["mean_popularity"] < a["mean_popularity"]


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match="explore must lie"):
        LoopConfig(explore=1.5)
    with pytest.raises(ValueError, match="accept_max"):
        LoopConfig(accept_max=0.0)
    with pytest.raises(ValueError, match="accept must be"):
        simulate(CFG, tiny_data(), torch.zeros(3, 3))
