"""Dense text features in SASRec and items held out of training (lesson 10).

The fixture has two groups of 30 items; every user draws from one group only,
and 3 items of each group (28-30 and 58-60) occur in no sequence: cold items.
Their content vectors say which group they belong to (plus noise), nothing else does.
"""

from __future__ import annotations

import pytest
import torch

from recattn_lessons import models
from recattn_lessons.data import Interactions
from recattn_lessons.data.splits import held_out_item_ids, histories, hold_out_items, leave_one_out
from recattn_lessons.models.item_encoder import ContentProjection
from recattn_lessons.models.sasrec import SASRec, SASRecConfig
from recattn_lessons.train import TrainConfig, run
from recattn_lessons.train.loop import build_model

N_PER, N_COLD = 30, 3
COLD_A, COLD_B = [28, 29, 30], [58, 59, 60]


def two_groups(n_users: int = 80, length: int = 14, seed: int = 0) -> Interactions:
    g = torch.Generator().manual_seed(seed)
    N = 2 * N_PER
    seqs = []
    for u in range(n_users):
        warm = torch.arange(1, N_PER - N_COLD + 1) + (u % 2) * N_PER  # this user's group, cold left out
        seqs.append(warm[torch.randperm(len(warm), generator=g)[:length]])
    return Interactions(sequences=seqs, n_users=n_users, n_items=N, titles=["<pad>"] + [f"m{i}" for i in range(N)],
                        genres=[""] + ["A" if i < N_PER else "B" for i in range(N)],
                        raw_item_ids=[-1] + list(range(N)), raw_user_ids=list(range(n_users)),
                        n_tied=0, n_tie_groups=0)


def group_vectors(n_items: int = 2 * N_PER, dim: int = 8, seed: int = 1) -> torch.Tensor:
    """``(N + 1, dim)`` unit vectors: a group direction plus small item noise; row 0 zero."""
    g = torch.Generator().manual_seed(seed)
    group = torch.zeros(n_items + 1, dim)
    group[1:N_PER + 1, 0] = 1.0
    group[N_PER + 1:, 1] = 1.0
    v = group + 0.2 * torch.randn(n_items + 1, dim, generator=g)
    v = v / v.norm(dim=1, keepdim=True)
    v[0] = 0
    return v


def test_content_projection_adds_a_linear_map_of_the_vectors_and_keeps_padding_zero():
    vectors = group_vectors()
    enc = ContentProjection(vectors, d_model=16)
    ids = torch.randn(vectors.shape[0], 16)
    ids[0] = 0
    out = enc(ids)
    assert torch.allclose(out, ids + vectors @ enc.proj.weight.T)
    assert torch.equal(out[0], torch.zeros(16))
    assert not enc.vectors.requires_grad and "vectors" in dict(enc.named_buffers())
    out.sum().backward()
    assert enc.proj.weight.grad is not None and enc.proj.weight.grad.abs().sum() > 0


def test_content_projection_rejects_bad_vectors():
    with pytest.raises(ValueError, match="float tensor"):
        ContentProjection(torch.ones(5, 3, dtype=torch.long), 8)
    with pytest.raises(ValueError, match="row 0"):
        ContentProjection(torch.ones(5, 3), 8)
    with pytest.raises(ValueError, match="n_items \\+ 1"):
        SASRec(SASRecConfig(n_items=6), item_vectors=group_vectors()[:5])
    with pytest.raises(ValueError, match="only genret"):
        models.build("sasrec", 6, semantic_ids=object())


def test_sasrec_with_vectors_scores_through_the_content_and_ids_only_is_unchanged():
    torch.manual_seed(0)
    plain = SASRec(SASRecConfig(n_items=2 * N_PER, d_model=16, maxlen=6))
    torch.manual_seed(0)
    withv = models.build("sasrec", 2 * N_PER, item_vectors=group_vectors(), d_model=16, maxlen=6)
    assert plain.ids_only and not withv.ids_only
    extra = {n for n, _ in withv.named_parameters()} - {n for n, _ in plain.named_parameters()}
    assert extra == {"content.proj.weight"}
    for name, p in plain.named_parameters():  # same initialisation apart from the projection
        assert torch.equal(p, dict(withv.named_parameters())[name])
    hist = torch.tensor([[0, 3, 7, 9, 31, 32]])
    withv.eval()
    table = withv.item_table()
    assert torch.allclose(withv.score(hist), withv.forward(hist, table=table)[:, -1] @ table.T)
    with torch.no_grad():  # the vectors reach the scores: zero them and the scores change
        before = withv.score(hist)
        withv.content.vectors[1:] = 0
        assert not torch.allclose(withv.score(hist), before)


def test_hold_out_items_removes_them_from_every_training_sequence_only():
    data = two_groups()
    split = leave_one_out(data)
    held, cold = hold_out_items(split, 0.1, seed=3)
    assert len(cold) == round(0.1 * data.n_items) and torch.equal(cold, cold.sort().values)
    assert int(cold.min()) >= 1 and int(cold.max()) <= data.n_items
    assert torch.equal(cold, held_out_item_ids(data.n_items, 0.1, 3))
    assert not torch.equal(cold, held_out_item_ids(data.n_items, 0.1, 4))  # the seed matters
    for before, after in zip(split.train, held.train):
        keep = ~torch.isin(before, cold)
        assert torch.equal(after, before[keep])  # order kept, only the cold items gone
    assert torch.equal(held.valid_target, split.valid_target)
    assert torch.equal(held.test_target, split.test_target)
    same, none = hold_out_items(split, 0.0)
    assert same is split and len(none) == 0
    with pytest.raises(ValueError, match="\\[0, 1\\)"):
        hold_out_items(split, 1.0)


def test_config_checks_text_features_and_the_cold_share():
    assert TrainConfig(item_features="genres,text-e5").item_features == ("genres", "text-e5")
    with pytest.raises(ValueError, match="one text embedding"):
        TrainConfig(item_features=("text-e5", "text-tfidf"))
    with pytest.raises(ValueError, match="needs item_features with tokens"):
        TrainConfig(item_features=("text-e5",), fusion="cross")
    with pytest.raises(ValueError, match="cold_items"):
        TrainConfig(cold_items=1.0)


def quick(**changes) -> TrainConfig:
    base = dict(maxlen=8, d_model=16, lr=1e-2, epochs=10, min_epochs=10, dropout=0.1,
                n_sampled=20, progress=False)
    return TrainConfig.quick(**{**base, **changes})


def test_cold_items_in_a_run_are_never_trained_and_reported():
    data = two_groups()
    result = run(quick(model="popularity", cold_items=0.1, seed=2), data)
    cold = held_out_item_ids(data.n_items, 0.1, 2)
    assert result.metrics["split"]["n_held_out_items"] == len(cold)
    assert not torch.isin(torch.cat(result.split.train), cold).any()
    scores = result.model.score(histories(result.split, "test", 8))  # popularity: counts only
    assert torch.all(scores[:, cold] <= scores[:, 1:].min(dim=1, keepdim=True).values)


def _share_placed_in_group(model, split, maxlen) -> float:
    scores = model.score(histories(split, "test", maxlen))  # (U, N+1)
    a, b = scores[:, COLD_A].mean(1), scores[:, COLD_B].mean(1)
    in_a = torch.arange(len(scores)) % 2 == 0  # users alternate between the groups
    return float(torch.where(in_a, a > b, b > a).float().mean())


def test_trained_vectors_place_cold_items_in_their_users_group(monkeypatch):
    data = two_groups()
    import recattn_lessons.items.text as text
    monkeypatch.setattr(text, "item_text_embeddings", lambda data, encoder, progress: group_vectors())
    cfg = quick(item_features=("text-tfidf",))
    assert isinstance(build_model(cfg, data).content, ContentProjection)
    result = run(cfg, data)
    model = result.model.eval()
    assert _share_placed_in_group(model, result.split, cfg.maxlen) >= 0.9
    with torch.no_grad():  # the cause: give the cold items each other's content, and they swap places
        v = model.content.vectors
        v[COLD_A + COLD_B] = v[COLD_B + COLD_A].clone()
    assert _share_placed_in_group(model, result.split, cfg.maxlen) <= 0.1
