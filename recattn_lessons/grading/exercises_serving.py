"""Checks for the serving exercises: online (tiled) softmax, one KV-cached
decoding step, and multi-query / grouped-query attention.

Introduced with lesson 07 (cost and serving), notebooks 18, 19 and 20. The
references use torch only (``torch.softmax``, ``F.scaled_dot_product_attention``),
never the solutions or the course's own serving code.

The online softmax is graded on results, plus one rule checked while the
learner's code runs: no torch call may see a whole row at once (a library
softmax / log_softmax / logsumexp, or a max / sum / mean / cumsum across all
L positions while ``block_size < L``). That is what an interviewer rejects;
the order of the blocks is not graded (the running-max combine is
associative, so right-to-left or a vectorized per-block combine is right).
NOTE: the rule sees calls, not the order of reads, so a two-pass version
(the max of the block maxima first, then the sums) also passes; the
notebook says so. Reductions written without torch calls (numpy, einsum,
a matmul with ones) are not seen either: an interviewer reading the code is.
"""

from __future__ import annotations

import math
import traceback

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import (Case, CheckFailure, Exercise, Mistake, _first_error,
                                          _is_learner_frame, _structure, changed_inputs, close,
                                          diagnose, is_stub, learner_error, run_cases)
from recattn_lessons.grading.exercises_attention import _randn
from recattn_lessons.grading.properties import build, module_properties

__all__ = ["EXERCISES"]

_NEG = float("-inf")


# --------------------------------------------------------------------------
# 18 online softmax
# --------------------------------------------------------------------------
_LIBRARY = {"softmax", "log_softmax", "logsumexp", "special_softmax", "special_log_softmax",
            "special_logsumexp", "logcumsumexp"}
_REDUCE = {"max", "amax", "sum", "nansum", "mean", "cumsum", "cummax"}
_OS_SIG = "fn(x, block_size) -> Tensor"


class _Offence(BaseException):
    """The learner's call saw a whole row at once (raised after the call returns)."""


class _RowWatch(TorchFunctionMode):
    """Notes the first torch call that sees a whole row: a library softmax, or a
    reduction across all ``L`` positions while ``1 < block_size < L``."""

    def __init__(self, L: int, block_size: int):
        super().__init__()
        self.L, self.block_size, self.seen = L, block_size, ""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.seen:
            what = self._offence(getattr(func, "__name__", ""), args, kwargs)
            if what:
                frames = [f for f in traceback.extract_stack() if _is_learner_frame(f.filename)]
                line = frames[-1].line.strip() if frames and frames[-1].line else ""
                self.seen = what + (f" (in the line `{line}`)" if line else "")
        return func(*args, **kwargs)

    def _offence(self, name: str, args: tuple, kwargs: dict) -> str:
        if name in _LIBRARY:
            return f"it called {name.removeprefix('special_')}"
        t = args[0] if args else None
        if name not in _REDUCE or not isinstance(t, Tensor) or not 1 < self.block_size < self.L:
            return ""
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if isinstance(dim, Tensor) or "other" in kwargs:  # torch.max(a, b): elementwise
            return ""
        try:
            dims = range(t.dim()) if dim is None else [dim] if isinstance(dim, int) else list(dim)
            sizes = [t.shape[d] for d in dims]
        except (IndexError, TypeError):
            return ""
        if self.L not in sizes and (dim is None or len(sizes) < 2 or math.prod(sizes) < self.L):
            return ""  # a block, the blocks' statistics, or a per-block view: fine
        return (f"it called {name} across all L = {self.L} positions of a row (on a tensor "
                f"of shape {tuple(t.shape)}, dim={dim})")


def _watched(fn):
    def run(x, block_size):
        watch = _RowWatch(x.shape[-1], block_size)
        with watch:
            out = fn(x, block_size)
        if watch.seen:
            raise _Offence(f"{watch.seen}, on x of shape {tuple(x.shape)} with block_size = "
                           f"{block_size}")
        return out
    return run


def _softmax64(x: Tensor, block_size: int) -> Tensor:
    """The reference: torch.softmax in float64, zero weights on a fully -inf row."""
    return torch.softmax(x.double(), -1).nan_to_num(0.0).to(x.dtype)


def _online_cases() -> list[Case]:
    g = torch.Generator().manual_seed(18)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    rising = torch.linspace(-3, 6, 9, dtype=torch.float64) + r(2, 9) * 0.3
    masked = r(3, 10).masked_fill(torch.rand(3, 10, generator=g) < 0.3, _NEG)
    masked[0, :4] = _NEG  # a masked prefix longer than a block (left padding)
    empty = r(3, 10)
    empty[1:] = _NEG
    return [
        Case("x (3, 10), block_size 4 (the last block holds 2 columns)", (r(3, 10) * 2, 4)),
        Case("rising logits: the running max grows in every block, x (2, 9), block_size 3",
             (rising, 3)),
        Case("x (2, 3, 10), odd block_size 3 (the last block holds 1 column)", (r(2, 3, 10), 3)),
        Case("block_size 1 (one column at a time), x (3, 7)", (r(3, 7) * 2, 1)),
        Case("block_size 16 > L = 5 (one block holds the row), x (3, 5)", (r(3, 5), 16)),
        Case("block_size 6 = L, x (2, 6)", (r(2, 6), 6)),
        Case("x (4, 12), block_size 4 (the blocks fit exactly)", (r(4, 12) * 3, 4)),
        Case("large logits x ~ 1e4 * N(0, 1) (a plain exp overflows), x (3, 10), block_size 4",
             (r(3, 10, scale=1e4), 4)),
        Case("every entry near -1e4 (exp underflows unless the row max is subtracted), "
             "x (2, 10), block_size 4", (r(2, 10) - 1e4, 4)),
        Case("-inf entries (masked scores), row 0's first 4 all -inf (left padding), "
             "x (3, 10), block_size 3", (masked, 3)),
        Case("fully -inf rows 1 and 2 (nothing to attend to: zero weights), x (3, 10), "
             "block_size 4", (empty, 4)),
        Case("float32 logits ~ 10 * N(0, 1), x (4, 13), block_size 5",
             (r(4, 13, dtype=torch.float32, scale=10.0), 5)),
        Case("a single column: x (3, 1), block_size 2", (r(3, 1), 2)),
    ]


def _precision(fn, cases: list[Case], band: float | None = None) -> None:
    """float64 inputs must give float64 accuracy (max error 1e-10). With ``band``,
    only errors below it count (larger ones are left to the mistake catalogue)."""
    for case in cases:
        x = case.args[0]
        try:
            got = fn(x.clone(), *case.args[1:])
        except Exception:
            return  # run_cases reports it, pointing at the line
        want = _softmax64(*case.args)
        if _structure(got, want, ["weights"]) is not None or torch.isnan(got).any():
            return
        err = (got.detach() - want).abs().max().item()
        if err > 1e-10 and (band is None or err < band):
            raise CheckFailure(f"On {case.desc}: float64 input gives weights accurate to only "
                               f"{err:.1e} (float64 reaches ~1e-15; 1e-10 is allowed): part "
                               f"of your computation runs in float32, e.g. a .float() or a "
                               f"tensor created without dtype=x.dtype.")


def _check_online(fn) -> str:
    cases, watched = _online_cases(), _watched(fn)
    try:
        _precision(watched, cases[:1], band=1e-4)
        run_cases(watched, cases, _softmax64, M.ONLINE_SOFTMAX, ("weights",), _OS_SIG)
        _precision(watched, [c for c in cases if c.args[0].dtype == torch.float64])
    except _Offence as off:
        raise CheckFailure(f"Your online_softmax saw a whole row at once: {off}. No step may "
                           f"need the whole row: reduce each block x[..., i:i + block_size] "
                           f"and carry a running max and a running sum from block to block. "
                           f"torch.softmax, log_softmax and logsumexp are off limits here, "
                           f"and a max or sum may span at most block_size columns.") from None
    return ("Equal to torch.softmax to 1e-10 in float64 for every block size (1, odd, = L, "
            "> L), with -inf entries, masked prefixes, fully -inf rows and logits of 1e4, "
            "without ever looking at a whole row.")


# --------------------------------------------------------------------------
# 19 one decoding step with a KV cache
# --------------------------------------------------------------------------
_KV_SIG = "fn(q_t, k_t, v_t, cache=None) -> (out_t, (K, V))"
_KV_NAMES = ("q_t", "k_t", "v_t", "cache[0] (K)", "cache[1] (V)")


def _kv_sequences() -> list[tuple]:
    g = torch.Generator().manual_seed(19)
    r = lambda *s, **kw: _randn(g, *s, **kw)  # noqa: E731
    f32 = {"dtype": torch.float32}
    return [  # prefilled first: with T >= 2 cached keys the catalogued mistakes differ
        ("a cache prefilled with 4 tokens, B=1, H=2, d_k=8 != d_v=4", 4, r(1, 2, 7, 8),
         r(1, 2, 7, 8), r(1, 2, 7, 4)),
        ("B=2, H=3, d_k = d_v = 8, from cache=None", 0, r(2, 3, 6, 8), r(2, 3, 6, 8),
         r(2, 3, 6, 8)),
        ("float32, B=3, H=1, d=16, large logits (q, k ~ 4 N(0, 1)), from cache=None", 0,
         r(3, 1, 5, 16, scale=4.0, **f32), r(3, 1, 5, 16, scale=4.0, **f32), r(3, 1, 5, 16, **f32)),
    ]


def _kv_call(fn, args: tuple, where: str):
    q_t, k_t, v_t, cache = args
    flat = (q_t, k_t, v_t, *(cache or ()))
    copies = tuple(t.clone() for t in flat)
    try:
        got = fn(*copies[:3], None if cache is None else tuple(copies[3:]))
    except Exception as exc:
        if is_stub(exc):
            raise
        extra = ("\ncache is None before the first token: start from K, V = k_t, v_t."
                 if cache is None else
                 f"\nThis call passed a cache of T = {cache[0].shape[-2]} tokens: if the line "
                 f"above is a torch.cat, check its dim: the cache grows along the time axis, "
                 f"dim=2 of (B, H, T, d): torch.cat([K, k_t], dim=2).")
        raise CheckFailure(learner_error(exc, _KV_SIG, where) + extra) from None
    edited = changed_inputs(flat[:3], copies[:3], _KV_NAMES)
    if edited:
        raise CheckFailure(f"On {where}: {edited}.")
    edited = changed_inputs(flat[3:], copies[3:], _KV_NAMES[3:])
    if edited:
        raise CheckFailure(f"On {where}: {edited}. The caller keeps the old cache: return a "
                           f"new (K, V) tuple instead of writing into it.")
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[1], (tuple, list))
            and len(got[1]) == 2 and all(isinstance(t, Tensor) for t in got[1])):
        raise CheckFailure(f"On {where}: return (out_t, (K, V)): the output and the new cache "
                           f"as a tuple of two tensors, got {type(got).__name__}")
    return got[0], tuple(got[1])


def _check_cache(new: tuple, k: Tensor, v: Tensor, t: int, where: str) -> None:
    for got, full, name in ((new[0], k, "K"), (new[1], v, "V")):
        want = full[:, :, :t + 1]  # (B, H, t + 1, d)
        if got.shape != want.shape:
            grew = ("did not grow: return the cache with the new token appended"
                    if got.shape == full[:, :, :t].shape else
                    "grows along the time axis, dim=2 of (B, H, T, d): "
                    f"torch.cat([{name}, {name.lower()}_t], dim=2)")
            raise CheckFailure(f"On {where}: the new cache's {name} has shape "
                               f"{tuple(got.shape)}, expected {tuple(want.shape)} (one more "
                               f"token than before); the cache {grew}.")
        if not close(got, want):
            raise CheckFailure(f"On {where}: the new cache's {name} should hold the raw "
                               f"{'keys' if name == 'K' else 'values'} of every token so far, "
                               f"oldest first (torch.cat([{name}, {name.lower()}_t], dim=2)); "
                               f"{_first_error(got, want, [name])}.")


def _check_kv(fn) -> str:
    for i, (desc, P, q, k, v) in enumerate(_kv_sequences(), 1):
        ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                             is_causal=True).to(q.dtype)  # (B, H, L, Dv)
        cache = None if P == 0 else (k[:, :, :P].clone(), v[:, :, :P].clone())
        for t in range(P, q.shape[2]):
            where = f"sequence {i} ({desc}), step t = {t} (a cache of {t} earlier tokens)"
            q_t, k_t, v_t = (x[:, :, t:t + 1].clone() for x in (q, k, v))  # (B, H, 1, d)
            out, new = _kv_call(fn, (q_t, k_t, v_t, cache), where)
            want = ref[:, :, t:t + 1]
            problem = _structure(out, want, ["out_t"])
            if problem:
                raise CheckFailure(f"On {where}: {problem}.")
            if not close(out, want):
                case = Case(where, (q_t, k[:, :, :t], v[:, :, :t], k_t, v_t))
                found = diagnose(out, case, M.KV_CACHE)
                seen = (f"Seen on {where}: {_first_error(out, want, ['out_t'])} (the "
                        f"reference is row t of full causal attention, "
                        f"F.scaled_dot_product_attention(q, k, v, is_causal=True)).")
                raise CheckFailure(f"Likely bug: {found.name}. {found.explain}\n{seen}"
                                   if found else f"Wrong answer. {seen}")
            _check_cache(new, k, v, t, where)
            cache = new
    return ("Stepping token by token equals full causal attention at every step, from an "
            "empty or a prefilled cache, with d_k != d_v and float32; the cache grows by one "
            "token per step and the caller's tensors stay untouched.")


# --------------------------------------------------------------------------
# 20 multi-query / grouped-query attention
# --------------------------------------------------------------------------
_MQA_SIG = "forward(x, mask=None) -> (output, weights)"


def _mqa(mod, x, mask=None, *, scale="dh", split="ok", kv="group", out_proj=True, soft="ok",
         reference=False):
    B, L, D = x.shape
    H, G = mod.n_heads, mod.n_kv_heads
    Dh = D // H

    def heads(t, n):  # (B, L, n * Dh) -> (B, n, L, Dh)
        return t.view(B, L, n, Dh).transpose(1, 2) if split == "ok" else t.reshape(B, n, L, Dh)

    q = heads(mod.W_q(x), H)  # (B, H, L, Dh)
    if kv == "flat_view":  # the shared head repeated along features, viewed without transpose
        k, v = (t.repeat(1, 1, H // G).reshape(B, H, L, Dh) for t in (mod.W_k(x), mod.W_v(x)))
    else:
        k, v = heads(mod.W_k(x), G), heads(mod.W_v(x), G)  # (B, G, L, Dh)
        if kv == "tile":
            k, v = k.repeat(1, H // G, 1, 1), v.repeat(1, H // G, 1, 1)
        else:  # query head h uses K/V head h // (H // G)
            k, v = k.repeat_interleave(H // G, 1), v.repeat_interleave(H // G, 1)  # (B, H, L, Dh)
    keep = torch.ones(B, H, L, L, dtype=torch.bool) if mask is None else mask.expand(B, H, L, L)
    s = q @ k.transpose(-2, -1) / math.sqrt({"dh": Dh, "d": D, "none": 1}[scale])
    w = torch.softmax(s.masked_fill(keep if soft == "inverted" else ~keep, _NEG), -1)
    w = w if soft == "nan" else w.nan_to_num(0.0)  # (B, H, L, L)
    if reference:  # PyTorch's kernel; a fully-masked row gets a zero output
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).nan_to_num(0.0)
        o = o.masked_fill(~keep.any(-1, keepdim=True), 0.0)
    else:
        o = w @ v  # (B, H, L, Dh)
    o = o.transpose(1, 2).reshape(B, L, D) if split == "ok" else o.reshape(B, L, D)
    return (mod.W_o(o) if out_proj else o), w


def _mqa_mistakes(mod) -> tuple[Mistake, ...]:
    def m(name, explain, **kw):
        return Mistake(name, explain, lambda *a: _mqa(mod, *a, **kw))
    return (
        m("K/V heads tiled instead of grouped", "Query head h uses K/V head "
          "h // (n_heads // n_kv_heads): repeat_interleave(n_heads // n_kv_heads, dim=1), as "
          "Llama's repeat_kv and F.scaled_dot_product_attention(enable_gqa=True) do; "
          ".repeat(1, g, 1, 1) hands the K/V heads out in the wrong order.", kv="tile"),
        m("shared K/V head repeated without a transpose", "k.repeat(1, 1, H).view(B, H, L, Dh) "
          "mixes positions into heads; view the projection as (B, L, n_kv_heads, Dh), "
          "transpose to (B, n_kv_heads, L, Dh), then broadcast or repeat_interleave over "
          "the query heads.", kv="flat_view"),
        m("heads split without a transpose", "x.view(B, H, L, Dh) mixes positions and "
          "features; use x.view(B, L, H, Dh).transpose(1, 2).", split="bad"),
        m("missing scaling", "Divide each head's scores by sqrt(d_head).", scale="none"),
        m("scaled by sqrt(d_model) instead of sqrt(d_head)", "Each head's dot product has "
          "d_head = d_model / n_heads terms: scale by sqrt(d_model // n_heads).", scale="d"),
        m("output projection W_o missing", "Concatenate the heads, then apply W_o.",
          out_proj=False),
        m("mask with inverted polarity", "True = may attend.", soft="inverted"),
        m(*M.NAN_ROW, soft="nan"),
    )


def _layers_ok(model, D: int, H: int, G: int) -> None:
    Dh = D // H
    if getattr(model, "n_heads", None) != H or getattr(model, "n_kv_heads", None) != G:
        raise CheckFailure(f"store the head counts as self.n_heads and self.n_kv_heads (built "
                           f"with n_heads={H}, n_kv_heads={G})")
    for name, out in (("W_q", D), ("W_k", G * Dh), ("W_v", G * Dh), ("W_o", D)):
        lin = getattr(model, name, None)
        if not isinstance(lin, torch.nn.Linear):
            raise CheckFailure(f"the module needs an attribute {name} = nn.Linear({D}, {out}) "
                               f"(got {type(lin).__name__})")
        if (lin.in_features, lin.out_features) == (D, out):
            continue
        if name in ("W_k", "W_v") and lin.out_features == D:
            raise CheckFailure(f"Likely bug: K/V projected to full d_model (that is multi-head "
                               f"attention). {name} is nn.Linear({D}, {D}); with n_kv_heads="
                               f"{G} it must be nn.Linear(d_model, n_kv_heads * d_head) = "
                               f"nn.Linear({D}, {G * Dh}): all {H} query heads share "
                               f"{'one K/V head' if G == 1 else f'{G} K/V heads'}, which is "
                               f"what makes the KV cache {H // G}x smaller.")
        raise CheckFailure(f"{name} should be nn.Linear({D}, {out}), got "
                           f"nn.Linear({lin.in_features}, {lin.out_features})")
    most = 2 * (D * D + D) + 2 * (D * G * Dh + G * Dh)
    total = sum(p.numel() for p in model.parameters())
    if total > most:
        raise CheckFailure(f"the module has {total} parameters; multi-query attention with "
                           f"d_model={D}, n_heads={H}, n_kv_heads={G} has at most {most} (W_q, "
                           f"W_o: {D} x {D}; W_k, W_v: {D} x {G * Dh}; plus biases)")


def _mqa_cases(D: int, g: torch.Generator) -> list[Case]:
    x, one, L = torch.randn(2, 5, D, generator=g), torch.randn(1, 1, D, generator=g), 5
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # (L, L)
    real = torch.arange(L)[None, :] >= L - torch.tensor([5, 3])[:, None]  # (B, L), left padding
    return [Case(f"x (2, 5, {D}), no mask", (x,)),
            Case("a causal mask (5, 5)", (x, causal)),
            Case("a key padding mask (2, 1, 1, 5), left padding, lengths [5, 3]",
                 (x, real[:, None, None, :])),
            Case("causal & left padding (2, 1, 5, 5): padded queries see nothing (zero rows)",
                 (x, causal & real[:, None, None, :])),
            Case(f"batch 1, length 1: x (1, 1, {D})", (one,))]


def _check_mqa(cls) -> str:
    try:
        cls(12, 4, n_kv_heads=3)
    except ValueError:
        pass
    except Exception as exc:
        if is_stub(exc):
            raise
        raise CheckFailure(learner_error(exc, "", "n_heads=4, n_kv_heads=3")) from None
    else:
        raise CheckFailure("n_heads=4 with n_kv_heads=3 should raise ValueError: 4 query heads "
                           "do not split into 3 equal groups")
    g = torch.Generator().manual_seed(20)
    for D, H, G in ((12, 4, 1), (16, 4, 2)):
        model = build(cls, D, H, **({"n_kv_heads": G} if G > 1 else {})).eval()
        _layers_ok(model, D, H, G)
        cases = [Case(f"d_model={D}, n_heads={H}, n_kv_heads={G}: {c.desc}", c.args)
                 for c in _mqa_cases(D, g)]
        with torch.no_grad():
            run_cases(model, cases, lambda *a, m=model: _mqa(m, *a, reference=True),
                      _mqa_mistakes(model), ("output", "weights"), _MQA_SIG)
    module_properties(lambda: build(cls, 12, 4), lambda B: (torch.randn(B, 5, 12, generator=g),),
                      lambda out, inp: F.mse_loss(out[0], inp[0].flip(1)),
                      large=lambda m: (m, (torch.randn(2, 5, 12, generator=g) * 1e3,)))
    return ("Equal to F.scaled_dot_product_attention with the shared K/V heads repeated, for "
            "one and for two K/V heads, with causal, padding and fully-masked rows; K/V "
            "projections are d_model x n_kv_heads*d_head (a KV cache n_heads/n_kv_heads times "
            "smaller than multi-head's); it trains.")


EXERCISES = (
    Exercise("online_softmax", "18_online_softmax", "Online (tiled) softmax in one pass",
             "fn(x: Tensor, block_size: int) -> Tensor", _check_online, "medium", 25),
    Exercise("kv_cache_attention_step", "19_kv_cache_attention_step",
             "One decoding step with a KV cache", _KV_SIG, _check_kv, "medium", 25),
    Exercise("multi_query_attention", "20_multi_query_attention",
             "Multi-query (and grouped-query) attention",
             "MultiQueryAttention(d_model, n_heads, n_kv_heads=1).forward(x, mask=None)",
             _check_mqa, "hard", 35, takes_class=True),
)
