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
from recattn_lessons.grading.core import Case, CheckFailure, Exercise, Mistake, run_cases
from recattn_lessons.grading.properties import (build, call, module_properties, same,
                                                scaled_copy, weights_ok)

__all__ = ["EXERCISES"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
        if not isinstance(getattr(model, name, None), nn.Linear):
            raise CheckFailure(f"the module needs an attribute {name} = nn.Linear({D}, {D})")
    if getattr(model, "n_heads", None) != H:
        raise CheckFailure("store the number of heads as self.n_heads")
    reference = ref.MultiHeadAttention(D, H).eval()
    reference.load_state_dict({k: v for k, v in model.state_dict().items()
                               if k.split(".")[0] in ("W_q", "W_k", "W_v", "W_o")})
    g = _gen(12)
    x, y = torch.randn(2, 5, D, generator=g), torch.randn(2, 7, D, generator=g)
    pad = ref.padding_mask(torch.tensor([7, 3]), 7)[:, None, None, :]  # (B, 1, 1, Lk)
    cases = [Case("self-attention, x (2, 5, 12)", (x, x, x)),
             Case("cross-attention, Lq=5 != Lk=7, key padding mask (2, 1, 1, 7)", (x, y, y, pad)),
             Case("causal mask (5, 5)", (x, x, x, ref.causal_mask(5)))]
    with torch.no_grad():
        run_cases(model, cases, reference, _mha_mistakes(model), ("output", "weights"),
                  "forward(query, key, value, mask=None) -> (output, weights)")
    module_properties(lambda: build(cls, D, H), lambda B: (torch.randn(B, 5, D, generator=g),) * 3,
                      lambda out, inp: F.mse_loss(out[0], inp[0].flip(1)),
                      large=lambda m: (m, (torch.randn(2, 5, D, generator=g) * 1e3,) * 3))
    return "Equal to the reference multi-head attention; trains, any batch size, stable."


# --------------------------------------------------------------------------
# text classifier with attention pooling (the source's problem 3)
# --------------------------------------------------------------------------
def _tokens(B: int, g: torch.Generator, L: int = 12, V: int = 20):
    lengths = torch.randint(3, L + 1, (B,), generator=g)
    tok = torch.randint(1, V, (B, L), generator=g)
    return (tok.masked_fill(~ref.padding_mask(lengths, L), 0),)  # pad_id = 0 on the right


def _check_text(cls) -> str:
    g = _gen(13)
    make = lambda: build(cls, vocab_size=20, d_model=16, n_classes=2, pad_id=0)  # noqa: E731
    model = make().eval()
    (tok,) = _tokens(4, g)
    with torch.no_grad():
        logits, w = call(model, (tok,), "tokens (4, 12)")
        if tuple(logits.shape) != (4, 2) or tuple(w.shape) != (4, 12):
            raise CheckFailure(f"expected logits (4, 2) and weights (4, 12), got "
                               f"{tuple(logits.shape)} and {tuple(w.shape)}")
        weights_ok(w, tok != 0, "tokens (4, 12)")
        longer, _ = call(model, (F.pad(tok, (0, 5)),), "5 extra pad tokens")
        if not same(longer, logits):
            raise CheckFailure("appending pad tokens changed the logits: padding must "
                               "be masked out of the attention")
        empty, _ = call(model, (torch.zeros(2, 6, dtype=torch.long),), "all-padding input")
        if not torch.isfinite(empty).all():
            raise CheckFailure("an all-padding sequence gives NaN logits; give it zero weights")
    module_properties(make, lambda B: _tokens(B, g),
                      lambda out, inp: F.cross_entropy(out[0], (inp[0] == 5).any(1).long()),
                      large=lambda m: (scaled_copy(m, 30.0), _tokens(3, g)))
    return "Pads are ignored, weights sum to 1, and the classifier trains."


# --------------------------------------------------------------------------
# image classifier attending over patches (the source's problem 4)
# --------------------------------------------------------------------------
def _check_patches(cls) -> str:
    g = _gen(14)
    make = lambda: build(cls, image_size=8, patch_size=4, in_channels=1, d_model=16,  # noqa: E731
                         n_classes=3)
    try:
        cls(image_size=10, patch_size=4, in_channels=1, d_model=16, n_classes=3)
    except ValueError:
        pass
    except NotImplementedError:
        raise
    else:
        raise CheckFailure("image_size=10 with patch_size=4 should raise ValueError: "
                           "10 pixels do not split into whole 4-pixel patches")
    model = make().eval()
    img = torch.randn(4, 1, 8, 8, generator=g)
    with torch.no_grad():
        logits, w = call(model, (img,), "images (4, 1, 8, 8)")
        if tuple(logits.shape) != (4, 3) or tuple(w.shape) != (4, 4):
            raise CheckFailure(f"expected logits (4, 3) and weights (4, 4) (one weight per "
                               f"4x4 patch), got {tuple(logits.shape)} and {tuple(w.shape)}")
        weights_ok(w, torch.ones_like(w, dtype=torch.bool), "images (4, 1, 8, 8)")
        if same(w[0], w[1], 1e-7):
            raise CheckFailure("two different images get identical patch weights: the "
                               "scores must depend on the patch contents")
    labels = torch.randint(0, 3, (16,), generator=g)
    imgs = torch.randn(16, 1, 8, 8, generator=g)
    module_properties(make, lambda B: (imgs[:B],),
                      lambda out, inp: F.cross_entropy(out[0], labels[:out[0].shape[0]]),
                      large=lambda m: (m, (imgs[:3] * 1e4,)))
    return "One weight per patch, driven by content; trains and stays finite."


# --------------------------------------------------------------------------
# multimodal (text + image features) attention recommender (problem 5)
# --------------------------------------------------------------------------
def _mm_batch(B: int, g: torch.Generator, L: int = 5, N: int = 4):
    lengths = torch.randint(0, L + 1, (B,), generator=g)
    lengths[0] = L
    return (torch.randn(B, L, 6, generator=g), torch.randn(B, L, 10, generator=g),
            ref.padding_mask(lengths, L, side="left"),
            torch.randn(B, N, 6, generator=g), torch.randn(B, N, 10, generator=g))


def _check_multimodal(cls) -> str:
    g = _gen(15)
    make = lambda: build(cls, d_text=6, d_image=10, d_model=16)  # noqa: E731
    model = make().eval()
    ht, hi, m, ct, ci = x = _mm_batch(3, g)
    with torch.no_grad():
        s, w = call(model, x, "a batch of 3 users, 5 history items, 4 candidates")
        if tuple(s.shape) != (3, 4) or tuple(w.shape) != (3, 4, 5):
            raise CheckFailure(f"expected scores (3, 4) and weights (3, 4, 5), got "
                               f"{tuple(s.shape)} and {tuple(w.shape)}")
        weights_ok(w, m[:, None, :], "history weights")
        noisy = (ht.masked_fill(~m[..., None], 99.0), hi.masked_fill(~m[..., None], -99.0))
        if not same(call(model, (*noisy, m, ct, ci), "padding")[0], s):
            raise CheckFailure("changing the features at padded history positions "
                               "changed the scores: mask the padding")
        perm = torch.tensor([2, 0, 3, 1])
        if not same(call(model, (ht, hi, m, ct[:, perm], ci[:, perm]), "permuted")[0], s[:, perm]):
            raise CheckFailure("reordering the candidates should reorder their scores "
                               "and nothing else: score each candidate on its own")
        if same(call(model, (ht, hi, m, ct, ci + 1.0), "image")[0], s):
            raise CheckFailure("the candidates' image features do not affect the scores")
        if same(call(model, (ht + 1.0, hi, m, ct, ci), "text")[0], s):
            raise CheckFailure("the history's text features do not affect the scores")
    labels = torch.randint(0, 2, (4, 4), generator=g).float()
    fixed = _mm_batch(4, g)
    module_properties(make, lambda B: tuple(t[:B] for t in fixed) if B <= 4 else _mm_batch(B, g),
                      lambda out, inp: F.binary_cross_entropy_with_logits(
                          out[0], labels[:out[0].shape[0]]),
                      large=lambda mod: (mod, tuple(t * 1e3 if t.is_floating_point() else t
                                                    for t in _mm_batch(3, g))))
    return "Both modalities count, padding is masked, candidates are independent; it trains."


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
        out, w = call(model, (inp, qry, mask), "input_seq (2, 6, 8), query_seq (2, 3, 8)")
        if tuple(out.shape) != (2, 3, 8) or tuple(w.shape) != (2, 3, 6):
            raise CheckFailure(f"expected output (2, 3, 8) (one vector per query) and "
                               f"weights (2, 3, 6), got {tuple(out.shape)} and {tuple(w.shape)}")
        weights_ok(w, mask[:, None, :], "weights")
        if not same(out, w @ inp):
            raise CheckFailure("the output must be the weighted sum of input_seq: "
                               "weights @ input_seq")
        w2 = call(model, (inp, torch.randn(2, 3, 8, generator=g), mask), "a new query")[1]
        if same(w2, w):
            raise CheckFailure("Likely bug: the query is ignored (the source's bug): the "
                               "weights do not change when query_seq does; score each "
                               "input position against each query")
        perm = torch.tensor([2, 0, 1])
        if not same(call(model, (inp, qry[:, perm], mask), "permuted queries")[0], out[:, perm]):
            raise CheckFailure("reordering the queries should reorder the outputs only")
    module_properties(make, lambda B: (torch.randn(B, 6, 8, generator=g),
                                       torch.randn(B, 3, 8, generator=g)),
                      _pick_most_similar_loss, large=lambda m: (m, (inp * 1e3, qry * 1e3)))
    return "Uses its query, masks padding, returns a convex mix of the inputs; it trains."


EXERCISES = (
    Exercise("multi_head_attention", "05_multi_head_attention", "Multi-head attention from scratch",
             "MultiHeadAttention(d_model, n_heads).forward(query, key, value, mask=None)",
             _check_mha, "hard", 40),
    Exercise("text_attention_classifier", "10_text_attention_classifier",
             "Text classifier with attention pooling",
             "AttentionTextClassifier(vocab_size, d_model, n_classes, pad_id=0)(tokens)",
             _check_text, "medium", 30),
    Exercise("patch_attention_classifier", "11_patch_attention_classifier",
             "Image classifier attending over patches",
             "PatchAttentionClassifier(image_size, patch_size, in_channels, d_model, "
             "n_classes)(images)", _check_patches, "medium", 30),
    Exercise("multimodal_attention_recommender", "12_multimodal_recommender",
             "Multimodal (text + image) attention recommender",
             "MultimodalAttentionRecommender(d_text, d_image, d_model)(hist_text, hist_image, "
             "hist_mask, cand_text, cand_image)", _check_multimodal, "hard", 40),
    Exercise("bug_simple_attention", "15_bug_simple_attention",
             "Spot the bug: SimpleAttention ignores its query",
             "SimpleAttention(hidden_dim)(input_seq, query_seq, mask=None)",
             _check_simple, "medium", 20),
)
