"""The reference attention equals PyTorch's own, and obeys its invariants."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from recattn_lessons.attention import (
    AdditiveScore,
    MultiHeadAttention,
    MultiplicativeScore,
    attend,
    causal_mask,
    dot_scores,
    padding_mask,
    scaled_dot_product_attention,
    scaled_dot_scores,
    softmax,
)

TOL = dict(atol=1e-10, rtol=0)


def random_case(seed, mask_p=0.3):
    """Random batch/head dims, Lq != Lk, d_k != d_v, float64, a random mask."""
    g = torch.Generator().manual_seed(seed)
    B, H = (int(x) for x in torch.randint(1, 4, (2,), generator=g))
    Lq, Lk, dk, dv = (int(x) for x in torch.randint(1, 9, (4,), generator=g))
    q = torch.randn(B, H, Lq, dk, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, Lk, dk, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, Lk, dv, generator=g, dtype=torch.float64)
    mask = torch.rand(B, 1, Lq, Lk, generator=g) > mask_p  # broadcast over heads
    return q, k, v, mask


@pytest.mark.parametrize("seed", range(20))
def test_equals_pytorch_sdpa_without_mask(seed):
    q, k, v, _ = random_case(seed)
    out, weights = scaled_dot_product_attention(q, k, v)
    assert out.shape == q.shape[:-1] + v.shape[-1:]
    assert weights.shape == q.shape[:-1] + k.shape[-2:-1]
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL)


@pytest.mark.parametrize("seed", range(20))
def test_equals_pytorch_sdpa_with_mask_and_scale(seed):
    q, k, v, mask = random_case(seed)
    live = mask.any(-1).expand(q.shape[:-1])  # rows with at least one key
    for scale in (None, 0.37):
        out, _ = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        torch.testing.assert_close(out[live], ref[live], **TOL)


def test_brute_force_loops():
    q, k, v, mask = random_case(3, mask_p=0.2)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    B, H, Lq, dk = q.shape
    for b in range(B):
        for h in range(H):
            for i in range(Lq):
                allowed = [j for j in range(k.shape[2]) if mask[b, 0, i, j]]
                s = {j: float(q[b, h, i] @ k[b, h, j]) / math.sqrt(dk) for j in allowed}
                z = sum(math.exp(x) for x in s.values())
                expect = sum((math.exp(s[j]) / z) * v[b, h, j] for j in allowed) if allowed else 0 * v[b, h, 0]
                torch.testing.assert_close(out[b, h, i], expect, **TOL)
                for j in range(k.shape[2]):
                    w = math.exp(s[j]) / z if j in s else 0.0
                    assert weights[b, h, i, j].item() == pytest.approx(w, abs=1e-12)


def test_fully_masked_row_is_zero_not_nan():
    q, k, v, _ = random_case(5)
    mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool)
    mask[0] = False  # query 0 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (weights[..., 0, :] == 0).all() and (out[..., 0, :] == 0).all()


def test_softmax_is_stable_and_matches_torch():
    x = torch.tensor([[1000.0, 999.0, -1000.0], [1.0, 2.0, 3.0]])
    torch.testing.assert_close(softmax(x), torch.softmax(x, -1))
    assert torch.isfinite(softmax(x)).all()
    assert (softmax(torch.full((2, 3), float("-inf"))) == 0).all()
    y = torch.randn(3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(softmax(y, dim=1), torch.softmax(y, 1), **TOL)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    big=st.sampled_from([1.0, 30.0, 1e4]),
    p=st.floats(0.0, 1.0),
)
def test_weight_properties(seed, big, p):
    """Non-negative, rows sum to 1 (0 if fully masked), masked entries exactly 0."""
    q, k, v, mask = random_case(seed, mask_p=p)
    _, w = scaled_dot_product_attention(q * big, k, v, mask=mask)
    assert torch.isfinite(w).all()
    assert (w >= 0).all()
    assert (w.masked_select(~mask.expand_as(w)) == 0).all()
    sums = w.sum(-1)
    expected = mask.any(-1).expand_as(sums).double()
    torch.testing.assert_close(sums, expected, atol=1e-9, rtol=0)


def test_equals_nn_multiheadattention():
    torch.manual_seed(0)
    D, H, B, Lq, Lk = 12, 3, 2, 5, 7
    ref = nn.MultiheadAttention(D, H, batch_first=True).double().eval()
    mine = MultiHeadAttention(D, H).double().load_from_torch(ref).eval()
    x = torch.randn(B, Lq, D, dtype=torch.float64)
    mem = torch.randn(B, Lk, D, dtype=torch.float64)
    key_ok = torch.ones(B, Lk, dtype=torch.bool)
    key_ok[1, -3:] = False  # padding in the second sequence
    out_ref, w_ref = ref(x, mem, mem, key_padding_mask=~key_ok, average_attn_weights=False)
    out, w = mine(x, mem, mem, mask=key_ok[:, None, None, :])
    torch.testing.assert_close(out, out_ref, **TOL)
    torch.testing.assert_close(w, w_ref, **TOL)
    # causal self-attention
    causal = causal_mask(Lq)
    out_ref, _ = ref(x, x, x, attn_mask=~causal)
    out, _ = mine(x, mask=causal)
    torch.testing.assert_close(out, out_ref, **TOL)
    # the fused path gives the same output
    out_fused, w_none = mine(x, mask=causal, fused=True)
    assert w_none is None
    torch.testing.assert_close(out_fused, out_ref, **TOL)


def test_scoring_functions():
    torch.manual_seed(1)
    q, k = torch.randn(2, 4, 6), torch.randn(2, 5, 6)
    torch.testing.assert_close(dot_scores(q, k), torch.einsum("bid,bjd->bij", q, k))
    torch.testing.assert_close(scaled_dot_scores(q, k), dot_scores(q, k) / math.sqrt(6))
    mult = MultiplicativeScore(d_q=6, d_k=3)
    k3 = torch.randn(2, 5, 3)
    W = mult.W.weight  # (d_q, d_k)
    torch.testing.assert_close(mult(q, k3), torch.einsum("bid,de,bje->bij", q, W, k3))
    add = AdditiveScore(d_q=6, d_k=3, d_hidden=8)
    s = add(q, k3)
    assert s.shape == (2, 4, 5)
    i, j = 2, 3
    manual = add.v.weight @ torch.tanh(add.W_q.weight @ q[1, i] + add.W_k.weight @ k3[1, j])
    torch.testing.assert_close(s[1, i, j], manual.squeeze())
    out, w = attend(s, torch.randn(2, 5, 7))
    assert out.shape == (2, 4, 7) and torch.allclose(w.sum(-1), torch.ones(2, 4))


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    lengths = torch.tensor([2, 0, 4])
    assert padding_mask(lengths, 4).tolist() == [
        [True, True, False, False], [False] * 4, [True] * 4]
    assert padding_mask(lengths, 4, side="left").tolist() == [
        [False, False, True, True], [False] * 4, [True] * 4]
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        padding_mask(torch.tensor([5]), 4)


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((5,), (3, 3), (3, 3)), r"q has shape \(5\).*at least 2 dims"),
        (((1, 5), (3, 3), (3, 3)), r"q has shape \(1, 5\) and k has shape \(3, 3\).*d_k"),
        (((2, 3), (4, 3), (5, 2)), r"k has shape \(4, 3\) and v has shape \(5, 2\)"),
        (((2, 4, 3), (3, 4, 3), (3, 4, 2)), r"leading .* do not broadcast"),
    ],
)
def test_shape_errors_name_both_shapes(shapes, match):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(q, k, v)


def test_mask_errors():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with pytest.raises(TypeError, match="boolean.*True = may attend"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 3\).*\(2, 3, 5\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 3)
