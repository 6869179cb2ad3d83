"""Checks for the exercises that build modules: multi-head attention, the
text and image classifiers, the multimodal recommender and the fixed
``SimpleAttention`` from the source.

Introduced with the interview exercises (notebooks 05, 10, 11, 12, 15).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recattn_lessons import attention as ref
from recattn_lessons.grading import mistakes as M
from recattn_lessons.grading.core import (Case, CheckFailure, Exercise, Mistake, is_stub,
                                          learner_error, run_cases)
from recattn_lessons.grading.guard import rng_devices
from recattn_lessons.grading.properties import (build, call, call_eval, module_properties,
                                                same, scaled_copy, weights_ok)

__all__ = ["EXERCISES"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# forward's arguments, named in the messages (e.g. an input modified in place)
_MHA_ARGS = ("query", "key", "value", "mask")
_TEXT_ARGS = ("tokens",)
_PATCH_ARGS = ("images",)
_MM_ARGS = ("hist_text", "hist_image", "hist_mask", "cand_text", "cand_image")
_SIMPLE_ARGS = ("input_seq", "query_seq", "mask")


def _dtype_ok(out, dtype: torch.dtype, what: str, names=("logits", "weights")) -> None:
    """Every floating output has ``dtype`` (the inputs' / the model's), e.g. not float64."""
    for t, n in zip(out if isinstance(out, (tuple, list)) else (out,), names):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != dtype:
            raise CheckFailure(f"{what}: {n} should have dtype {dtype} (like the inputs and "
                               f"the parameters), got {t.dtype}; avoid .double() or tensors "
                               f"created with dtype=torch.float64 inside forward")


def _not_probabilities(logits: torch.Tensor, what: str) -> None:
    """Rows >= 0 that sum to 1 are probabilities: the task asks for logits."""
    if (logits >= 0).all() and same(logits.sum(-1), torch.ones_like(logits[..., 0]), 1e-5):
        raise CheckFailure(f"with {what}: every output row is >= 0 and sums to 1: you "
                           f"return probabilities; return the logits (no softmax at the "
                           f"end: cross_entropy applies log_softmax itself)")


# --------------------------------------------------------------------------
# multi-head attention from scratch
# --------------------------------------------------------------------------
def _mha(mod, query, key, value, mask=None, *, scale="dh", split="ok", out_proj=True,
         soft="ok"):
    B, Lq, D = query.shape
    H = mod.n_heads
    Dh = D // H

    def heads(x):  # (B, L, D) -> (B, H, L, Dh)
        if split == "ok":
            return x.view(B, -1, H, Dh).transpose(1, 2)
        return x.reshape(B, H, -1, Dh)  # wrong: mixes positions and features

    q, k, v = heads(mod.W_q(query)), heads(mod.W_k(key)), heads(mod.W_v(value))
    s = q @ k.transpose(-2, -1) / math.sqrt({"dh": Dh, "d": D, "none": 1}[scale])
    w = M._soft(s, None if mask is None else (~mask if soft == "inverted" else mask))
    o = w @ v  # (B, H, Lq, Dh)
    o = o.transpose(1, 2).reshape(B, Lq, D) if split == "ok" else o.reshape(B, Lq, D)
    return (mod.W_o(o) if out_proj else o), w


def _mha_mistakes(mod) -> tuple[Mistake, ...]:
    def m(name, explain, **kw):
        return Mistake(name, explain, lambda *a: _mha(mod, *a, **kw))
    return (
        m("missing scaling", "Divide each head's scores by sqrt(d_head).", scale="none"),
        m("scaled by sqrt(d_model) instead of sqrt(d_head)", "Each head's dot product has "
          "d_head = d_model / n_heads terms: scale by sqrt(d_model // n_heads).", scale="d"),
        m("heads split without a transpose", "x.view(B, H, L, Dh) mixes positions and "
          "features; use x.view(B, L, H, Dh).transpose(1, 2).", split="bad"),
        m("output projection W_o missing", "Concatenate the heads, then apply W_o.",
          out_proj=False),
        m("mask with inverted polarity", "True = may attend.", soft="inverted"),
    )


def _check_mha(cls) -> str:
    D, H = 12, 3
    model = build(cls, D, H).eval()
    for name in ("W_q", "W_k", "W_v", "W_o"):
        lin = getattr(model, name, None)
        if not isinstance(lin, nn.Linear):
            raise CheckFailure(f"the module needs an attribute {name} = nn.Linear({D}, {D}) "
                               f"(got {type(lin).__name__})")
        if (lin.in_features, lin.out_features) != (D, D):
            raise CheckFailure(f"{name} should map d_model to d_model: nn.Linear({D}, {D}), "
                               f"got nn.Linear({lin.in_features}, {lin.out_features})")
    if getattr(model, "n_heads", None) != H:
        raise CheckFailure("store the number of heads as self.n_heads")
    # the reference recomputes attention with the learner's own layers (bias or not)
    reference = lambda *a: _mha(model, *a)  # noqa: E731
    g = _gen(12)
    x, y = torch.randn(2, 5, D, generator=g), torch.randn(2, 7, D, generator=g)
    pad = ref.padding_mask(torch.tensor([7, 3]), 7)[:, None, None, :]  # (B, 1, 1, Lk)
    one = torch.randn(1, 1, D, generator=g)
    cases = [Case("self-attention, x (2, 5, 12)", (x, x, x)),
             Case("cross-attention, Lq=5 != Lk=7, key padding mask (2, 1, 1, 7)", (x, y, y, pad)),
             Case("causal mask (5, 5)", (x, x, x, ref.causal_mask(5))),
             Case("batch of 1, a single query: query (1, 1, 12), key/value (1, 7, 12)",
                  (one, y[:1], y[:1]))]
    with torch.no_grad():
        run_cases(model, cases, reference, _mha_mistakes(model), ("output", "weights"),
                  "forward(query, key, value, mask=None) -> (output, weights)")
    module_properties(lambda: build(cls, D, H), lambda B: (torch.randn(B, 5, D, generator=g),) * 3,
                      lambda out, inp: F.mse_loss(out[0], inp[0].flip(1)),
                      large=lambda m: (m, (torch.randn(2, 5, D, generator=g) * 1e3,) * 3),
                      names=_MHA_ARGS)
    return "Equal to multi-head attention computed with your layers; trains, any batch size, stable."


def _perturbed(model: nn.Module, seed: int = 5) -> nn.Module:
    """A copy with random noise on every parameter (so a zero init is not mistaken for
    a missing dependence)."""
    import copy

    noisy = copy.deepcopy(model)
    with torch.random.fork_rng(devices=rng_devices()), torch.no_grad():
        torch.manual_seed(seed)
        for p in noisy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return noisy


def _uniform(w: torch.Tensor, valid: torch.Tensor) -> bool:
    """True when every row of ``w`` is uniform over its valid positions."""
    n = valid.sum(-1, keepdim=True).clamp_min(1)
    want = valid.to(w.dtype) / n
    return bool(((w - want).abs() < 1e-6).all())


def _content_matters(model, inputs, weights_of, valid, what, names=()) -> None:
    """The attention weights must depend on the content (not mean pooling)."""
    for m in (model, _perturbed(model)):
        if not _uniform(weights_of(call(m, inputs, what, names)), valid):
            return
    raise CheckFailure(f"{what}: the weights are uniform over the real positions whatever "
                       f"the content, even with random parameters: that is mean pooling, "
                       f"not attention; score each position (e.g. against a learned query) "
                       f"and softmax the scores")


# --------------------------------------------------------------------------
# text classifier with attention pooling (the source's problem 3)
# --------------------------------------------------------------------------
def _tokens(B: int, g: torch.Generator, L: int = 12, V: int = 20):
    lengths = torch.randint(3, L + 1, (B,), generator=g)
    tok = torch.randint(1, V, (B, L), generator=g)
    return (tok.masked_fill(~ref.padding_mask(lengths, L), 0),)  # pad_id = 0 on the right


def _text_geometry(cls, g, V, D, C, pad, L) -> None:
    model = build(cls, vocab_size=V, d_model=D, n_classes=C, pad_id=pad).eval()
    lengths = torch.tensor([L, 3, 1, L - 2])
    tok = torch.randint(0, V, (4, L), generator=g)
    tok[tok == pad] = (pad + 1) % V  # pad only where padding is meant ...
    tok[0, 1] = 0 if pad != 0 else 1  # ... and token 0 is a real token when pad_id != 0
    tok = tok.masked_fill(~ref.padding_mask(lengths, L), pad)  # right padding
    where = f"vocab {V}, d_model {D}, {C} classes, pad_id={pad}"
    with torch.no_grad():
        logits, w = call_eval(model, (tok,), f"tokens (4, {L}), {where}", _TEXT_ARGS)
        if tuple(logits.shape) != (4, C) or tuple(w.shape) != (4, L):
            raise CheckFailure(f"with {where}: expected logits (4, {C}) and weights (4, {L}), "
                               f"got {tuple(logits.shape)} and {tuple(w.shape)}")
        _dtype_ok((logits, w), next(model.parameters(), torch.empty(0)).dtype,
                  f"tokens with {where}")
        weights_ok(w, tok != pad, f"tokens with {where}" + (
            " (use the pad_id argument, not a hard-coded 0)" if pad != 0 else ""))
        _not_probabilities(logits, where)
        longer, _ = call(model, (F.pad(tok, (0, 5), value=pad),), f"5 extra pad tokens ({where})",
                         _TEXT_ARGS)
        if not same(longer, logits):
            raise CheckFailure(f"with {where}: appending pad tokens changed the logits: "
                               f"padding must be masked out of the attention")
        empty, we = call(model, (torch.full((2, 6), pad, dtype=torch.long),),
                         f"an all-padding input ({where})", _TEXT_ARGS)
        if not torch.isfinite(empty).all():
            raise CheckFailure("an all-padding sequence gives NaN logits; give it zero weights")
        if (we.abs() > 1e-6).any():
            raise CheckFailure("an all-padding sequence gets non-zero weights (e.g. uniform "
                               "ones from a -1e9 fill): its weights must all be 0; fill with "
                               "-inf, then weights.nan_to_num(0.0)")
        full = tok[:, :3].clone()
        full[full == pad] = (pad + 2) % V
        _content_matters(model, (full,), lambda out: out[1], full != pad,
                         f"tokens without padding ({where})", _TEXT_ARGS)


def _check_text(cls) -> str:
    g = _gen(13)
    make = lambda: build(cls, vocab_size=20, d_model=16, n_classes=2, pad_id=0)  # noqa: E731
    _text_geometry(cls, g, 20, 16, 2, 0, 12)
    _text_geometry(cls, g, 30, 8, 3, 3, 7)
    module_properties(make, lambda B: _tokens(B, g),
                      lambda out, inp: F.cross_entropy(out[0], (inp[0] == 5).any(1).long()),
                      large=lambda m: (scaled_copy(m, 30.0), _tokens(3, g)), names=_TEXT_ARGS)
    return ("Pads are ignored for any pad_id, weights depend on the tokens and sum to 1, "
            "logits (not probabilities) come out, and the classifier trains.")


# --------------------------------------------------------------------------
# image classifier attending over patches (the source's problem 4)
# --------------------------------------------------------------------------
def _one_patch_changes_one_weight(model, img, S, P, what) -> None:
    """Change the pixels of one p x p block: only that patch's score may change."""
    n = S // P
    r, c = n - 1, n // 2  # a block away from the first rows
    img2 = img.clone()
    img2[:, :, r * P:(r + 1) * P, c * P:(c + 1) * P] += 3.0
    w1, w2 = call(model, (img,), what, _PATCH_ARGS)[1], call(model, (img2,), what, _PATCH_ARGS)[1]
    if bool((w1 <= 0).any()) or bool((w2 <= 0).any()):
        return  # a zero weight (hard attention?): the log-ratio test does not apply
    shift = w2.double().log() - w1.double().log()  # (B, N): equal for untouched patches
    moved = (shift - shift.median(-1, keepdim=True).values).abs() > 1e-3
    count = moved.sum(-1)
    if bool((count > 1).any()):
        raise CheckFailure(f"{what}: changing the pixels of one {P}x{P} patch changed the "
                           f"scores of {int(count.max())} patches: your patches mix pixels "
                           f"from different places (a reshape to (B, N, C*p*p) without "
                           f"first permuting the patch-grid axes does this); use "
                           f"nn.Conv2d(C, D, p, stride=p) or unfold")
    if bool((count == 0).all()):
        raise CheckFailure(f"{what}: changing one patch's pixels did not change its "
                           f"weight: the scores must depend on the patch contents")


def _check_patches(cls) -> str:
    g = _gen(14)
    make = lambda: build(cls, image_size=8, patch_size=4, in_channels=1, d_model=16,  # noqa: E731
                         n_classes=3)
    try:
        cls(image_size=10, patch_size=4, in_channels=1, d_model=16, n_classes=3)
    except ValueError:
        pass
    except Exception as exc:
        if is_stub(exc):
            raise
        raise CheckFailure(learner_error(exc, "", "image_size=10, patch_size=4")) from None
    else:
        raise CheckFailure("image_size=10 with patch_size=4 should raise ValueError: "
                           "10 pixels do not split into whole 4-pixel patches")
    for S, P, C, K in ((8, 4, 1, 3), (12, 4, 3, 5), (8, 2, 2, 2)):
        N = (S // P) ** 2
        what = f"images (4, {C}, {S}, {S}) with patch_size {P} (N = (S / p)^2 = {N} patches)"
        model = build(cls, image_size=S, patch_size=P, in_channels=C, d_model=16,
                      n_classes=K).eval()
        img = torch.randn(4, C, S, S, generator=g)
        with torch.no_grad():
            logits, w = call_eval(model, (img,), what, _PATCH_ARGS)
            if tuple(logits.shape) != (4, K) or tuple(w.shape) != (4, N):
                raise CheckFailure(f"{what}: expected logits (4, {K}) and weights (4, {N}) "
                                   f"(one weight per {P}x{P} patch: N = (S / p)^2 = {N}), got "
                                   f"{tuple(logits.shape)} and {tuple(w.shape)}")
            _dtype_ok((logits, w), img.dtype, what)
            weights_ok(w, torch.ones_like(w, dtype=torch.bool), what)
            _not_probabilities(logits, what)
            if same(w[0], w[1], 1e-7) and same(_perturbed(model)(img)[1][0],
                                               _perturbed(model)(img)[1][1], 1e-7):
                raise CheckFailure("two different images get identical patch weights: the "
                                   "scores must depend on the patch contents")
            _one_patch_changes_one_weight(_perturbed(model), img, S, P, what)
    labels = torch.randint(0, 3, (16,), generator=g)
    imgs = torch.randn(16, 1, 8, 8, generator=g)
    module_properties(make, lambda B: (imgs[:B],),
                      lambda out, inp: F.cross_entropy(out[0], labels[:out[0].shape[0]]),
                      large=lambda m: (m, (imgs[:3] * 1e4,)), names=_PATCH_ARGS)
    return ("One weight per patch at every geometry, each patch scored from its own pixels; "
            "trains and stays finite.")


# --------------------------------------------------------------------------
# multimodal (text + image features) attention recommender (problem 5)
# --------------------------------------------------------------------------
def _mm_batch(B: int, g: torch.Generator, L: int = 5, N: int = 4):
    lengths = torch.randint(0, L + 1, (B,), generator=g)
    lengths[0] = L
    return (torch.randn(B, L, 6, generator=g), torch.randn(B, L, 10, generator=g),
            ref.padding_mask(lengths, L, side="left"),
            torch.randn(B, N, 6, generator=g), torch.randn(B, N, 10, generator=g))


def _mm_interventions(model, x, s, w, m) -> None:
    """Causes, not symmetries: each candidate alone drives its score, every input matters."""
    ht, hi, _, ct, ci = x
    g = _gen(17)
    ct2, ci2 = ct.clone(), ci.clone()
    ct2[:, 1] = torch.randn(ct2[:, 1].shape, generator=g)
    ci2[:, 1] = torch.randn(ci2[:, 1].shape, generator=g)
    s2 = call(model, (ht, hi, m, ct2, ci2), "one candidate changed", _MM_ARGS)[0]
    others = [0, 2, 3]
    if not same(s2[:, others], s[:, others]):
        raise CheckFailure("changing candidate 1's features changed the scores of the other "
                           "candidates: candidates are mixed with each other (e.g. "
                           "self-attention or a softmax over the candidates); score each "
                           "candidate on its own")
    if same(s2[:, 1], s[:, 1]):
        raise CheckFailure("changing candidate 1's features did not change its score")
    real = m[..., None]
    for name, i in (("history text", 0), ("history image", 1), ("candidate text", 3),
                    ("candidate image", 4)):
        y = list(x)
        noise = torch.randn(x[i].shape, generator=g)
        y[i] = x[i] + (noise * real if i < 2 else noise)
        if same(call(model, tuple(y), name, _MM_ARGS)[0], s):
            raise CheckFailure(f"the {name} features do not affect the scores: every "
                               f"modality of history and candidates must count")
    valid = m[:, None, :].expand_as(w)
    _content_matters(model, x, lambda out: out[1], valid, "history weights", _MM_ARGS)
    for mod in (model, _perturbed(model)):
        wv = call(mod, x, "weights per candidate", _MM_ARGS)[1]
        if not same(wv[:, 0], wv[:, 1], 1e-6):
            return
    raise CheckFailure("every candidate gets the same history weights: the weights must "
                       "depend on the candidate (target attention: the candidate is the "
                       "query)")


def _padding_ignored(model, x, s) -> None:
    """Features at padded history positions must not change any score."""
    ht, hi, m, ct, ci = x
    noisy = (ht.masked_fill(~m[..., None], 99.0), hi.masked_fill(~m[..., None], -99.0))
    if not same(call(model, (*noisy, m, ct, ci), "padding", _MM_ARGS)[0], s):
        raise CheckFailure("changing the features at padded history positions "
                           "changed the scores: mask the padding (every use of the history, "
                           "not only the attention weights, must ignore padded positions)")


def _check_multimodal(cls) -> str:
    g = _gen(15)
    make = lambda: build(cls, d_text=6, d_image=10, d_model=16)  # noqa: E731
    model = make().eval()
    ht, hi, m, ct, ci = x = _mm_batch(3, g)
    with torch.no_grad():
        s, w = call_eval(model, x, "a batch of 3 users, 5 history items, 4 candidates", _MM_ARGS)
        if tuple(s.shape) != (3, 4) or tuple(w.shape) != (3, 4, 5):
            raise CheckFailure(f"expected scores (3, 4) and weights (3, 4, 5), got "
                               f"{tuple(s.shape)} and {tuple(w.shape)}")
        _dtype_ok((s, w), ht.dtype, "a batch of 3 users", ("scores", "weights"))
        weights_ok(w, m[:, None, :], "history weights")
        _padding_ignored(model, x, s)
        _mm_interventions(model, x, s, w, m)
        one = tuple(t[:1, :1] if i != 2 else torch.ones(1, 1, dtype=torch.bool)
                    for i, t in enumerate(_mm_batch(1, g)))
        s1, w1 = call(model, one, "one user, one history item, one candidate", _MM_ARGS)
        if tuple(s1.shape) != (1, 1) or tuple(w1.shape) != (1, 1, 1):
            raise CheckFailure(f"with one user, one history item and one candidate expected "
                               f"scores (1, 1) and weights (1, 1, 1), got {tuple(s1.shape)} "
                               f"and {tuple(w1.shape)} (a .squeeze() without a dim?)")
    labels = torch.randint(0, 2, (4, 4), generator=g).float()
    fixed = _mm_batch(4, g)
    module_properties(make, lambda B: tuple(t[:B] for t in fixed) if B <= 4 else _mm_batch(B, g),
                      lambda out, inp: F.binary_cross_entropy_with_logits(
                          out[0], labels[:out[0].shape[0]]),
                      large=lambda mod: (mod, tuple(t * 1e3 if t.is_floating_point() else t
                                                    for t in _mm_batch(3, g))), names=_MM_ARGS)
    return ("Every modality counts, padding is masked, each candidate is scored on its own "
            "with weights that depend on it; it trains.")


# --------------------------------------------------------------------------
# the source's SimpleAttention, fixed to use its query
# --------------------------------------------------------------------------
def _pick_most_similar_loss(out, inputs):
    """MSE to the input row most similar to each query: learnable only via the query."""
    x, q = inputs
    idx = (q @ x.transpose(1, 2)).argmax(-1)  # (B, Lq)
    target = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))  # (B, Lq, D)
    return F.mse_loss(out[0], target)


def _check_simple(cls) -> str:
    g = _gen(16)
    make = lambda: build(cls, 8)  # noqa: E731
    model = make().eval()
    inp, qry = torch.randn(2, 6, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    mask = ref.padding_mask(torch.tensor([6, 4]), 6)
    with torch.no_grad():
        out, w = call_eval(model, (inp, qry, mask), "input_seq (2, 6, 8), query_seq (2, 3, 8)",
                           _SIMPLE_ARGS)
        if tuple(out.shape) != (2, 3, 8) or tuple(w.shape) != (2, 3, 6):
            raise CheckFailure(f"expected output (2, 3, 8) (one vector per query) and "
                               f"weights (2, 3, 6), got {tuple(out.shape)} and {tuple(w.shape)}")
        weights_ok(w, mask[:, None, :], "weights")
        if not same(out, w @ inp):
            raise CheckFailure("the output must be the weighted sum of input_seq: "
                               "weights @ input_seq")
        w2 = call(model, (inp, torch.randn(2, 3, 8, generator=g), mask), "a new query",
                  _SIMPLE_ARGS)[1]
        if same(w2, w):
            raise CheckFailure("Likely bug: the query is ignored (the source's bug): the "
                               "weights do not change when query_seq does; score each "
                               "input position against each query")
        perm = torch.tensor([2, 0, 1])
        if not same(call(model, (inp, qry[:, perm], mask), "permuted queries", _SIMPLE_ARGS)[0],
                    out[:, perm]):
            raise CheckFailure("reordering the queries should reorder the outputs only")
    module_properties(make, lambda B: (torch.randn(B, 6, 8, generator=g),
                                       torch.randn(B, 3, 8, generator=g)),
                      _pick_most_similar_loss, large=lambda m: (m, (inp * 1e3, qry * 1e3)),
                      needs_params=False, names=_SIMPLE_ARGS)  # the parameter-free dot-product fix is fine
    return "Uses its query, masks padding, returns a convex mix of the inputs; it trains."


EXERCISES = (
    Exercise("multi_head_attention", "05_multi_head_attention", "Multi-head attention from scratch",
             "MultiHeadAttention(d_model, n_heads).forward(query, key, value, mask=None)",
             _check_mha, "hard", 40, takes_class=True),
    Exercise("text_attention_classifier", "10_text_attention_classifier",
             "Text classifier with attention pooling",
             "AttentionTextClassifier(vocab_size, d_model, n_classes, pad_id=0)(tokens)",
             _check_text, "medium", 30, takes_class=True),
    Exercise("patch_attention_classifier", "11_patch_attention_classifier",
             "Image classifier attending over patches",
             "PatchAttentionClassifier(image_size, patch_size, in_channels, d_model, "
             "n_classes)(images)", _check_patches, "medium", 30, takes_class=True),
    Exercise("multimodal_attention_recommender", "12_multimodal_recommender",
             "Multimodal (text + image) attention recommender",
             "MultimodalAttentionRecommender(d_text, d_image, d_model)(hist_text, hist_image, "
             "hist_mask, cand_text, cand_image)", _check_multimodal, "hard", 40, takes_class=True),
    Exercise("bug_simple_attention", "15_bug_simple_attention",
             "Spot the bug: SimpleAttention ignores its query",
             "SimpleAttention(hidden_dim)(input_seq, query_seq, mask=None)",
             _check_simple, "medium", 20, takes_class=True),
)
