"""Lesson 07's streaming attention equals the materialised one (float64)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from recattn_lessons.attention import causal_mask, scaled_dot_product_attention, softmax
from recattn_lessons.online_softmax import (
    band_mask,
    linear_attention,
    local_window_attention,
    online_softmax,
    tiled_attention,
)

TOL = dict(atol=1e-12, rtol=0)
BLOCKS = (1, 2, 3, 7, 16, 64)  # 1, odd sizes, and sizes above every length used below


def qkv(seed, B=2, H=3, Lq=11, Lk=13, dk=8, dv=5):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Lq, dk, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, Lk, dk, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, Lk, dv, generator=g, dtype=torch.float64)
    return q, k, v, g


# ---------------------------------------------------------------- online softmax
@pytest.mark.parametrize("block_size", BLOCKS)
def test_online_softmax_equals_torch(block_size):
    g = torch.Generator().manual_seed(block_size)
    x = 4 * torch.randn(3, 4, 13, generator=g, dtype=torch.float64)
    torch.testing.assert_close(online_softmax(x, block_size), torch.softmax(x, -1), **TOL)


def test_online_softmax_rescales_instead_of_overflowing():
    # the max grows block after block; exp(1000) alone would be inf
    x = torch.linspace(0, 1000, 37, dtype=torch.float64).repeat(2, 1)  # (2, 37)
    out = online_softmax(x, block_size=4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, -1), **TOL)
    torch.testing.assert_close(online_softmax(x - 1000, 5), out, **TOL)  # shift invariant


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 4), L=st.integers(1, 20), block_size=st.integers(1, 25),
       p_inf=st.sampled_from([0.0, 0.3, 0.8, 1.0]), seed=st.integers(0, 2**16))
def test_online_softmax_with_minus_inf(rows, L, block_size, p_inf, seed):
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(rows, L, generator=g, dtype=torch.float64)
    x = x.masked_fill(torch.rand(rows, L, generator=g) < p_inf, float("-inf"))
    out = online_softmax(x, block_size)
    assert (out[torch.isinf(x)] == 0).all()
    alive = ~torch.isinf(x).all(-1)  # rows with at least one finite entry
    torch.testing.assert_close(out[alive], torch.softmax(x[alive], -1), **TOL)
    assert (out[~alive] == 0).all()  # fully -inf rows: zeros, not NaN
    torch.testing.assert_close(out, softmax(x), **TOL)  # the course's reference softmax


# ---------------------------------------------------------------- tiled attention
@pytest.mark.parametrize("block_size", BLOCKS)
def test_tiled_equals_sdpa(block_size):
    q, k, v, g = qkv(block_size)
    mask = torch.rand(2, 1, 11, 13, generator=g) > 0.4  # broadcast over heads
    mask[..., 0] = True  # every row keeps a key: SDPA's output is defined
    out = tiled_attention(q, k, v, mask, block_size=block_size)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)
    plain = tiled_attention(q, k, v, block_size=block_size)
    torch.testing.assert_close(plain, F.scaled_dot_product_attention(q, k, v), **TOL)


@pytest.mark.parametrize("block_size", (1, 4, 13, 40))
def test_tiled_fully_masked_rows_are_zero(block_size):
    q, k, v, g = qkv(100 + block_size)
    mask = torch.rand(2, 3, 11, 13, generator=g) > 0.5
    mask[0, 1, 3] = False  # one query sees nothing
    mask[1, :, 7, :] = False
    out = tiled_attention(q, k, v, mask, block_size=block_size)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, mask)[0], **TOL)
    assert (out[0, 1, 3] == 0).all() and (out[1, :, 7] == 0).all()


@pytest.mark.parametrize("block_size", (1, 5, 32))
def test_tiled_causal_and_key_padding(block_size):
    q, k, v, _ = qkv(7, Lq=12, Lk=12)
    out = tiled_attention(q, k, v, causal_mask(12), block_size=block_size)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)
    keys = torch.ones(2, 12, dtype=torch.bool)
    keys[0, 9:] = False
    pad = keys[:, None, None, :]  # (B, 1, 1, Lk)
    torch.testing.assert_close(tiled_attention(q, k, v, pad, block_size=block_size),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=pad), **TOL)
    per_query = torch.ones(12, 1, dtype=torch.bool)  # Lk dim of size 1: broadcast over keys
    per_query[4] = False
    torch.testing.assert_close(tiled_attention(q, k, v, per_query, block_size=block_size),
                               scaled_dot_product_attention(q, k, v, per_query)[0], **TOL)


def test_tiled_scale_and_broadcast_batch():
    q, k, v, _ = qkv(3, B=1, H=1)
    q = q.expand(2, 3, -1, -1)  # (2, 3, Lq, dk) against k, v of batch (1, 1)
    out = tiled_attention(q, k, v, block_size=4, scale=0.3)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.3), **TOL)


# ---------------------------------------------------------------- linear attention
def linear_brute_force(q, k, v, causal, eps=1e-6):
    """The O(L^2) definition: A_ij = phi(q_i) . phi(k_j), rows normalised."""
    phi = lambda x: F.elu(x) + 1  # noqa: E731
    A = phi(q) @ phi(k).transpose(-2, -1)  # (..., Lq, Lk)
    if causal:
        A = A * causal_mask(q.shape[-2])
    return (A @ v) / (A.sum(-1, keepdim=True) + eps)


@pytest.mark.parametrize("causal", (False, True))
@pytest.mark.parametrize("seed", range(3))
def test_linear_attention_equals_its_quadratic_form(causal, seed):
    q, k, v, _ = qkv(seed, Lq=9, Lk=9 if causal else 14)
    torch.testing.assert_close(linear_attention(q, k, v, causal=causal),
                               linear_brute_force(q, k, v, causal), **TOL)


def test_linear_attention_is_not_softmax_attention():
    q, k, v, _ = qkv(5)
    gap = (linear_attention(q, k, v) - F.scaled_dot_product_attention(q, k, v)).abs().max()
    assert gap > 1e-2  # another model, not an approximation to any tolerance


def test_linear_attention_causal_first_output_is_first_value():
    q, k, v, _ = qkv(6, Lq=6, Lk=6)
    out = linear_attention(q, k, v, causal=True)
    torch.testing.assert_close(out[..., 0, :], v[..., 0, :], atol=1e-5, rtol=0)  # eps in the denominator


# ---------------------------------------------------------------- local window
def loop_band(L, window, causal):
    m = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        for j in range(L):
            m[i, j] = abs(i - j) <= window and (j <= i or not causal)
    return m


@pytest.mark.parametrize("causal", (False, True))
@pytest.mark.parametrize("window,block_size", [(0, 4), (1, 1), (3, 5), (3, 64), (30, 7)])
def test_local_window_equals_reference_with_band_mask(window, block_size, causal):
    q, k, v, _ = qkv(window + block_size, Lq=17, Lk=17)
    mask = loop_band(17, window, causal)
    assert torch.equal(band_mask(17, window, causal), mask)
    out = local_window_attention(q, k, v, window, causal=causal, block_size=block_size)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, mask)[0], **TOL)


def test_local_window_wider_than_sequence_is_full_attention():
    q, k, v, _ = qkv(8, Lq=10, Lk=10)
    torch.testing.assert_close(local_window_attention(q, k, v, 10, block_size=3),
                               F.scaled_dot_product_attention(q, k, v), **TOL)
    torch.testing.assert_close(local_window_attention(q, k, v, 10, causal=True, block_size=3),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("bad", (0, -1, 2.5, True, "8"))
def test_bad_block_size(bad):
    q, k, v, _ = qkv(0)
    for call in (lambda: online_softmax(q, bad), lambda: tiled_attention(q, k, v, block_size=bad),
                 lambda: local_window_attention(q, q, q, 2, block_size=bad)):
        with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
            call()


def test_bad_arguments_name_the_fix():
    q, k, v, _ = qkv(0)
    with pytest.raises(ValueError, match="x.double()"):
        online_softmax(torch.arange(5), 2)
    with pytest.raises(ValueError, match="window must be an integer >= 0"):
        local_window_attention(q, q, q, -1)
    with pytest.raises(ValueError, match="window must be an integer >= 0"):
        band_mask(5, 1.5)
    with pytest.raises(ValueError, match="same length"):
        local_window_attention(q, k, v, 2)  # Lq = 11, Lk = 13
    with pytest.raises(ValueError, match="causal=False"):
        linear_attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match="must broadcast"):
        tiled_attention(q, k, v, torch.ones(11, 12, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        tiled_attention(q, k, v, torch.ones(11, 13))
    with pytest.raises(ValueError, match="last"):
        tiled_attention(q, k[..., :4], v)
