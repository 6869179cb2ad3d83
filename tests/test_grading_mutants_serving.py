"""Mutation test of the grader for the serving exercises (18, 19, 20; lesson 07):
wrong programs fail with a message naming the mistake, correct-but-unusual
programs pass (a vectorized per-block combine, right-to-left blocks, float64
inside, F.scaled_dot_product_attention with and without enable_gqa, a grouped
einsum that never materialises the repeated K/V heads, no bias), also when
``check`` runs under ``torch.no_grad()``. See tests/test_grading_mutants.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mutant_catalogue import Catalogue, catalogue_tests
from recattn_lessons.grading import EXERCISES, check, exercises_serving

NEG = float("-inf")
CAT = Catalogue()
WRONG, RIGHT, wrong, right = CAT.wrong, CAT.right, CAT.add_wrong, CAT.add_right


def counts() -> dict[str, tuple[int, int]]:
    """Exercise id -> (wrong programs, correct programs) tried here."""
    return CAT.counts([e.id for e in exercises_serving.EXERCISES])


# --------------------------------------------------------------------------
# 18 online softmax: a learner-style loop with a switch per bug
# --------------------------------------------------------------------------
def online(x, block_size, *, init=NEG, rescale="ok", guard=True, final_guard=True,
           stop=None, shift=True, dtype=None):
    x = x if dtype is None else x.to(dtype)
    L = x.shape[-1]
    m = torch.full(x.shape[:-1], init, dtype=x.dtype)
    s = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for i in range(0, L if stop is None else stop(L, block_size), block_size):
        b = x[..., i:i + block_size]
        m_new = torch.maximum(m, b.amax(-1))
        c = torch.where(m_new == NEG, 0.0, m_new) if guard else m_new
        c = c if shift else torch.zeros_like(c)
        if rescale == "ok":
            s = s * torch.exp(m - c)
        elif rescale == "flipped":
            s = s * torch.exp(c - m)
        s = s + torch.exp(b - c[..., None]).sum(-1)
        m = m_new
    c = torch.where(m == NEG, 0.0, m) if guard else m
    p = torch.exp(x - (c if shift else torch.zeros_like(c))[..., None]) / s[..., None]
    p = torch.where(s[..., None] > 0, p, 0.0) if final_guard else p
    return p if dtype is None else p.to(torch.float64)


def os_(**kw):
    return lambda x, block_size: online(x, block_size, **kw)


E = "online_softmax"
for kw, words in [({"rescale": "none"}, "not rescaled"), ({"rescale": "flipped"}, "exp(m_new - m_old)"),
                  ({"init": 0.0}, "initialised to 0"), ({"guard": False}, "first block"),
                  ({"guard": False, "final_guard": False}, "first block"),
                  ({"final_guard": False}, "fully -inf row"),
                  ({"stop": lambda L, bs: L // bs * bs}, "partial block"),
                  ({"stop": lambda L, bs: L - bs + 1}, "partial block"),
                  ({"shift": False}, "overflows"), ({"dtype": torch.float32}, "float32")]:
    wrong(E, words)(os_(**kw))


@wrong(E, "exp(m_new - m_old)")
def _os_flipped_first_block(x, block_size):  # the first block seeds m, so no inf appears
    m = x[..., :block_size].amax(-1)
    s = torch.exp(x[..., :block_size] - m[..., None]).sum(-1)
    for i in range(block_size, x.shape[-1], block_size):
        b = x[..., i:i + block_size]
        m_new = torch.maximum(m, b.amax(-1))
        s = s * torch.exp(m_new - m) + torch.exp(b - m_new[..., None]).sum(-1)
        m = m_new
    return (torch.exp(x - m[..., None]) / s[..., None]).nan_to_num(0.0)


@wrong(E, "partial block")
def _os_outputs_per_full_block(x, block_size):  # a second loop writes only whole blocks
    p = online(x, block_size, stop=lambda L, bs: L // bs * bs)
    out = torch.zeros_like(x)
    for i in range(x.shape[-1] // block_size):
        out[..., i * block_size:(i + 1) * block_size] = p[..., i * block_size:(i + 1) * block_size]
    return out


@wrong(E, "normalised on its own")
def _os_local(x, block_size):
    parts = [x[..., i:i + block_size] for i in range(0, x.shape[-1], block_size)]
    return torch.cat([online(b, block_size) for b in parts], -1)


@wrong(E, "stale max")
def _os_stale(x, block_size):  # writes each block as it goes, like a half-done flash kernel
    m = torch.full(x.shape[:-1], NEG, dtype=x.dtype)
    s = torch.zeros_like(m)
    parts = []
    for i in range(0, x.shape[-1], block_size):
        b = x[..., i:i + block_size]
        m_new = torch.maximum(m, b.amax(-1))
        c = torch.where(m_new == NEG, 0.0, m_new)
        s = s * torch.exp(m - c) + torch.exp(b - c[..., None]).sum(-1)
        parts.append(torch.exp(b - c[..., None]))
        m = m_new
    return (torch.cat(parts, -1) / s[..., None]).nan_to_num(0.0)


wrong(E, "whole row")(lambda x, block_size: torch.softmax(x, -1).nan_to_num(0.0))


@wrong(E, "whole row")
def _os_three_pass(x, block_size):  # the textbook stable softmax: max first, then sum
    m = x.amax(-1, keepdim=True)
    e = torch.exp(x - torch.where(m == NEG, 0.0, m))
    return (e / e.sum(-1, keepdim=True)).nan_to_num(0.0)


@wrong(E, "logsumexp")
def _os_block_logsumexp(x, block_size):  # a fine algorithm, but the library does the work
    lse = torch.full(x.shape[:-1], NEG, dtype=x.dtype)
    for i in range(0, x.shape[-1], block_size):
        lse = torch.logaddexp(lse, torch.logsumexp(x[..., i:i + block_size], -1))
    return torch.exp(x - lse[..., None]).nan_to_num(0.0)


@wrong(E, "in place")
def _os_inplace(x, block_size):
    x[x == NEG] = -1e30  # "fix" the -inf entries in the caller's tensor
    return online(x, block_size)


@right(E)
def _os_vectorized(x, block_size):  # every block at once, then the (max, sum) combine
    L = x.shape[-1]
    nb = -(-L // block_size)
    xb = F.pad(x, (0, nb * block_size - L), value=NEG).unflatten(-1, (nb, block_size))
    m_b = xb.amax(-1)  # (..., nb)
    c_b = torch.where(m_b == NEG, 0.0, m_b)
    s_b = torch.exp(xb - c_b[..., None]).sum(-1)  # (..., nb)
    m = m_b.amax(-1)  # (...,): a max over the blocks' maxima
    c = torch.where(m == NEG, 0.0, m)
    s = (s_b * torch.exp(c_b - c[..., None])).sum(-1)
    return torch.where(s[..., None] > 0, torch.exp(x - c[..., None]) / s[..., None], 0.0)


@right(E)
def _os_right_to_left(x, block_size):  # the combine is commutative: any order is fine
    m = torch.full(x.shape[:-1], NEG, dtype=x.dtype)
    s = torch.zeros_like(m)
    for i in reversed(range(0, x.shape[-1], block_size)):
        b = x[..., i:i + block_size]
        m_new = torch.maximum(m, torch.max(b, dim=-1).values)
        c = torch.where(m_new == NEG, 0.0, m_new)
        s = s * torch.exp(m - c) + torch.exp(b - c[..., None]).sum(-1)
        m = m_new
    empty = (x == NEG).all(-1, keepdim=True)  # a whole-row test, not a reduction: allowed
    c = torch.where(m == NEG, 0.0, m)
    return (torch.exp(x - c[..., None]) / s[..., None]).masked_fill(empty, 0.0)


right(E)(lambda x, block_size: online(x.double(), block_size).to(x.dtype))


# --------------------------------------------------------------------------
# 19 one KV-cached decoding step
# --------------------------------------------------------------------------
def kv(*, order="append_first", empty="self", scale=None, dim=2, keys="all", causal=False,
       axis=-1, grow=True):
    def step(q_t, k_t, v_t, cache=None):
        if cache is None:
            K0, V0 = k_t[..., :0, :], v_t[..., :0, :]
        else:
            K0, V0 = cache
        K, V = torch.cat([K0, k_t], dim=dim), torch.cat([V0, v_t], dim=dim)
        Ka, Va = (K, V) if order == "append_first" else (K0, V0)
        if order != "append_first" and cache is None and empty == "self":
            Ka, Va = k_t, v_t
        if keys == "new":
            Ka, Va = k_t, v_t
        d = q_t.shape[-1] if scale is None else scale(q_t, v_t)
        if causal:
            out = F.scaled_dot_product_attention(q_t, Ka, Va, is_causal=True)
        else:
            out = torch.softmax(q_t @ Ka.transpose(-2, -1) / math.sqrt(d), axis) @ Va
        return out, ((K, V) if grow else (K0, V0) if cache is not None else (k_t, v_t))
    return step


E = "kv_cache_attention_step"
for kw, words in [({"order": "attend_first"}, "before appending"),
                  ({"order": "attend_first", "empty": "zeros"}, "before appending"),
                  ({"scale": lambda q, v: 1.0}, "missing scaling"),
                  ({"scale": lambda q, v: v.shape[-1]}, "sqrt(d_v)"),
                  ({"dim": -1}, "time axis"), ({"dim": 1}, "time axis"),
                  ({"keys": "new"}, "new key only"), ({"causal": True}, "is_causal"),
                  ({"axis": -2}, "wrong axis"), ({"grow": False}, "did not grow")]:
    wrong(E, words)(kv(**kw))


@wrong(E, "in place")
def _kv_inplace(q_t, k_t, v_t, cache=None):
    q_t /= math.sqrt(q_t.shape[-1])
    K, V = (k_t, v_t) if cache is None else (torch.cat([cache[0], k_t], 2), torch.cat([cache[1], v_t], 2))
    return torch.softmax(q_t @ K.transpose(-2, -1), -1) @ V, (K, V)


@wrong(E, "cache is none")
def _kv_no_none(q_t, k_t, v_t, cache=None):
    K, V = torch.cat([cache[0], k_t], 2), torch.cat([cache[1], v_t], 2)
    return F.scaled_dot_product_attention(q_t, K, V), (K, V)


wrong(E, "shape")(lambda *a: (kv()(*a)[0].squeeze(2), kv()(*a)[1]))


@right(E)
def _kv_sdpa(q_t, k_t, v_t, cache=None):  # PyTorch's kernel, no mask: the query sees all
    K, V = (k_t, v_t) if cache is None else (torch.cat([cache[0], k_t], 2), torch.cat([cache[1], v_t], 2))
    return F.scaled_dot_product_attention(q_t, K, V), (K, V)


@right(E)
def _kv_einsum64(q_t, k_t, v_t, cache=None):  # float64 inside, an empty cache to start
    K0, V0 = cache if cache is not None else (k_t.new_zeros(*k_t.shape[:2], 0, k_t.shape[-1]),
                                              v_t.new_zeros(*v_t.shape[:2], 0, v_t.shape[-1]))
    K, V = torch.cat((K0, k_t), -2), torch.cat((V0, v_t), -2)
    s = torch.einsum("bhqd,bhkd->bhqk", q_t.double(), K.double()) * q_t.shape[-1] ** -0.5
    out = torch.einsum("bhqk,bhkd->bhqd", s.softmax(-1), V.double())
    return out.to(q_t.dtype), (K, V)


right(E)(kv())


# --------------------------------------------------------------------------
# 20 multi-query / grouped-query attention
# --------------------------------------------------------------------------
def mqa(bug=None, *, bias=True, way="repeat"):
    class MultiQueryAttention(nn.Module):
        def __init__(self, d_model, n_heads, n_kv_heads=1):
            super().__init__()
            if n_heads % n_kv_heads and bug != "no_check":
                raise ValueError("n_heads must be a multiple of n_kv_heads")
            self.n_heads, self.n_kv_heads, self.d_head = n_heads, n_kv_heads, d_model // n_heads
            kv_out = d_model if bug == "full_kv" else n_kv_heads * self.d_head
            if bug == "no_attr":
                del self.n_kv_heads
            self.W_q = nn.Linear(d_model, d_model, bias=bias)
            self.W_k, self.W_v = nn.Linear(d_model, kv_out, bias=bias), nn.Linear(d_model, kv_out, bias=bias)
            self.W_o = nn.Linear(d_model, d_model, bias=bias)
            if bug == "unused":
                self.gate = nn.Linear(d_model, d_model)

        def forward(self, x, mask=None):
            B, L, D = x.shape
            H, Dh = self.n_heads, self.d_head
            G = H if bug == "full_kv" else self.n_kv_heads if bug != "no_attr" else 1
            if bug == "q_nosplit":
                q = self.W_q(x).reshape(B, H, L, Dh)
            else:
                q = self.W_q(x).view(B, L, H, Dh).transpose(1, 2)  # (B, H, L, Dh)
            if bug == "flat":
                k, v = (t.repeat(1, 1, H // G).view(B, H, L, Dh) for t in (self.W_k(x), self.W_v(x)))
            else:
                k, v = (t.view(B, L, G, Dh).transpose(1, 2) for t in (self.W_k(x), self.W_v(x)))
                if bug == "tile":
                    k, v = k.repeat(1, H // G, 1, 1), v.repeat(1, H // G, 1, 1)
                elif way != "grouped":
                    k, v = k.repeat_interleave(H // G, 1), v.repeat_interleave(H // G, 1)
            keep = mask
            if way == "grouped":  # (B, G, H/G, L, Dh) against (B, G, 1, L, Dh): no copies of K/V
                qg = q.unflatten(1, (G, H // G))
                s = torch.einsum("bgrqd,bgkd->bgrqk", qg, k).flatten(1, 2) / math.sqrt(Dh)
            else:
                s = q @ k.transpose(-2, -1) / (1.0 if bug == "noscale" else math.sqrt(Dh))
            if keep is not None:
                s = s.masked_fill(keep if bug == "invert" else ~keep, NEG)
            w = torch.softmax(s, -1)
            w = w if bug == "nan" else w.nan_to_num(0.0)
            if way == "sdpa":  # PyTorch's kernel for the output, GQA done by the kernel
                kk, vv = (t.view(B, L, G, Dh).transpose(1, 2) for t in (self.W_k(x), self.W_v(x)))
                o = F.scaled_dot_product_attention(q, kk, vv, attn_mask=keep, enable_gqa=True)
                if keep is not None:
                    o = o.nan_to_num(0.0).masked_fill(~keep.expand(B, H, L, L).any(-1, keepdim=True), 0.0)
            elif way == "grouped":
                o = torch.einsum("bgrqk,bgkd->bgrqd", w.unflatten(1, (G, H // G)), v).flatten(1, 2)
            else:
                o = w @ v
            o = o.reshape(B, L, D) if bug == "q_nosplit" else o.transpose(1, 2).reshape(B, L, D)
            return self.W_o(o), w
    return MultiQueryAttention


E = "multi_query_attention"
WRONG[E] = [(mqa("full_kv"), "full d_model"), (mqa("tile"), "tiled instead of grouped"),
            (mqa("flat"), "without a transpose"), (mqa("q_nosplit"), "heads split without a transpose"),
            (mqa("noscale"), "missing scaling"), (mqa("no_check"), "ValueError"),
            (mqa("invert"), "inverted"), (mqa("nan"), "NaN"), (mqa("unused"), "parameters"),
            (mqa("no_attr"), "n_kv_heads")]
RIGHT[E] = [mqa(way="grouped"), mqa(way="sdpa"), mqa(bias=False), mqa()]


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


def test_every_serving_exercise_has_enough_programs():
    few = {e: c for e, c in counts().items() if c[0] < 6 or c[1] < 3}
    assert set(counts()) == {"online_softmax", "kv_cache_attention_step", "multi_query_attention"}
    assert set(counts()) <= set(EXERCISES) and not few, few


(test_wrong_program_fails_and_names_the_mistake, test_correct_program_passes,
 test_correct_program_passes_under_no_grad) = catalogue_tests(CAT)



def test_the_row_rule_leaves_no_torch_function_mode_behind():
    """The online-softmax rule runs the learner's code under a TorchFunctionMode; a
    raising or a rule-breaking program must not leave it installed."""
    def boom(x, block_size):
        torch.softmax(x, -1)
        raise RuntimeError("boom")

    assert "boom" in check("online_softmax", boom).message
    assert "whole row" in check("online_softmax", lambda x, b: x.softmax(-1)).message
    assert torch._C._len_torch_function_stack() == 0
    assert torch.softmax(torch.zeros(2), -1).tolist() == [0.5, 0.5]
