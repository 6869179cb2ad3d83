"""Known-buggy answers are rejected, and catalogued mistakes are named.

Each bug is written the way a learner would write it (not copied from the
catalogue), so a match shows the catalogue recognises real code.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from recattn_lessons import attention as A
from recattn_lessons.grading import EXERCISES, check, exercises_beyond, exercises_generative, exercises_serving
from recattn_lessons.grading import exercises_semantic

NEG = float("-inf")


def attn(q, k, v, mask=None, *, scale=None, dim=-1, fill=NEG, after=False, invert=False,
         kT=True, value=None, naive=False, zero_empty=True):
    """A learner-style attention with switches for each bug."""
    scale = math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ (k.transpose(-2, -1) if kT else k)) / scale
    if mask is not None and not after:
        s = s.masked_fill(mask if invert else ~mask, fill)
    if naive:
        w = torch.exp(s) / torch.exp(s).sum(dim, keepdim=True)
    else:
        w = torch.softmax(s, dim=dim)
    if zero_empty:
        w = w.nan_to_num(0.0)
    if mask is not None and after:
        w = w * mask
    return w @ (v if value is None else value(k, v)), w


def additive_bug(tanh=True, dim=-1, zero_empty=True):
    def additive(q, k, v, W_q, W_k, w_v, mask=None):
        h = (q @ W_q).unsqueeze(-2) + (k @ W_k).unsqueeze(-3)  # (..., Lq, Lk, h)
        s = (torch.tanh(h) if tanh else h) @ w_v
        if mask is not None:
            s = s.masked_fill(~mask, NEG)
        w = torch.softmax(s, dim)
        w = w.nan_to_num(0.0) if zero_empty else w
        return w @ v, w
    return additive


def sdpa_bug(**kw):
    return lambda q, k, v, mask=None: attn(q, k, v, mask, **kw)


SDPA_BUGS = [
    (sdpa_bug(scale=1.0), "missing scaling"),
    (lambda q, k, v, mask=None: attn(q, k, v, mask, scale=math.sqrt(v.shape[-1])),
     "sqrt(d_v) instead of sqrt(d_k)"),
    (sdpa_bug(dim=-2), "softmax over the wrong axis"),
    (sdpa_bug(after=True), "mask applied after the softmax"),
    (sdpa_bug(invert=True), "inverted polarity"),
    (sdpa_bug(kT=False), "K not transposed"),
    (sdpa_bug(value=lambda k, v: k), "K used in place of V"),
    (sdpa_bug(zero_empty=False), "NaN for a fully-masked row"),
    (sdpa_bug(fill=-1e9), "uniform weights on a fully-masked row"),
    (sdpa_bug(naive=True), "overflows on large logits"),
]


def mha_variant(bug):
    class MHA(A.MultiHeadAttention):
        def __init__(self, d_model, n_heads):
            super().__init__(d_model, n_heads)
            if bug == "unused":
                self.extra = nn.Linear(d_model, d_model)  # created, never used

        def forward(self, query, key=None, value=None, mask=None):
            if bug == "unused":
                return super().forward(query, key, value, mask)
            B, Lq, D = query.shape
            H, Dh = self.n_heads, D // self.n_heads
            if bug == "noT":
                split = lambda x: x.reshape(B, H, -1, Dh)  # noqa: E731
            else:
                split = lambda x: x.view(B, -1, H, Dh).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
            scale = {"noscale": 1.0, "d_model": math.sqrt(D)}.get(bug, math.sqrt(Dh))
            o, w = attn(q, k, v, mask, scale=scale)
            o = o.reshape(B, Lq, D) if bug == "noT" else o.transpose(1, 2).reshape(B, Lq, D)
            return (o if bug == "no_wo" else self.W_o(o)), w
    return MHA


def din_bug(kind):
    def din(history, target, mask, mlp):
        t = target[:, None, :].expand_as(history)
        d = t - history if kind == "t-h" else history - t
        s = mlp(torch.cat([history, t, d, history * t], -1)).squeeze(-1)
        if kind != "nomask":
            s = s.masked_fill(~mask, NEG)
        w = torch.softmax(s, -1).nan_to_num(0.0)
        return (w[:, :, None] * history).sum(1), w
    return din


def pool_bug(kind):
    def pool(inputs, query, mask=None):
        if kind == "ignore_query":  # the source's SimpleAttention idea: no query at all
            m = torch.ones(inputs.shape[:2], dtype=torch.bool) if mask is None else mask
            w = m.to(inputs.dtype) / m.sum(1, keepdim=True).clamp_min(1)
        else:
            s = (inputs @ query[:, :, None]).squeeze(-1)
            if mask is not None:
                s = s.masked_fill(~mask, NEG)
            w = torch.softmax(s, -1).nan_to_num(0.0)
        return (w[:, :, None] * inputs).sum(1), w
    return pool


def text_bug(kind):
    class Text(nn.Module):
        def __init__(self, vocab_size, d_model, n_classes, pad_id=0):
            super().__init__()
            self.pad_id = pad_id
            self.embed = nn.Embedding(vocab_size, d_model)
            self.query = nn.Parameter(torch.randn(d_model))
            self.head = nn.Linear(d_model, n_classes)
            if kind == "unused":
                self.proj = nn.Linear(d_model, d_model)

        def forward(self, tokens):
            h = self.embed(tokens)
            s = h @ self.query
            if kind != "nomask":
                s = s.masked_fill(tokens == self.pad_id, NEG)
            w = torch.softmax(s, -1).nan_to_num(0.0)
            return self.head((w[:, :, None] * h).sum(1)), w
    return Text


def patch_bug(kind):
    class Patch(nn.Module):
        def __init__(self, image_size, patch_size, in_channels, d_model, n_classes):
            super().__init__()
            if kind != "no_check" and image_size % patch_size:
                raise ValueError("bad size")
            n = (image_size // patch_size) ** 2
            self.embed = nn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)
            self.pos = nn.Parameter(torch.randn(n, d_model))
            self.query = nn.Parameter(torch.randn(d_model))
            self.head = nn.Linear(d_model, n_classes)

        def forward(self, images):
            z = self.embed(images).flatten(2).transpose(1, 2) + self.pos
            src = self.pos.expand_as(z) if kind == "position_only" else z
            w = torch.softmax(src @ self.query, -1)
            return self.head((w[:, :, None] * z).sum(1)), w
    return Patch


def mm_bug(kind):
    class MM(nn.Module):
        def __init__(self, d_text, d_image, d_model):
            super().__init__()
            self.text, self.image = nn.Linear(d_text, d_model), nn.Linear(d_image, d_model)

        def forward(self, ht, hi, m, ct, ci):
            h = self.text(ht) + self.image(hi)
            c = self.text(ct) + (0 if kind == "text_only_candidates" else self.image(ci))
            mask = None if kind == "nomask" else m[:, None, :]
            u, w = A.scaled_dot_product_attention(c, h, h, mask)
            return (u * c).sum(-1), w
    return MM


def simple_bug(kind):
    class Simple(nn.Module):
        def __init__(self, hidden_dim):
            super().__init__()
            self.attn = nn.Linear(hidden_dim, 1)
            self.W_q = nn.Linear(hidden_dim, hidden_dim)

        def forward(self, input_seq, query_seq, mask=None):
            if kind == "source":  # the source's scores: no query involved
                s = self.attn(input_seq).squeeze(2)[:, None, :].expand(-1, query_seq.shape[1], -1)
                s = s + 0 * self.W_q(query_seq).sum()
            else:
                s = self.W_q(query_seq) @ input_seq.transpose(1, 2) + 0 * self.attn.bias
            if mask is not None and kind != "nomask":
                s = s.masked_fill(~mask[:, None, :], NEG)
            w = torch.softmax(s, -1).nan_to_num(0.0)
            return w @ input_seq, w
    return Simple


def score_bug(kind):
    def score_all(history, mask, candidates):
        q = candidates[None].expand(history.shape[0], -1, -1)
        scale = 1.0 if kind == "noscale" else math.sqrt(history.shape[-1])
        s = q @ history.transpose(1, 2) / scale
        if kind != "nomask":
            s = s.masked_fill(~mask[:, None, :], NEG)
        w = torch.softmax(s, -1).nan_to_num(0.0)
        return ((w @ history) * q).sum(-1)
    return score_all


def fuse_bug(kind):
    def fuse(ut, ui, it, ii):
        st, si = ut @ it.T, ui @ ii.T
        if kind != "noscale":
            st, si = st / math.sqrt(ut.shape[-1]), si / math.sqrt(ui.shape[-1])
        w = torch.softmax(st, -1) + torch.softmax(si, -1)
        w = w if kind == "sum" else w / 2
        return w, w @ torch.cat((it, ii), 1)
    return fuse


def keras_bug(kind):
    def fixed(Q, K, V):
        s = Q @ K.transpose(-2, -1) / (1.0 if kind == "noscale" else math.sqrt(Q.shape[-1]))
        w = torch.softmax(s, -1)
        if kind == "elementwise":
            return (w * V).sum(1), w
        return w @ (K if kind == "k_as_v" else V), w
    return fixed


BUGS = [
    ("softmax", lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim, keepdim=True), "overflows"),
    ("softmax", lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum(dim, keepdim=True),
     "global maximum"),
    ("softmax", lambda x, dim=-1: torch.softmax(x, -1), "dim argument is ignored"),
    *[("scaled_dot_product_attention", fn, name) for fn, name in SDPA_BUGS],
    ("causal_padding_mask", lambda lengths, L, side="left": ~(A.causal_mask(L)[None]
     & A.padding_mask(lengths, L, side)[:, None, :]), "inverted polarity"),
    ("causal_padding_mask", lambda lengths, L, side="left": A.causal_mask(L).T[None]
     & A.padding_mask(lengths, L, side)[:, None, :], "looks at the future"),
    ("causal_padding_mask", lambda lengths, L, side="left": A.causal_mask(L)[None]
     & A.padding_mask(lengths, L, side)[:, :, None], "padding applied to the queries"),
    ("causal_padding_mask", lambda lengths, L, side="left": (A.causal_mask(L)[None]
     & A.padding_mask(lengths, L, side)[:, None, :]).float(), "boolean tensor"),
    ("additive_attention", additive_bug(tanh=False), "tanh missing"),
    ("additive_attention", additive_bug(dim=-2), "softmax over the wrong axis"),
    ("additive_attention", additive_bug(zero_empty=False), "NaN for a fully-masked row"),
    ("multi_head_attention", mha_variant("noscale"), "missing scaling"),
    ("multi_head_attention", mha_variant("d_model"), "sqrt(d_model) instead of sqrt(d_head)"),
    ("multi_head_attention", mha_variant("noT"), "heads split without a transpose"),
    ("multi_head_attention", mha_variant("no_wo"), "output projection W_o missing"),
    ("multi_head_attention", mha_variant("unused"), "extra.weight, extra.bias received no gradient"),
    ("hit_rate_at_k", lambda r, k: (r <= k).float().mean().item(), "rank <= k"),
    ("hit_rate_at_k", lambda r, k: float((r < k).sum()), "count instead of mean"),
    ("ndcg_at_k", lambda r, k: torch.where(r < k, 1 / torch.log2(r.double() + 1), 0.0).mean().item(),
     "off by one in the log"),
    ("ndcg_at_k", lambda r, k: torch.where(r < k, 1 / torch.log(r.double() + 2), 0.0).mean().item(),
     "natural log"),
    ("ndcg_at_k", lambda r, k: torch.where(r <= k, 1 / torch.log2(r.double() + 2), 0.0).mean().item(),
     "off by one in the rank"),
    ("din_attention_pooling", din_bug("t-h"), "t - h instead of h - t"),
    ("din_attention_pooling", din_bug("nomask"), "padding not masked"),
    ("weighted_sum_attention", pool_bug("ignore_query"), "the query is ignored"),
    ("weighted_sum_attention", pool_bug("noscale"), "missing scaling"),
    ("sequence_attention_scores", lambda x, y, W: (x @ W @ y.transpose(1, 2)).transpose(1, 2),
     "result transposed"),
    ("sequence_attention_scores", lambda x, y, W: x @ y.transpose(1, 2), "W ignored"),
    ("text_attention_classifier", text_bug("nomask"), "padded / masked positions"),
    ("text_attention_classifier", text_bug("unused"), "proj.weight, proj.bias received no gradient"),
    ("patch_attention_classifier", patch_bug("no_check"), "should raise ValueError"),
    ("patch_attention_classifier", patch_bug("position_only"), "identical patch weights"),
    ("multimodal_attention_recommender", mm_bug("nomask"), "padded"),
    ("multimodal_attention_recommender", mm_bug("text_only_candidates"), "image features"),
    ("batched_candidate_scoring", score_bug("noscale"), "missing scaling"),
    ("batched_candidate_scoring", score_bug("nomask"), "padding not masked"),
    ("bug_keras_attention", keras_bug("k_as_v"), "K used in place of V"),
    ("bug_keras_attention", keras_bug("noscale"), "use_scale=False"),
    ("bug_keras_attention", keras_bug("elementwise"), "elementwise product"),
    ("bug_simple_attention", simple_bug("source"), "the query is ignored"),
    ("bug_simple_attention", simple_bug("nomask"), "masked positions get non-zero weight"),
    ("bug_attention_scores", lambda i, q: torch.bmm(i, q.transpose(1, 2)), "result transposed"),
    ("bug_attention_scores", lambda i, q: q @ i.transpose(1, 2) / math.sqrt(i.shape[-1]),
     "scaled scores"),
    ("bug_multimodal_fusion", fuse_bug("sum"), "weights sum to 2"),
    ("bug_multimodal_fusion", fuse_bug("noscale"), "missing per-modality scaling"),
]


@pytest.mark.parametrize("exercise_id, fn, named", BUGS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BUGS)])
def test_known_bug_is_rejected_and_named(exercise_id, fn, named):
    res = check(exercise_id, fn)
    assert not res.passed and res.attempted, res.message
    if named is not None:
        assert named in res.message, res.message


def test_every_exercise_has_at_least_two_buggy_versions():
    elsewhere = {ex.id for mod in (exercises_serving, exercises_generative, exercises_beyond,  # tested in
                                   exercises_semantic)  # test_grading_mutants_serving.py / _generative.py
                 for ex in mod.EXERCISES}  # / _beyond.py / _semantic.py
    counts = {eid: sum(b[0] == eid for b in BUGS) for eid in EXERCISES if eid not in elsewhere}
    assert min(counts.values()) >= 2, counts


def test_attention_catalogue_covers_every_required_mistake():
    text = " ".join(m.name for m in __import__(
        "recattn_lessons.grading.mistakes", fromlist=["ATTENTION"]).ATTENTION)
    for needed in ("missing scaling", "sqrt(d_v)", "wrong axis", "after the softmax",
                   "inverted polarity", "K not transposed", "K used in place of V",
                   "overflows", "fully-masked row"):
        assert needed in text
