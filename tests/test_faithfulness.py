"""Attribution methods and the planted-cause check (lesson 06)."""

import pytest
import torch
from torch import nn

from recattn_lessons import faithfulness as F
from recattn_lessons.data.synthetic import final_histories, make_planted
from recattn_lessons.models import build


@pytest.fixture
def one_thread():
    """Small models train fastest on one thread when the CPU is shared."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny():
    data = make_planted(n_users=40, seed=5)
    torch.manual_seed(0)
    model = build("sasrec", data.n_items, maxlen=20, d_model=16, n_heads=2, n_blocks=2,
                  dropout=0.0).eval()
    h, target, cause = final_histories(data, 20)
    return model, h, target, cause


class DotOfSum(nn.Module):
    """score(h, c) = (sum_j e(h_j)) . e(c): gradient x input at j is e(h_j) . e(c)."""

    def __init__(self, n=30, d=8):
        super().__init__()
        self.emb = nn.Embedding(n, d, padding_idx=0)

    def score(self, history, candidates):
        return (self.emb(history).sum(1)[:, None] * self.emb(candidates)).sum(-1)


def test_top1_hit_rate_counts_hits_ties_and_never_padding():
    h = torch.tensor([[0, 5, 6, 7], [3, 4, 5, 6]])
    cause = torch.tensor([2, 0])
    peaked = torch.tensor([[0.0, 0.1, 0.8, 0.1], [0.7, 0.1, 0.1, 0.1]])
    assert F.top1_hit_rate(peaked, cause, h) == 1.0
    assert F.top1_hit_rate(peaked.flip(1), cause, h) == 0.0
    flat = torch.ones(2, 4)
    assert F.top1_hit_rate(flat, cause, h) == pytest.approx(F.uniform_top1(h))
    assert F.uniform_top1(h) == pytest.approx((1 / 3 + 1 / 4) / 2)
    padding_wins = torch.tensor([[9.0, 0.1, 0.5, 0.1], [0.7, 0.1, 0.1, 0.1]])
    assert F.top1_hit_rate(padding_wins, cause, h) == 1.0  # padding is ignored
    with pytest.raises(ValueError, match="match history"):
        F.top1_hit_rate(flat[:, :3], cause, h)


def test_remove_position_shifts_right_and_pads():
    h = torch.tensor([[0, 0, 1, 2, 3, 4]] * 3)
    out = F.remove_position(h, torch.tensor([2, 4, 5]))
    assert out.tolist() == [[0, 0, 0, 2, 3, 4], [0, 0, 0, 1, 2, 4], [0, 0, 0, 1, 2, 3]]


def test_occlusion_is_the_score_drop_without_the_item(tiny):
    model, h, target, _ = tiny
    drops = F.occlusion(model, h[:5], target[:5])  # (5, L)
    assert drops.shape == (5, h.shape[1])
    assert (drops[h[:5] == 0] == 0).all()
    u, j = 2, h.shape[1] - 3
    with torch.no_grad():
        full = model.score(h[u:u + 1], target[u:u + 1, None])
        without = model.score(F.remove_position(h[u:u + 1], torch.tensor([j])), target[u:u + 1, None])
    assert drops[u, j].item() == pytest.approx((full - without).item(), abs=1e-5)
    many = F.occlusion(model, h[:5], torch.stack([target[:5], h[:5, -1]], 1))  # (5, 2, L)
    assert torch.allclose(many[:, 0], drops, atol=1e-5)


def test_gradient_x_input_matches_the_closed_form():
    torch.manual_seed(0)
    model = DotOfSum()
    h = torch.tensor([[0, 3, 4, 5], [1, 2, 2, 9]])
    target = torch.tensor([7, 8])
    gxi = F.gradient_x_input(model, h, target)
    expected = (model.emb(h) * model.emb(target)[:, None]).sum(-1)
    assert torch.allclose(gxi, expected.detach(), atol=1e-6)
    assert model.emb.weight.grad is None  # parameters' gradients left untouched


def test_attention_views_are_distributions_over_real_items(tiny):
    model, h, target, _ = tiny
    for a in (F.attention_attribution(model, h), F.attention_attribution(model, h, 0, 1),
              F.attention_rollout(model, h), F.attention_rollout(model, h, residual=False)):
        assert a.shape == h.shape
        assert torch.allclose(a.sum(1), torch.ones(len(h)), atol=1e-5)
        assert (a[h == 0] == 0).all()
    out = F.attributions(model, h, target)
    assert set(out) == {"attention", "attention_layer1", "attention_layer2", "rollout",
                        "gradient", "gradient_signed", "occlusion"}
    assert torch.equal(out["attention"], out["attention_layer2"])
    with pytest.raises(ValueError, match="LongTensor"):
        F.attention_attribution(model, h[0])


def test_attention_finds_the_planted_cause_3x_better_than_chance(one_thread):
    """The issue's acceptance test, at quick-mode scale (a few seconds)."""
    r = F.run_check(F.CheckConfig.quick(), progress=False)
    assert r["effect_hit1"] > 0.5, f"the model did not learn the planted rule: {r}"
    assert r["attention_top1"] >= 3 * r["uniform_top1"], r
    assert r["occlusion_top1"] >= 3 * r["uniform_top1"], r
    assert 0.04 < r["uniform_top1"] < 0.09  # 1 / (13..19 real items)


def test_with_two_blocks_the_last_layer_stops_pointing_at_the_cause(one_thread):
    """Where attention misleads: layer 1 finds the cause, layer 2 looks at itself."""
    r = F.run_check(F.CheckConfig.quick(n_blocks=2), progress=False)
    assert r["attention_layer1_top1"] >= 3 * r["uniform_top1"], r
    assert r["attention_layer2_top1"] < r["attention_layer1_top1"] / 2, r


def test_the_check_trains_and_explains_hstu_too(one_thread):
    """Lesson 08 asks the same question of HSTU's pointwise attention."""
    cfg = F.CheckConfig.quick(model="hstu", epochs=1, n_eval_users=100)
    model = F.train_planted(cfg, make_planted(cfg.data), progress=False)
    assert model.__class__.__name__ == "HSTU" and not model.training
    assert next(model.parameters()).dtype == torch.float64
    r = F.run_check(cfg, progress=False, model=model)
    assert {"effect_hit1", "attention_top1", "occlusion_top1", "uniform_top1"} <= r.keys()
    assert all(0.0 <= v <= 1.0 for k, v in r.items() if k.endswith("_top1") or k == "effect_hit1")
