"""Mutation test of the grader for the module exercises (05, 10, 11, 12, 15):
wrong classes fail with a message naming the mistake, correct-but-unusual
classes (no bias, zero init, einsum, unfold, parameter-free) pass, also when
``check`` itself runs under ``torch.no_grad()`` / ``torch.inference_mode()``.
See tests/test_grading_mutants.py for the function exercises.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mutant_catalogue import Catalogue, catalogue_tests

NEG = float("-inf")
CAT = Catalogue()
WRONG, RIGHT, counts = CAT.wrong, CAT.right, CAT.counts


def masked_softmax(s, keep, fill=NEG, zero_empty=True):
    w = torch.softmax(s.masked_fill(~keep, fill), -1)
    return w.nan_to_num(0.0) if zero_empty else w


# --------------------------------------------------------------------------
# 05 multi-head attention
# --------------------------------------------------------------------------
def mha(bug=None, *, bias=True, zero_out=False, einsum=False):
    class MultiHeadAttention(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.n_heads, self.d_head = n_heads, d_model // n_heads
            self.W_q, self.W_k = nn.Linear(d_model, d_model, bias=bias), nn.Linear(d_model, d_model, bias=bias)
            self.W_v, self.W_o = nn.Linear(d_model, d_model, bias=bias), nn.Linear(d_model, d_model, bias=bias)
            if zero_out:
                nn.init.zeros_(self.W_o.weight)
            if bug == "unused":
                self.gate = nn.Linear(d_model, d_model)
            self.drop = nn.Dropout(0.3)

        def forward(self, query, key, value, mask=None):
            B, Lq, D = query.shape
            H, Dh = self.n_heads, self.d_head
            if bug == "nosplit":
                split = lambda x: x.reshape(B, H, -1, Dh)  # noqa: E731
            else:
                split = lambda x: x.view(B, -1, H, Dh).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
            if bug == "detach":
                k = k.detach()
            scale = {"noscale": 1.0, "sqrtD": math.sqrt(D)}.get(bug, math.sqrt(Dh))
            if einsum:
                s = torch.einsum("bhqd,bhkd->bhqk", q, k) / scale
            else:
                s = q @ k.transpose(-2, -1) / scale
            if mask is not None:
                s = s.masked_fill(mask if bug == "invert" else ~mask, NEG)
            w = torch.softmax(s, -1).nan_to_num(0.0)
            if bug == "dropout":
                w = F.dropout(w, 0.3, training=True)  # ignores self.training
            out = (w @ v).transpose(1, 2).reshape(B, Lq, D) if bug != "nosplit" else (w @ v).reshape(B, Lq, D)
            out = out if bug == "no_wo" else self.W_o(out)
            return out, w
    return MultiHeadAttention


E = "multi_head_attention"
WRONG[E] = [(mha("noscale"), "missing scaling"), (mha("sqrtD"), "sqrt(d_model)"),
            (mha("nosplit"), "without a transpose"), (mha("no_wo"), "W_o missing"),
            (mha("invert"), "inverted"), (mha("unused"), "gate"), (mha("dropout"), "eval mode"),
            (mha("detach"), "no gradient")]
RIGHT[E] = [mha(bias=False), mha(zero_out=True), mha(einsum=True), mha()]


# --------------------------------------------------------------------------
# 10 text classifier
# --------------------------------------------------------------------------
def text(bug=None, *, zero_query=False, bias=True, mlp_score=False):
    class AttentionTextClassifier(nn.Module):
        def __init__(self, vocab_size, d_model, n_classes, pad_id=0):
            super().__init__()
            self.pad_id = 0 if bug == "pad0" else pad_id
            self.embed = nn.Embedding(vocab_size, d_model)
            self.encode = nn.Sequential(nn.Linear(d_model, d_model, bias=bias), nn.Tanh())
            if not mlp_score:
                self.query = nn.Parameter(torch.zeros(d_model) if zero_query else torch.randn(d_model) / 4)
            self.score = nn.Sequential(nn.Linear(d_model, 8), nn.Tanh(), nn.Linear(8, 1)) if mlp_score else None
            self.head = nn.Linear(d_model, n_classes, bias=bias)
            if bug == "unused":
                self.extra = nn.Linear(d_model, d_model)

        def forward(self, tokens):
            h = self.encode(self.embed(tokens))  # (B, L, D)
            keep = tokens != self.pad_id
            if bug == "meanpool":
                w = keep.float() / keep.sum(1, keepdim=True).clamp_min(1)
            else:
                s = self.score(h).squeeze(-1) if self.score is not None else h @ self.query / math.sqrt(h.shape[-1])
                if bug == "nomask":
                    keep = torch.ones_like(keep)
                w = masked_softmax(s, keep, fill=-1e9 if bug == "big_negative" else NEG)
            if bug == "dropout":
                w = F.dropout(w, 0.5)
            logits = self.head((w[..., None] * h).sum(1))
            if bug == "float64":  # "more precise" logits, not the dtype asked for
                return logits.double(), w
            if bug == "no_return":  # computed, never returned
                return
            return (logits.softmax(-1) if bug == "probs" else logits), w
    return AttentionTextClassifier


E = "text_attention_classifier"
WRONG[E] = [(text("meanpool"), "mean pooling"), (text("probs"), "probabilities"),
            (text("pad0"), "pad_id"), (text("big_negative"), "all-padding"),
            (text("nomask"), "padded"), (text("unused"), "extra"), (text("dropout"), "eval mode"),
            (text("float64"), "logits should have dtype torch.float32"),
            (text("no_return"), "forward returned None")]
RIGHT[E] = [text(zero_query=True), text(bias=False), text(mlp_score=True), text()]


# --------------------------------------------------------------------------
# 11 patch classifier
# --------------------------------------------------------------------------
def patches(bug=None, *, unfold=False, zero_query=False):
    class PatchAttentionClassifier(nn.Module):
        def __init__(self, image_size, patch_size, in_channels, d_model, n_classes):
            super().__init__()
            if image_size % patch_size and bug != "no_valueerror":
                raise ValueError("image_size must be a multiple of patch_size")
            self.p, self.n = patch_size, image_size // patch_size
            n_patches = self.n * 2 if bug == "count" else self.n ** 2
            self.embed = nn.Linear(in_channels * patch_size ** 2, d_model)
            self.pos = nn.Parameter(torch.randn(n_patches, d_model) * 0.02)
            self.query = nn.Parameter(torch.zeros(d_model) if zero_query else torch.randn(d_model) / 4)
            self.head = nn.Linear(d_model, n_classes)

        def forward(self, images):
            B, C, S, _ = images.shape
            p, n = self.p, self.n
            if bug == "inplace":  # normalise the caller's images in place
                images.sub_(images.mean())
            if bug == "reshape":
                x = images.reshape(B, n * n, C * p * p)  # no permute: scrambled pixels
            elif unfold:
                x = F.unfold(images, p, stride=p).transpose(1, 2)  # (B, N, C p p)
            else:
                x = images.reshape(B, C, n, p, n, p).permute(0, 2, 4, 1, 3, 5).reshape(B, n * n, C * p * p)
            z = torch.tanh(self.embed(x) + self.pos)  # (B, N, D)
            if bug == "meanpool":
                w = torch.full(z.shape[:2], 1 / z.shape[1])
            else:
                w = torch.softmax(z @ self.query / math.sqrt(z.shape[-1]), -1)
            out = self.head((w[..., None] * z).sum(1))
            if bug == "probs":
                return out.softmax(-1), w
            if bug == "float64":
                return out.double(), w.double()
            return (out.squeeze(), w.squeeze()) if bug == "squeeze" else (out, w)
    return PatchAttentionClassifier


E = "patch_attention_classifier"
WRONG[E] = [(patches("reshape"), "permut"), (patches("count"), "N = (S / p)^2"),
            (patches("no_valueerror"), "ValueError"), (patches("meanpool"), "identical patch weights"),
            (patches("squeeze"), "batch size 1"), (patches("probs"), "probabilities"),
            (patches("float64"), "dtype torch.float32"), (patches("inplace"), "input `images` in place")]


def _patch_dropout():
    base = patches()

    class Dropped(base):
        def forward(self, images):
            out, w = super().forward(images)
            return F.dropout(out, 0.5), w  # always on
    return Dropped


def _patch_batchmix():
    base = patches()

    class Mixed(base):  # a batch-wide normalisation: images influence each other
        def forward(self, images):
            out, w = super().forward(images)
            w = w * 0.5 + w.mean(0, keepdim=True) * 0.5
            return out, w
    return Mixed


WRONG[E] += [(_patch_dropout(), "eval mode"), (_patch_batchmix(), "patches")]
RIGHT[E] = [patches(unfold=True), patches(zero_query=True), patches()]


# --------------------------------------------------------------------------
# 12 multimodal recommender
# --------------------------------------------------------------------------
def mm(bug=None, *, fusion="sum", bias=True):
    class MultimodalAttentionRecommender(nn.Module):
        def __init__(self, d_text, d_image, d_model):
            super().__init__()
            if fusion != "concat":
                self.text, self.image = nn.Linear(d_text, d_model, bias=bias), nn.Linear(d_image, d_model, bias=bias)
            self.cat = nn.Linear(d_text + d_image, d_model) if fusion == "concat" else None
            self.gate = nn.Linear(d_text + d_image, 1) if fusion == "gate" else None
            self.W_q = nn.Linear(d_model, d_model, bias=False)
            self.W_k = nn.Linear(d_model, d_model, bias=False)

        def item(self, t, i, which):
            if self.cat is not None:
                return self.cat(torch.cat([t, i], -1))
            if self.gate is not None:
                g = torch.sigmoid(self.gate(torch.cat([t, i], -1)))
                return g * self.text(t) + (1 - g) * self.image(i)
            if (bug == "no_hist_image" and which == "h") or (bug == "no_cand_text" and which == "c"):
                return self.text(t) if bug == "no_hist_image" else self.image(i)
            return self.text(t) + self.image(i)

        def forward(self, hist_text, hist_image, hist_mask, cand_text, cand_image):
            if bug == "inplace":  # rescales the caller's features
                hist_text.mul_(0.5)
            h, c = self.item(hist_text, hist_image, "h"), self.item(cand_text, cand_image, "c")
            if bug == "mix":  # candidates attend to each other first
                c = c + torch.softmax(c @ c.transpose(1, 2), -1) @ c
            if bug == "user_query":  # one query per user (masked mean of the history)
                m = hist_mask[..., None].float()
                q = self.W_q((h * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)).expand_as(c)
            else:
                q = self.W_q(c)
            s = q @ self.W_k(h).transpose(1, 2) / math.sqrt(h.shape[-1])  # (B, N, L)
            keep = hist_mask[:, None, :].expand_as(s)
            if bug == "meanpool":
                w = keep.float() / keep.sum(-1, keepdim=True).clamp_min(1)
            else:
                w = masked_softmax(s, torch.ones_like(keep) if bug == "nomask" else keep)
            scores = ((w @ h) * c).sum(-1)
            if bug == "float64":
                return scores.double(), w
            return (scores.squeeze(), w.squeeze()) if bug == "squeeze" else (scores, w)
    return MultimodalAttentionRecommender


E = "multimodal_attention_recommender"
WRONG[E] = [(mm("mix"), "other candidates"), (mm("no_hist_image"), "history image"),
            (mm("no_cand_text"), "candidate text"), (mm("meanpool"), "uniform"),
            (mm("user_query"), "same history weights"), (mm("nomask"), "padded"),
            (mm("squeeze"), "squeeze"), (mm("inplace"), "input `hist_text` in place"),
            (mm("float64"), "scores should have dtype torch.float32")]
RIGHT[E] = [mm(fusion="gate"), mm(fusion="concat"), mm(bias=False), mm()]


# --------------------------------------------------------------------------
# 15 SimpleAttention, fixed
# --------------------------------------------------------------------------
def simple(bug=None, *, params=True, einsum=False):
    class SimpleAttention(nn.Module):
        def __init__(self, hidden_dim):
            super().__init__()
            if bug == "source":
                self.attn = nn.Linear(hidden_dim, 1)
            if params:
                self.W_q = nn.Linear(hidden_dim, hidden_dim, bias=False)
                self.W_k = nn.Linear(hidden_dim, hidden_dim, bias=False)
            if bug == "project_values":
                self.W_v = nn.Linear(hidden_dim, hidden_dim)

        def forward(self, input_seq, query_seq, mask=None):
            if bug == "source":  # the article's code: the query is ignored
                s = self.attn(input_seq).squeeze(2)[:, None, :].expand(-1, query_seq.shape[1], -1)
            else:
                q = self.W_q(query_seq) if params else query_seq
                k = self.W_k(input_seq) if params else input_seq
                s = (torch.einsum("bqd,bld->bql", q, k) if einsum else q @ k.transpose(1, 2)) / math.sqrt(q.shape[-1])
            if mask is not None and bug != "nomask":
                s = s.masked_fill(mask[:, None, :] if bug == "invert" else ~mask[:, None, :], NEG)
            w = torch.softmax(s, -1).nan_to_num(0.0)
            out = w @ (self.W_v(input_seq) if bug == "project_values" else input_seq)
            if bug == "one_output":
                return out.mean(1), w
            return (out.squeeze(), w.squeeze()) if bug == "squeeze" else (out, w)
    return SimpleAttention


E = "bug_simple_attention"
WRONG[E] = [(simple("source"), "query is ignored"), (simple("nomask"), "padded"),
            (simple("invert"), "padded"), (simple("project_values"), "weighted sum"),
            (simple("one_output"), "one vector per query"), (simple("squeeze"), "batch size 1")]
RIGHT[E] = [simple(params=False), simple(einsum=True), simple()]


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


def test_every_module_exercise_has_enough_programs():
    few = {e: c for e, c in counts().items() if c[0] < 6 or c[1] < 3}
    assert len(counts()) == 5 and not few, few


(test_wrong_module_fails_and_names_the_mistake, test_correct_module_passes,
 test_correct_module_passes_under_no_grad) = catalogue_tests(CAT)
