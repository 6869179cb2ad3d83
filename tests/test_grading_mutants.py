"""Mutation test of the grader (issue 8): for every exercise, realistic wrong
programs fail with a message that names the mistake, and correct-but-unusual
programs (einsum, loops, float64 inside, zero init, no bias, called under
``torch.no_grad()``) pass.

Each program is written the way a learner would write it, not copied from the
grader's catalogue. ``WRONG[eid]`` holds (program, words the message must
contain); ``RIGHT[eid]`` holds programs. The README's exercise section
tabulates how many of each are tried (``counts()``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mutant_catalogue import Catalogue, catalogue_tests
from recattn_lessons.grading import exercises_attention, exercises_bugs, exercises_recsys

NEG = float("-inf")
CAT = Catalogue()
WRONG, RIGHT, wrong, right = CAT.wrong, CAT.right, CAT.add_wrong, CAT.add_right


def counts() -> dict[str, tuple[int, int]]:
    """Function exercise id -> (wrong programs, correct programs) tried (modules, the
    serving and the generative families: the sibling files test_grading_mutants_*.py)."""
    return CAT.counts([ex.id for mod in (exercises_attention, exercises_recsys, exercises_bugs)
                       for ex in mod.EXERCISES if not ex.takes_class])


# --------------------------------------------------------------------------
# 01 softmax
# --------------------------------------------------------------------------
E = "softmax"
wrong(E, "overflows")(lambda x, dim=-1: x.exp() / x.exp().sum(dim, keepdim=True))
wrong(E, "dim argument is ignored")(lambda x, dim=-1: torch.softmax(x, -1))
wrong(E, "global maximum")(lambda x, dim=-1: (x - x.max()).exp() / (x - x.max()).exp().sum(dim, keepdim=True))
wrong(E, "without keepdim")(lambda x, dim=-1: (x - x.amax(dim)).exp() / (x - x.amax(dim)).exp().sum(dim, keepdim=True))


@wrong(E, "in place")
def _sm_inplace(x, dim=-1):
    x -= x.amax(dim, keepdim=True)
    return x.exp() / x.exp().sum(dim, keepdim=True)


wrong(E, "dtype")(lambda x, dim=-1: torch.softmax(x.double(), dim))
wrong(E, "shape")(lambda x, dim=-1: torch.softmax(x, dim).squeeze())
right(E)(lambda x, dim=-1: torch.exp(x - torch.logsumexp(x, dim, keepdim=True)))
right(E)(lambda x, dim=-1: torch.softmax(x.double(), dim).to(x.dtype))


@right(E)
def _sm_loop(x, dim=-1):  # slice by slice along the other axes
    xt = x.movedim(dim, -1)
    rows = [torch.softmax(r, -1) for r in xt.reshape(-1, xt.shape[-1])]
    return torch.stack(rows).reshape(xt.shape).movedim(-1, dim)


# --------------------------------------------------------------------------
# 02 scaled dot-product attention (and a learner-style switchable version)
# --------------------------------------------------------------------------
def attn(q, k, v, mask=None, *, scale=None, dim=-1, fill=NEG, after=False, invert=False,
         kT=True, values=None, naive=False, zero_empty=True):
    scale = math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ (k.transpose(-2, -1) if kT else k)) / scale
    if mask is not None and not after:
        s = s.masked_fill(mask if invert else ~mask, fill)
    w = torch.exp(s) / torch.exp(s).sum(dim, keepdim=True) if naive else torch.softmax(s, dim)
    if zero_empty:
        w = w.nan_to_num(0.0)
    if mask is not None and after:
        w = w * mask
    return w @ (v if values is None else values(k, v)), w


def sdpa(**kw):
    return lambda q, k, v, mask=None: attn(q, k, v, mask, **kw)


E = "scaled_dot_product_attention"
for kw, words in [({"scale": 1.0}, "missing scaling"), ({"dim": -2}, "wrong axis"),
                  ({"after": True}, "after the softmax"), ({"invert": True}, "inverted"),
                  ({"kT": False}, "not transposed"), ({"values": lambda k, v: k}, "K used in place of V"),
                  ({"zero_empty": False}, "NaN"), ({"fill": -1e9}, "uniform weights"),
                  ({"fill": 0.0}, "0 instead of -inf"), ({"naive": True}, "overflows")]:
    wrong(E, words)(sdpa(**kw))
wrong(E, "sqrt(d_v)")(lambda q, k, v, mask=None: attn(q, k, v, mask, scale=math.sqrt(v.shape[-1])))
wrong(E, "wrong order")(lambda q, k, v, mask=None: attn(q, k, v, mask)[::-1])
wrong(E, "squeeze")(lambda q, k, v, mask=None: tuple(t.squeeze() for t in attn(q, k, v, mask)))


@wrong(E, "in place")
def _sdpa_inplace(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    return attn(q, k, v, mask, scale=1.0)


wrong(E, "dtype")(lambda q, k, v, mask=None: attn(q.double(), k.double(), v.double(), mask))


@wrong(E, "returned None")
def _sdpa_no_return(q, k, v, mask=None):  # computed, never returned
    out, w = attn(q, k, v, mask)  # noqa: F841


wrong(E, "got ndarray")(lambda q, k, v, mask=None: tuple(t.numpy() for t in attn(q, k, v, mask)))


@right(E)
def _sdpa_einsum(q, k, v, mask=None):
    s = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, NEG)
    w = torch.softmax(s, -1)
    w = torch.where(torch.isnan(w), torch.zeros_like(w), w)
    return torch.einsum("...qk,...kd->...qd", w, v), w


@right(E)
def _sdpa_f64(q, k, v, mask=None):  # computes in float64, returns the input dtype
    out, w = attn(q.double(), k.double(), v.double(), mask)
    return out.to(q.dtype), w.to(q.dtype)


@right(E)
def _sdpa_nograd(q, k, v, mask=None):
    with torch.no_grad():
        return attn(q, k, v, mask)


# --------------------------------------------------------------------------
# 03 causal + padding masks
# --------------------------------------------------------------------------
def masks(lengths, L, side="left", *, causal="tril", pad_on="keys", flip_side=False, invert=False,
          as_int=False):
    pos = torch.arange(L)
    s = {"left": "right", "right": "left"}[side] if flip_side else side
    real = pos[None, :] >= (L - lengths)[:, None] if s == "left" else pos[None, :] < lengths[:, None]
    c = {"tril": torch.ones(L, L).tril(), "triu": torch.ones(L, L).triu(),
         "strict": torch.ones(L, L).tril(-1), "none": torch.ones(L, L)}[causal].bool()
    p = {"keys": real[:, None, :], "queries": real[:, :, None], "none": torch.ones(len(lengths), 1, L,
                                                                                dtype=torch.bool)}[pad_on]
    m = c[None] & p
    m = ~m if invert else m
    return m.long() if as_int else m


E = "causal_padding_mask"
for kw, words in [({"invert": True}, "inverted"), ({"causal": "triu"}, "future"),
                  ({"causal": "strict"}, "diagonal"), ({"pad_on": "queries"}, "queries"),
                  ({"flip_side": True}, "wrong side"), ({"causal": "none"}, "causal part missing"),
                  ({"pad_on": "none"}, "padding part missing"), ({"as_int": True}, "boolean")]:
    wrong(E, words)(lambda lengths, L, side="left", kw=kw: masks(lengths, L, side, **kw))
wrong(E, "squeeze")(lambda lengths, L, side="left": masks(lengths, L, side).squeeze())
wrong(E, "got ndarray")(lambda lengths, L, side="left": masks(lengths, L, side).numpy())


@wrong(E, "lacks a `return`")
def _mask_no_return(lengths, L, side="left"):
    mask = masks(lengths, L, side)  # noqa: F841
right(E)(lambda lengths, L, side="left": masks(lengths, L, side))


@right(E)
def _mask_loop(lengths, L, side="left"):
    out = torch.zeros(len(lengths), L, L, dtype=torch.bool)
    for b, n in enumerate(lengths.tolist()):
        for i in range(L):
            for j in range(i + 1):
                out[b, i, j] = j >= L - n if side == "left" else j < n
    return out


@right(E)
def _mask_flip(lengths, L, side="left"):  # right padding built by flipping left padding
    if side == "left":
        real = torch.arange(L).flip(0)[None, :] < lengths[:, None]
    else:
        real = torch.arange(L)[None, :] < lengths[:, None]
    return torch.ones(L, L, dtype=torch.bool).tril()[None] & real[:, None, :]


# --------------------------------------------------------------------------
# 04 additive attention
# --------------------------------------------------------------------------
def additive(*, tanh=True, dim=-1, fill=NEG, zero_empty=True, after=False, invert=False,
             swap=False):
    def fn(q, k, v, W_q, W_k, w_v, mask=None):
        h = (q @ W_q).unsqueeze(-2) + (k @ W_k).unsqueeze(-3)  # (..., Lq, Lk, h)
        s = (torch.tanh(h) if tanh else h) @ w_v
        if mask is not None and not after:
            s = s.masked_fill(mask if invert else ~mask, fill)
        w = torch.softmax(s, dim)
        w = w.nan_to_num(0.0) if zero_empty else w
        if mask is not None and after:
            w = w * mask
        return (w, w @ v) if swap else (w @ v, w)
    return fn


E = "additive_attention"
for kw, words in [({"tanh": False}, "tanh missing"), ({"dim": -2}, "wrong axis"),
                  ({"after": True}, "after the softmax"), ({"invert": True}, "inverted"),
                  ({"zero_empty": False}, "NaN"), ({"fill": -1e9}, "uniform weights"),
                  ({"fill": 0.0}, "0 instead of -inf"), ({"swap": True}, "wrong order")]:
    wrong(E, words)(additive(**kw))


@right(E)
def _add_einsum(q, k, v, W_q, W_k, w_v, mask=None):
    h = torch.tanh(torch.einsum("...qd,dh->...qh", q, W_q)[..., :, None, :]
                   + torch.einsum("...kd,dh->...kh", k, W_k)[..., None, :, :])
    s = torch.einsum("...qkh,h->...qk", h, w_v)
    if mask is not None:
        s = s.masked_fill(~mask, NEG)
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return torch.einsum("...qk,...kd->...qd", w, v), w


@right(E)
def _add_loop(q, k, v, W_q, W_k, w_v, mask=None):  # one key at a time
    cols = [torch.tanh(q @ W_q + (k[..., j, :] @ W_k).unsqueeze(-2)) @ w_v
            for j in range(k.shape[-2])]
    s = torch.stack(cols, -1)
    if mask is not None:
        s = s.masked_fill(~mask, NEG)
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return w @ v, w


right(E)(lambda *a, **kw: _nograd(additive(), *a, **kw))


def _nograd(fn, *a, **kw):
    with torch.no_grad():
        return fn(*a, **kw)


# --------------------------------------------------------------------------
# 06 HR@K and NDCG@K
# --------------------------------------------------------------------------
E = "hit_rate_at_k"
wrong(E, "rank <= k")(lambda r, k: (r <= k).float().mean().item())
wrong(E, "rank + 1 < k")(lambda r, k: (r + 1 < k).float().mean().item())
wrong(E, "count instead of mean")(lambda r, k: (r < k).sum().item())
wrong(E, "returned None")(lambda r, k: print((r < k).float().mean().item()))  # printed, not returned
wrong(E, "len(ranks) + 1")(lambda r, k: (r < k).float().mean().item() * len(r) / (len(r) + 1))
wrong(E, "rank < k - 1")(lambda r, k: (r < k - 1).float().mean().item())
wrong(E, "any() instead of the mean")(lambda r, k: float((r < k).any()))
right(E)(lambda r, k: (r < k).sum().item() / len(r))
right(E)(lambda r, k: sum(int(x) < k for x in r) / len(r))
right(E)(lambda r, k: (r.double() < k).double().mean())

E = "ndcg_at_k"
ndcg = lambda r, k, f=torch.log2, s=2: torch.where(r < k, 1 / f(r.double() + s), 0.0).mean().item()  # noqa: E731
wrong(E, "log2(rank + 1)")(lambda r, k: ndcg(r, k, s=1))
wrong(E, "natural log")(lambda r, k: ndcg(r, k, torch.log))
wrong(E, "log10")(lambda r, k: ndcg(r, k, torch.log10))
wrong(E, "no cut-off")(lambda r, k: (1 / torch.log2(r.double() + 2)).mean().item())
wrong(E, "rank <= k")(lambda r, k: torch.where(r <= k, 1 / torch.log2(r.double() + 2), 0.0).mean().item())
wrong(E, "reciprocal rank")(lambda r, k: torch.where(r < k, 1 / (r.double() + 1), 0.0).mean().item())
wrong(E, "ideal DCG")(lambda r, k: ndcg(r, k) / sum(1 / math.log2(i + 2) for i in range(k)))
wrong(E, "hits only")(lambda r, k: (1 / torch.log2(r[r < k].double() + 2)).mean().item())
right(E)(lambda r, k: sum(1 / math.log2(int(x) + 2) for x in r if x < k) / len(r))
right(E)(lambda r, k: torch.where(r < k, math.log(2) / torch.log(r.double() + 2), 0.0).mean())
right(E)(lambda r, k: ndcg(r, k) / 1.0)


# --------------------------------------------------------------------------
# 07 DIN pooling
# --------------------------------------------------------------------------
def din(*, diff="h-t", soft=True, fill=NEG, mask_on=True, after=False, invert=False, dim=1,
        zero_empty=True, squeeze_all=False):
    def fn(history, target, mask, mlp):
        t = target[:, None, :].expand_as(history)
        d = history - t if diff == "h-t" else t - history
        s = mlp(torch.cat([history, t, d, history * t], -1)).squeeze(-1)
        if not soft:
            w = s * mask
        else:
            if mask_on and not after:
                s = s.masked_fill(mask if invert else ~mask, fill)
            w = torch.softmax(s, dim)
            w = w.nan_to_num(0.0) if zero_empty else w
            if after:
                w = w * mask
        pooled = (w[..., None] * history).sum(-2)
        return (pooled.squeeze(), w.squeeze()) if squeeze_all else (pooled, w)
    return fn


E = "din_attention_pooling"
for kw, words in [({"diff": "t-h"}, "t - h"), ({"soft": False}, "softmax skipped"),
                  ({"mask_on": False}, "padding not masked"), ({"after": True}, "after the softmax"),
                  ({"invert": True}, "inverted"), ({"dim": 0}, "over the batch"),
                  ({"zero_empty": False}, "NaN"), ({"fill": -1e9}, "uniform weights"),
                  ({"fill": 0.0}, "0 instead of -inf"), ({"squeeze_all": True}, "squeeze")]:
    wrong(E, words)(din(**kw))


@right(E)
def _din_loop(history, target, mask, mlp):  # one user at a time
    outs, ws = [], []
    for b in range(history.shape[0]):
        h, t = history[b], target[b].expand_as(history[b])
        s = mlp(torch.cat([h, t, h - t, h * t], -1))[:, 0].masked_fill(~mask[b], NEG)
        w = torch.softmax(s, 0) if mask[b].any() else torch.zeros_like(s)
        outs.append(w @ h)
        ws.append(w)
    return torch.stack(outs), torch.stack(ws)


@right(E)
def _din_einsum(history, target, mask, mlp):
    t = target.unsqueeze(1).expand_as(history)
    s = mlp(torch.cat([history, t, history - t, history * t], -1)).squeeze(-1)
    w = torch.softmax(s.masked_fill(~mask, NEG), -1).nan_to_num(0.0)
    return torch.einsum("bl,bld->bd", w, history), w


right(E)(lambda *a: _nograd(din(), *a))


# --------------------------------------------------------------------------
# 08 weighted-sum attention pooling
# --------------------------------------------------------------------------
def pool(*, use_query=True, scale=True, fill=NEG, after=False, invert=False, zero_empty=True,
         naive=False, squeeze_all=False):
    def fn(inputs, query, mask=None):
        if use_query:
            s = (inputs @ query[:, :, None])
            s = (s.squeeze() if squeeze_all else s.squeeze(-1)) / (math.sqrt(query.shape[-1]) if scale else 1)
        else:
            s = torch.zeros(inputs.shape[:2], dtype=inputs.dtype)
        if mask is not None and not after:
            s = s.masked_fill(mask if invert else ~mask, fill)
        w = s.exp() / s.exp().sum(-1, keepdim=True) if naive else torch.softmax(s, -1)
        w = w.nan_to_num(0.0) if zero_empty else w
        if mask is not None and after:
            w = w * mask
        return (w[..., None] * inputs).sum(-2), w
    return fn


E = "weighted_sum_attention"
for kw, words in [({"use_query": False}, "query is ignored"), ({"scale": False}, "missing scaling"),
                  ({"after": True}, "after the softmax"), ({"invert": True}, "inverted"),
                  ({"zero_empty": False}, "NaN"), ({"naive": True}, "overflows"),
                  ({"fill": -1e9}, "uniform weights"), ({"fill": 0.0}, "0 instead of -inf"),
                  ({"squeeze_all": True}, "squeeze")]:
    wrong(E, words)(pool(**kw))
right(E)(lambda i, q, mask=None: tuple(t[:, 0] for t in attn(q[:, None], i, i, None if mask is None
                                                            else mask[:, None])))


@right(E)
def _pool_einsum(inputs, query, mask=None):
    s = torch.einsum("bld,bd->bl", inputs, query) / query.shape[-1] ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, NEG)
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return torch.einsum("bl,bld->bd", w, inputs), w


right(E)(lambda *a: _nograd(pool(), *a))


# --------------------------------------------------------------------------
# 09 bilinear scores between two sequences
# --------------------------------------------------------------------------
E = "sequence_attention_scores"
wrong(E, "result transposed")(lambda x, y, W: (x @ W @ y.transpose(-2, -1)).transpose(-2, -1))
wrong(E, "W transposed")(lambda x, y, W: x @ W.T @ y.transpose(-2, -1))
wrong(E, "W ignored")(lambda x, y, W: x @ y.transpose(-2, -1))
wrong(E, "scaled scores")(lambda x, y, W: x @ W @ y.transpose(-2, -1) / math.sqrt(x.shape[-1]))
wrong(E, "squeeze")(lambda x, y, W: (x @ W @ y.transpose(-2, -1)).squeeze())
wrong(E, "dtype")(lambda x, y, W: x.double() @ W.double() @ y.double().transpose(-2, -1))


@wrong(E, "in place")
def _bil_inplace(x, y, W):
    y.transpose_(1, 2)  # "saves a copy"
    return x @ W @ y


right(E)(lambda x, y, W: torch.einsum("bid,de,bje->bij", x, W, y))
right(E)(lambda x, y, W: torch.bmm(x @ W, y.transpose(1, 2)))
right(E)(lambda x, y, W: torch.stack([x[b] @ W @ y[b].T for b in range(x.shape[0])]))


# --------------------------------------------------------------------------
# 13 batched candidate scoring
# --------------------------------------------------------------------------
def score(*, scale=True, mask_on=True, fill=NEG, invert=False, zero_empty=True, after=False,
          squeeze_all=False):
    def fn(history, mask, candidates):
        s = torch.einsum("bld,nd->bnl", history, candidates) / (math.sqrt(history.shape[-1]) if scale else 1)
        m = mask[:, None, :]
        if mask_on and not after:
            s = s.masked_fill(m if invert else ~m, fill)
        w = torch.softmax(s, -1)
        w = w.nan_to_num(0.0) if zero_empty else w
        if after:
            w = w * m
        out = ((w @ history) * candidates[None]).sum(-1)
        return out.squeeze() if squeeze_all else out
    return fn


E = "batched_candidate_scoring"
for kw, words in [({"scale": False}, "missing scaling"), ({"mask_on": False}, "padding not masked"),
                  ({"invert": True}, "inverted"), ({"zero_empty": False}, "NaN"),
                  ({"fill": -1e9}, "uniform weights"), ({"fill": 0.0}, "0 instead of -inf"),
                  ({"after": True}, "after the softmax"), ({"squeeze_all": True}, "squeeze")]:
    wrong(E, words)(score(**kw))


@right(E)
def _score_loop(history, mask, candidates):  # the one-by-one loop the exercise replaces
    cols = []
    for c in candidates:
        s = (history @ c / math.sqrt(c.shape[0])).masked_fill(~mask, NEG)
        w = torch.softmax(s, -1).nan_to_num(0.0)
        cols.append((w[..., None] * history).sum(1) @ c)
    return torch.stack(cols, 1)


right(E)(lambda h, m, c: score()(h.double(), m, c.double()).to(h.dtype))
right(E)(lambda *a: _nograd(score(), *a))


# --------------------------------------------------------------------------
# 14 the tf.keras snippet, fixed
# --------------------------------------------------------------------------
E = "bug_keras_attention"
wrong(E, "K used in place of V")(lambda Q, K, V: attn(Q, K, K))
wrong(E, "missing scaling")(lambda Q, K, V: attn(Q, K, V, scale=1.0))
wrong(E, "elementwise")(lambda Q, K, V: ((attn(Q, K, V)[1] * V).sum(1), attn(Q, K, V)[1]))
wrong(E, "wrong order")(lambda Q, K, V: attn(Q, K, V)[::-1])
wrong(E, "dtype")(lambda Q, K, V: attn(Q.double(), K.double(), V.double()))
wrong(E, "softmax over the wrong axis")(lambda Q, K, V: attn(Q, K, V, dim=-2))
wrong(E, "squeeze")(lambda Q, K, V: tuple(t.squeeze() for t in attn(Q, K, V)))


@wrong(E, "in place")
def _keras_inplace(Q, K, V):
    Q.div_(math.sqrt(Q.shape[-1]))
    return attn(Q, K, V, scale=1.0)


right(E)(lambda Q, K, V: (torch.einsum("qk,kd->qd" if Q.dim() == 2 else "bqk,bkd->bqd",
                                       F.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), -1), V),
                          F.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), -1)))
right(E)(lambda Q, K, V: _nograd(attn, Q, K, V))
right(E)(lambda Q, K, V: tuple(t.to(Q.dtype) for t in attn(Q.double(), K.double(), V.double())))


# --------------------------------------------------------------------------
# 16 attention_scores, fixed
# --------------------------------------------------------------------------
E = "bug_attention_scores"
wrong(E, "result transposed")(lambda i, q: torch.bmm(i, q.transpose(1, 2)))
wrong(E, "scaled scores")(lambda i, q: torch.bmm(q, i.transpose(1, 2)) / math.sqrt(i.shape[-1]))
wrong(E, "only the first query")(lambda i, q: torch.bmm(q[:, :1], i.transpose(1, 2)))
wrong(E, "squeeze")(lambda i, q: torch.bmm(q, i.transpose(1, 2)).squeeze())
wrong(E, "dtype")(lambda i, q: torch.bmm(q.double(), i.double().transpose(1, 2)))


@wrong(E, "in place")
def _dot_inplace(i, q):
    return torch.bmm(q, i.transpose_(1, 2))


right(E)(lambda i, q: torch.einsum("bqd,bld->bql", q, i))
right(E)(lambda i, q: (q.unsqueeze(2) * i.unsqueeze(1)).sum(-1))
right(E)(lambda i, q: torch.matmul(q, i.permute(0, 2, 1)))


# --------------------------------------------------------------------------
# 17 multimodal fusion, fixed
# --------------------------------------------------------------------------
def fuse(*, scale=True, combine="mean", dim=-1, swap=False):
    def fn(ut, ui, it, ii):
        st = ut @ it.T / (math.sqrt(ut.shape[-1]) if scale else 1)
        si = ui @ ii.T / (math.sqrt(ui.shape[-1]) if scale else 1)
        if combine == "scores":
            w = torch.softmax(st + si, dim)
        else:
            w = torch.softmax(st, dim) + torch.softmax(si, dim)
            w = w / 2 if combine == "mean" else w
        fused = w @ torch.cat((it, ii), 1)
        return (fused, w) if swap else (w, fused)
    return fn


E = "bug_multimodal_fusion"
for kw, words in [({"combine": "sum"}, "sum to 2"), ({"scale": False}, "scaling"),
                  ({"combine": "scores"}, "one softmax"), ({"dim": 0}, "over the users"),
                  ({"swap": True}, "wrong order")]:
    wrong(E, words)(fuse(**kw))
wrong(E, "dtype")(lambda ut, ui, it, ii: fuse()(ut.double(), ui.double(), it.double(), ii.double()))


@wrong(E, "in place")
def _fuse_inplace(ut, ui, it, ii):
    ut /= math.sqrt(ut.shape[-1])
    ui /= math.sqrt(ui.shape[-1])
    return fuse(scale=False)(ut, ui, it, ii)


@right(E)
def _fuse_loop(ut, ui, it, ii):  # one user at a time, explicit alpha = 0.5
    ws = []
    for b in range(ut.shape[0]):
        a = torch.softmax(it @ ut[b] / ut.shape[-1] ** 0.5, 0)
        c = torch.softmax(ii @ ui[b] / ui.shape[-1] ** 0.5, 0)
        ws.append(0.5 * a + (1 - 0.5) * c)
    w = torch.stack(ws)
    return w, torch.cat((w @ it, w @ ii), 1)


right(E)(lambda *a: _nograd(fuse(), *a))
right(E)(lambda ut, ui, it, ii: tuple(t.to(ut.dtype) for t in fuse()(ut.double(), ui.double(),
                                                                        it.double(), ii.double())))


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


def test_every_exercise_has_enough_programs():
    few = {e: c for e, c in counts().items() if c[0] < 6 or c[1] < 3}
    assert not few, f"exercises with < 6 wrong or < 3 correct programs: {few}"


(test_wrong_program_fails_and_names_the_mistake, test_correct_program_passes,
 test_correct_program_passes_under_no_grad) = catalogue_tests(CAT)
