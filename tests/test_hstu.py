"""HSTU (Zhai et al. 2024): causality, padding, the layer formula, losses, learning.

Checked in float64 on a tiny batch with every term non-zero: LayerNorm
gains and shifts, the f1 / f2 biases and the relative (position and time)
biases are randomised, so dropping a term, leaking the future or reading
padding changes a number these tests compare.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recattn_lessons.data import Batch, SeenIndex, iterate_batches, sliding_windows
from recattn_lessons.models.base import full_softmax_loss
from recattn_lessons.models.hstu import HSTU, HSTUConfig, hstu_mask
from recattn_lessons.models.losses import gbce_beta, gbce_loss, sampled_softmax_loss
from tiny_batch import D, K, L, N, NEG, X, Y

NEG = torch.where(NEG == Y[..., None], NEG % N + 1, NEG)  # unseen-like: never the target
TS = torch.cumsum(torch.randint(1, 5000, (3, L), generator=torch.Generator().manual_seed(2)), 1)  # (B, L)


def make(maxlen=L + 2, **kw):
    """A float64 model in eval mode whose every parameter is non-zero."""
    torch.manual_seed(0)
    m = HSTU(HSTUConfig(N, maxlen=maxlen, d_model=D, n_heads=2, **kw)).double().eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(1 + 0.5 * torch.randn(mod.weight.shape, generator=g, dtype=torch.float64))
                mod.bias.copy_(0.5 * torch.randn(mod.bias.shape, generator=g, dtype=torch.float64))
        for blk in m.blocks:
            for lin in (blk.f1, blk.f2):
                lin.bias.copy_(0.3 * torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
            for p in (blk.rab.pos, blk.rab.time):
                if p is not None:
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return m


def pad_left(t, n):
    return torch.cat([torch.zeros((t.shape[0], n) + t.shape[2:], dtype=t.dtype), t], 1)


def batch(x=X, y=Y, neg=NEG):
    return Batch(x, y, torch.arange(len(x)), neg)


# ---------------------------------------------------------------- the layer, one (i, j) at a time

def slow_hstu(m, x, timestamps=None):
    """The published layer with Python loops over users, queries i and keys j."""
    cfg, H = m.cfg, m.cfg.n_heads
    out = torch.zeros(x.shape + (D,), dtype=torch.float64)
    weights = [torch.zeros(x.shape[0], H, x.shape[1], x.shape[1], dtype=torch.float64) for _ in m.blocks]
    for b in range(x.shape[0]):
        real = [int(t) != 0 for t in x[b]]
        h = [m.item_emb.weight[int(t)] if r else torch.zeros(D, dtype=torch.float64) for t, r in zip(x[b], real)]
        for n_blk, blk in enumerate(m.blocks):
            dq, dv = blk.dq, blk.dv
            uvqk = [F.silu(blk.f1(blk.ln_in(hi))) for hi in h]
            u = [z[:H * dv] for z in uvqk]
            v = [z[H * dv:2 * H * dv] for z in uvqk]
            q = [z[2 * H * dv:2 * H * dv + H * dq] for z in uvqk]
            k = [z[2 * H * dv + H * dq:] for z in uvqk]
            new = []
            for i in range(len(h)):
                if not real[i]:
                    new.append(torch.zeros(D, dtype=torch.float64))
                    continue
                av = torch.zeros(H * dv, dtype=torch.float64)
                for j in range(i + 1):
                    if not real[j]:
                        continue
                    rab = blk.rab.pos[min(i - j, blk.rab.R)]
                    if timestamps is not None:
                        dt = max(abs(int(timestamps[b, i]) - int(timestamps[b, j])), 1)
                        rab = rab + blk.rab.time[min(int(math.log(dt) / 0.301), len(blk.rab.time) - 1)]
                    for hd in range(H):
                        qs, vs = slice(hd * dq, (hd + 1) * dq), slice(hd * dv, (hd + 1) * dv)
                        a = F.silu(q[i][qs] @ k[j][qs] + rab) / cfg.maxlen
                        weights[n_blk][b, hd, i, j] = a
                        av[vs] += a * v[j][vs]
                new.append(h[i] + blk.f2(blk.ln_attn(av) * u[i]))
            h = new
        for i in range(len(h)):
            out[b, i] = m.ln(h[i]) if real[i] else 0.0
    return out, weights


@pytest.mark.parametrize("kw", [{}, {"max_rel_distance": 2}, {"attn_dim": 3, "linear_dim": 5}],
                         ids=["default", "clipped-rab", "own-dims"])
def test_vectorised_hstu_equals_the_per_pair_loop(kw):
    m = make(**kw)
    with torch.no_grad():
        H, attn = m(X, return_attention=True)
        ref, ref_w = slow_hstu(m, X)
    torch.testing.assert_close(H, ref, atol=1e-12, rtol=0)
    for w, rw in zip(attn, ref_w):
        torch.testing.assert_close(w, rw, atol=1e-12, rtol=0)
    assert H[X != 0].abs().min() > 0 and len(attn) == 2


def test_vectorised_time_bias_equals_the_per_pair_loop():
    m = make(n_time_buckets=64)
    with torch.no_grad():
        H, attn = m(X, return_attention=True, timestamps=TS)
        ref, ref_w = slow_hstu(m, X, TS)
        torch.testing.assert_close(H, ref, atol=1e-12, rtol=0)
        for w, rw in zip(attn, ref_w):
            torch.testing.assert_close(w, rw, atol=1e-12, rtol=0)
        assert not torch.allclose(H, m(X))  # the time bias changes the output
        torch.testing.assert_close(m(X, timestamps=TS + 12345), H, atol=1e-12, rtol=0)  # only gaps count
        torch.testing.assert_close(m.score(X, timestamps=TS), H[:, -1] @ m.item_emb.weight.T,
                                   atol=1e-12, rtol=0)


def test_rab_and_the_one_over_n_normalisation_matter():
    """1/n is maxlen (Meta's fixed padded length), not the real length; rab is used."""
    m = make()
    with torch.no_grad():
        _, attn = m(X, return_attention=True)
        m2 = make(maxlen=2 * (L + 2))  # double n, then m's weights
        state = m.state_dict()
        for key, value in m2.state_dict().items():
            value[:len(state[key])] = state[key]  # rab.pos: m2 has more offsets, X uses < L
        _, attn2 = m2(X, return_attention=True)
        torch.testing.assert_close(attn2[0], attn[0] / 2, atol=1e-12, rtol=0)
        before = m(X)
        m.blocks[0].rab.pos.add_(1.0)
        assert not torch.allclose(m(X), before)


# ---------------------------------------------------------------- causality and padding

def test_future_items_never_change_past_outputs():
    m = make()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for t in range(3, L - 1):
            x2 = X.clone()
            x2[:, t + 1:] = torch.randint(1, N + 1, (3, L - t - 1), generator=g)
            a, b = m(X), m(x2)
            torch.testing.assert_close(b[:, :t + 1], a[:, :t + 1], atol=1e-12, rtol=0)
            assert not torch.allclose(b[:, t + 1:], a[:, t + 1:])  # the change is seen


def test_future_timestamps_never_change_past_outputs():
    m = make(n_time_buckets=64)
    ts2 = TS.clone()
    ts2[:, -1] += 10 ** 6
    with torch.no_grad():
        a, b = m(X, timestamps=TS), m(X, timestamps=ts2)
    torch.testing.assert_close(b[:, :-1], a[:, :-1], atol=1e-12, rtol=0)
    assert not torch.allclose(b[:, -1], a[:, -1])


@pytest.mark.parametrize("kw", [{}, {"max_rel_distance": 1}], ids=["default", "clipped-rab"])
def test_more_left_padding_changes_no_real_output_score_or_loss(kw):
    m = make(maxlen=L + 4, **kw)
    with torch.no_grad():
        for n in (1, 4):
            torch.testing.assert_close(m(pad_left(X, n))[:, n:], m(X), atol=1e-12, rtol=0)
            torch.testing.assert_close(m.score(pad_left(X, n)), m.score(X), atol=1e-12, rtol=0)
        short = m.score(X[:1, 3:])  # no padding at all
        torch.testing.assert_close(short, m.score(X[:1]), atol=1e-12, rtol=0)
    for loss in ("ce", "sampled", "gbce"):
        m = make(maxlen=L + 4, loss=loss, **kw)
        with torch.no_grad():
            a = m.loss(batch())
            b = m.loss(batch(pad_left(X, 2), pad_left(Y, 2), pad_left(NEG, 2)))
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_padding_never_leaks():
    """Padding states are 0, and real outputs ignore the padding embedding row."""
    m = make()
    with torch.no_grad():
        H = m(X)
        assert (H[X == 0] == 0).all()
        m.item_emb.weight[0] = 5.0  # a corrupted padding row must not matter
        torch.testing.assert_close(m(X), H, atol=0, rtol=0)


def test_attention_is_pointwise_not_a_softmax():
    m = make()
    with torch.no_grad():
        _, attn = m(X, return_attention=True)
    allowed = hstu_mask(X).expand_as(attn[0])  # (B, H, L, L)
    for w in attn:
        assert w.shape == (3, 2, L, L)
        assert (w[~allowed] == 0).all()  # future, padding keys and padding queries
        assert (w.triu(1) == 0).all()
        real_rows = w.sum(-1)[(X != 0)[:, None, :].expand(-1, 2, -1)]
        assert (real_rows - 1).abs().max() > 0.5  # rows do not sum to 1
    assert any((w < 0).any() for w in attn)  # SiLU goes negative, a softmax never does


def test_return_attention_leaves_the_output_unchanged():
    m = make().train()  # with dropout
    torch.manual_seed(1)
    plain = m(X)
    torch.manual_seed(1)
    hidden, attn = m(X, return_attention=True)
    assert torch.equal(plain, hidden) and len(attn) == 2


# ---------------------------------------------------------------- interface

def test_score_shapes_and_candidates_agree():
    m = make()
    cand = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 16]])
    with torch.no_grad():
        full, part = m.score(X), m.score(X, cand)
        assert full.shape == (3, N + 1) and part.shape == (3, 4)
        torch.testing.assert_close(part, full.gather(1, cand))
        torch.testing.assert_close(full, m(X)[:, -1] @ m.item_emb.weight.T, atol=1e-12, rtol=0)
    assert full[:, 1:].std(-1).min() > 0


def test_bad_input_raises_clear_errors():
    m = make()
    with pytest.raises(ValueError, match="unsqueeze"):
        m.score(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="int64"):
        m.score(X.float())
    with pytest.raises(ValueError, match="item ids must lie in 0..16"):
        m.score(torch.tensor([[0, 17]]))
    with pytest.raises(ValueError, match="candidates must be"):
        m.score(X, torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="maxlen"):
        m(torch.ones(1, L + 3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_time_buckets"):
        m(X, timestamps=TS)
    with pytest.raises(ValueError, match="timestamps must match"):
        make(n_time_buckets=4)(X, timestamps=TS[:, 1:])
    with pytest.raises(ValueError, match="needs batch.negatives"):
        make(loss="sampled").loss(batch(neg=None))
    with pytest.raises(ValueError, match="loss must be"):
        HSTUConfig(N, loss="bce")
    with pytest.raises(ValueError, match="divisible"):
        HSTUConfig(N, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="n_negatives must be >= 1"):
        HSTUConfig(N, loss="gbce", n_negatives=0)
    with pytest.raises(ValueError, match="gbce_t"):
        HSTUConfig(N, loss="gbce", gbce_t=2.0)


def test_n_negatives_tells_the_training_loop_what_to_sample():
    assert HSTU(HSTUConfig(N)).n_negatives == 0
    assert HSTU(HSTUConfig(N, loss="ce", n_negatives=7)).n_negatives == 0
    assert HSTU(HSTUConfig(N, loss="sampled")).n_negatives == 100
    assert HSTU(HSTUConfig(N, loss="gbce", n_negatives=5)).n_negatives == 5
    seqs = [torch.randperm(N, generator=torch.Generator().manual_seed(u))[:10] + 1 for u in range(5)]
    w = sliding_windows(seqs, L)
    for loss in ("sampled", "gbce"):
        m = make(loss=loss, n_negatives=4)
        b = next(iterate_batches(w, 4, torch.Generator().manual_seed(0), SeenIndex(seqs, N), m.n_negatives))
        assert b.negatives.shape == (4, L, 4)
        assert torch.isfinite(m.loss(b))


# ---------------------------------------------------------------- losses and learning

def test_each_loss_is_the_documented_one():
    with torch.no_grad():
        m = make()
        torch.testing.assert_close(m.loss(batch()), full_softmax_loss(m(X), Y, m.item_emb.weight))
        m = make(loss="sampled", n_negatives=K)
        ref = sampled_softmax_loss(m(X), Y, m.item_emb.weight, NEG, logq=-math.log(N))
        torch.testing.assert_close(m.loss(batch()), ref)
        # by hand: the uniform logQ shifts every negative logit by log(N / K)
        h, E, has = m(X), m.item_emb.weight, Y > 0
        s = torch.cat([(h * E[Y]).sum(-1)[..., None],
                       (h[:, :, None] * E[NEG]).sum(-1) + math.log(N / K)], -1)[has]  # (M, 1+K)
        torch.testing.assert_close(m.loss(batch()), (torch.logsumexp(s, 1) - s[:, 0]).mean(), atol=1e-12, rtol=0)
        m = make(loss="gbce", n_negatives=K, gbce_t=0.5)
        beta = gbce_beta(K, N, 0.5)
        assert beta == pytest.approx(1 - 0.5 * (1 - K / (N - 1)))
        torch.testing.assert_close(m.loss(batch()), gbce_loss(m(X), Y, m.item_emb.weight, NEG, beta))


@pytest.mark.parametrize("loss", ["ce", "sampled", "gbce"])
def test_training_lowers_the_loss(loss):
    """One Adam step lowers the loss; 40 cut it by 30% at least (no dropout)."""
    torch.manual_seed(0)
    m = HSTU(HSTUConfig(N, maxlen=L, d_model=16, n_heads=2, dropout=0.0, loss=loss, n_negatives=K))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    b = batch()
    first = m.loss(b)
    assert first.dim() == 0 and torch.isfinite(first)
    first.backward()
    opt.step()
    assert m.loss(b) < first
    for _ in range(40):
        opt.zero_grad()
        m.loss(b).backward()
        opt.step()
    assert m.loss(b) < 0.7 * first
    assert (m.item_emb.weight[0] == 0).all()  # the padding row never trains


def test_float64_end_to_end():
    m = HSTU(HSTUConfig(N, maxlen=L, d_model=D, n_time_buckets=8, loss="sampled", n_negatives=K)).double()
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert m(X, timestamps=TS).dtype == torch.float64 and m.score(X).dtype == torch.float64
    for loss in ("ce", "sampled", "gbce"):
        m = HSTU(HSTUConfig(N, maxlen=L, d_model=D, loss=loss, n_negatives=K)).double().train()
        out = m.loss(batch())
        assert out.dtype == torch.float64
        out.backward()
        assert all(p.grad is None or p.grad.dtype == torch.float64 for p in m.parameters())
        assert m.blocks[0].f1.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- added by mutation testing

def test_time_buckets_use_the_absolute_gap_and_clamp_into_the_last_bucket():
    """floor(log(max(|dt|, 1)) / 0.301), capped at n_buckets (Meta's clamp), symmetric in i, j."""
    from recattn_lessons.models.hstu import time_buckets

    ts = torch.tensor([[0, 1, 3, 100, 10 ** 6]])
    got = time_buckets(ts, 4)
    assert got.shape == (1, 5, 5)
    for i in range(5):
        for j in range(5):
            dt = max(abs(int(ts[0, i]) - int(ts[0, j])), 1)
            assert int(got[0, i, j]) == min(int(math.log(dt) / 0.301), 4), (i, j)
    assert int(got.max()) == 4 and torch.equal(got, got.transpose(1, 2))


def test_few_time_buckets_and_unsorted_timestamps_equal_the_per_pair_loop():
    """Gaps past the last bucket share it, and an earlier time at a later position
    (clock skew, merged logs) still counts by |t_i - t_j|."""
    m = make(n_time_buckets=4)
    ts = TS[:, torch.randperm(L, generator=torch.Generator().manual_seed(5))]  # not chronological
    with torch.no_grad():
        for t in (TS, ts):
            H, attn = m(X, return_attention=True, timestamps=t)
            ref, ref_w = slow_hstu(m, X, t)
            torch.testing.assert_close(H, ref, atol=1e-12, rtol=0)
            for w, rw in zip(attn, ref_w):
                torch.testing.assert_close(w, rw, atol=1e-12, rtol=0)


def test_dropout_acts_on_the_embeddings_and_on_ln_av_times_u_before_f2():
    """Train mode, p = 0.5: about half the entries reaching block 0 and each f2 are
    exactly 0 on real positions; A V itself (the LayerNorm's input) is never dropped."""
    m = make(dropout=0.5).train()
    seen = {}

    def keep(name):
        return lambda mod, args: seen.__setitem__(name, args[0][X != 0].detach())

    m.blocks[0].ln_in.register_forward_pre_hook(keep("block input"))
    for n, blk in enumerate(m.blocks):
        blk.f2.register_forward_pre_hook(keep(f"f2 input {n}"))
        blk.ln_attn.register_forward_pre_hook(keep(f"av {n}"))
    torch.manual_seed(0)
    m(X)
    assert len(seen) == 1 + 2 * len(m.blocks)
    for name, t in seen.items():
        zeros = float((t == 0).double().mean())
        if name.startswith("av"):
            assert zeros == 0, name
        else:
            assert 0.3 < zeros < 0.7, (name, zeros)
