"""Mutation test of the grader for the generative-recommender exercises (21, 22, 23;
lesson 08): wrong programs fail with a message naming the mistake, correct-but-unusual
programs pass (einsum, float64 inside, a loop over positions or users, a -1e9 fill
before SiLU, which rounds to exactly 0, F.cross_entropy, F.logsigmoid, BCE with
weights), also when ``check`` runs under ``torch.no_grad()``. The graders' references
are checked here against the course's own code (``hstu.Block``) and brute force.
See tests/test_grading_mutants.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mutant_catalogue import Catalogue, catalogue_tests
from recattn_lessons.grading import EXERCISES, check, exercises_generative as G
from recattn_lessons.models.hstu import HSTUConfig, Block, hstu_mask

NEG = float("-inf")
CAT = Catalogue()
WRONG, RIGHT, wrong, right = CAT.wrong, CAT.right, CAT.add_wrong, CAT.add_right


def counts() -> dict[str, tuple[int, int]]:
    """Exercise id -> (wrong programs, correct programs) tried here."""
    return CAT.counts([e.id for e in G.EXERCISES])


# --------------------------------------------------------------------------
# 21 HSTU's pointwise attention
# --------------------------------------------------------------------------
def pw(*, act=F.silu, scale=None, norm="n", fill=None, bias_at="inside", mask_at="A",
       ret="masked", dtype=None):
    """A learner's pointwise attention with one switch per bug."""
    def fn(q, k, v, bias, mask, n):
        if dtype is not None:  # computed (and returned) in another precision
            q, k, v, bias = (t.to(dtype) for t in (q, k, v, bias))
        s = q @ k.transpose(-2, -1)
        if scale == "inside":
            s = s / math.sqrt(q.shape[-1])
        if bias_at == "inside":
            s = s + bias
        elif bias_at == "masked":
            s = s + bias * mask
        if fill is not None:
            s = s.masked_fill(~mask, fill)
        a = act(s)
        if bias_at == "after":
            a = a + bias
        a = {"n": lambda: a / n, "L": lambda: a / q.shape[-2], "none": lambda: a,
             "sqrt": lambda: a / math.sqrt(q.shape[-1])}[norm]()
        raw = a
        if mask_at == "A":
            a = a * mask
        out = (raw if ret == "output_unmasked" else a) @ v
        return out, (raw if ret == "unmasked" else a)
    return fn


E = "pointwise_attention"
for kw, words in [({"norm": "sqrt"}, "sqrt(d_q)"), ({"scale": "inside"}, "sqrt(d_q)"),
                  ({"norm": "L"}, "instead of n"), ({"norm": "none"}, "no division by n"),
                  ({"fill": NEG}, "-inf before SiLU"), ({"bias_at": "masked", "mask_at": "none"}, "bias only"),
                  ({"bias_at": "none"}, "bias dropped"), ({"bias_at": "after"}, "after SiLU"),
                  ({"mask_at": "none"}, "mask ignored"), ({"ret": "unmasked"}, "before masking"),
                  ({"ret": "output_unmasked"}, "before masking"), ({"act": torch.sigmoid}, "instead of SiLU"),
                  ({"dtype": torch.float32}, "dtype")]:
    wrong(E, words)(pw(**kw))


@wrong(E, "softmax instead of SiLU")
def _pw_sasrec_habit(q, k, v, bias, mask, n):  # lesson 03's attention with the bias added
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + bias
    w = torch.softmax(s.masked_fill(~mask, NEG), dim=-1).nan_to_num(0.0)
    return w @ v, w


@wrong(E, "softmax instead of SiLU")
def _pw_softmax_big_negative(q, k, v, bias, mask, n):  # -1e9: padded rows become uniform
    w = torch.softmax((q @ k.transpose(-2, -1) + bias).masked_fill(~mask, -1e9), dim=-1)
    return w @ v, w  # no catalogued variant: named because every row sums to 1


@wrong(E, "-inf before SiLU")
def _pw_additive_mask(q, k, v, bias, mask, n):  # SASRec's additive -inf mask folded into the bias
    bias = bias + torch.zeros(mask.shape, dtype=q.dtype).masked_fill(~mask, NEG)
    a = F.silu(q @ k.transpose(-2, -1) + bias) / n
    return a @ v, a


@wrong(E, "count of real items")
def _pw_row_count(q, k, v, bias, mask, n):  # "n = how many items the user has so far"
    a = F.silu(q @ k.transpose(-2, -1) + bias) * mask
    a = a / mask.sum(-1, keepdim=True)  # 0 / 0 = NaN on padded rows as well
    return a @ v, a


@wrong(E, "inside the SiLU")
def _pw_divide_first(q, k, v, bias, mask, n):
    a = F.silu((q @ k.transpose(-2, -1) + bias) / n) * mask
    return a @ v, a


@wrong(E, "in place")
def _pw_fold_n_into_v(q, k, v, bias, mask, n):  # saves a multiply, edits the caller's v
    a = F.silu(q @ k.transpose(-2, -1) + bias) * mask
    v /= n
    return a @ v, a / n


@right(E)
def _pw_einsum_where(q, k, v, bias, mask, n):
    s = torch.einsum("bhid,bhjd->bhij", q, k) + bias
    a = torch.where(mask, F.silu(s), torch.zeros((), dtype=q.dtype)) / n
    return torch.einsum("bhij,bhjd->bhid", a, v), a


@right(E)
def _pw_loop_over_queries(q, k, v, bias, mask, n):  # one query position at a time, float64 inside
    B, H, L, _ = q.shape
    bias, mask = bias.expand(B, H, L, L).double(), mask.expand(B, H, L, L)
    rows = []
    for i in range(L):
        s = (q[:, :, i:i + 1].double() @ k.double().transpose(-2, -1)).squeeze(2) + bias[:, :, i]
        rows.append(s * torch.sigmoid(s) / n * mask[:, :, i])  # SiLU by hand
    a = torch.stack(rows, 2)  # (B, H, L, L)
    return (a @ v.double()).to(q.dtype), a.to(q.dtype)


right(E)(pw(fill=-1e9, mask_at="none"))  # SiLU(-1e9) = -1e9 * sigmoid(-1e9) = -0.0 exactly: a mask
right(E)(pw())


# --------------------------------------------------------------------------
# 22 sampled softmax with the logQ correction
# --------------------------------------------------------------------------
def ss(*, corr="ok", pos_corr=False, hits=True, pads=True, pad_targets=True, reduce="mean",
       loss="softmax", naive=None, dtype=None, detach_items=False):
    """A learner's sampled softmax with one switch per bug."""
    def fn(hidden, targets, item_weight, negatives, log_q):
        has = targets > 0 if pad_targets else torch.ones_like(targets, dtype=torch.bool)
        h, y, neg = hidden[has], targets[has], negatives[has]
        W = item_weight.detach() if detach_items else item_weight
        if dtype is not None:
            h, W = h.to(dtype), W.to(dtype)
        pos = (h * W[y]).sum(-1)
        s = (h[:, None, :] * W[neg]).sum(-1)  # (M, K)
        K = negatives.shape[-1]
        lq = log_q[neg].to(s.dtype)
        s = {"ok": s - lq - math.log(K), "none": s, "plus": s + lq + math.log(K),
             "no_k": s - lq}[corr]
        if pos_corr:
            pos = pos - log_q[y] - math.log(K)
        drop = torch.zeros_like(neg, dtype=torch.bool)
        if hits:
            drop |= neg == y[:, None]
        if pads:
            drop |= neg == 0
        if loss == "bce":  # BCE with logits, dropped entries weighted 0
            logits = torch.cat([pos[:, None], s], 1)
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1
            weight = torch.cat([torch.ones_like(pos[:, None]), (~drop).to(s.dtype)], 1)
            return F.binary_cross_entropy_with_logits(logits, labels, weight=weight)
        s = s.masked_fill(drop, NEG)
        logits = torch.cat([pos[:, None], s], 1) if loss != "no_positive" else s
        if naive == "exp":
            per = torch.log(torch.exp(logits).sum(1)) - pos
        elif naive == "softmax":
            per = -torch.log(torch.softmax(torch.cat([pos[:, None], s], 1), 1)[:, 0])
        else:
            per = torch.logsumexp(logits, 1) - pos
        if not pad_targets:
            return per.mean()
        return {"mean": per.mean, "sum": per.sum, "none": lambda: per}[reduce]()
    return fn


E = "sampled_softmax_logq"
for kw, words in [({"corr": "none"}, "no logQ correction"), ({"corr": "plus"}, "wrong sign"),
                  ({"corr": "no_k"}, "log K forgotten"), ({"pos_corr": True}, "positive too"),
                  ({"hits": False}, "accidental hits not masked"), ({"pads": False}, "padding negatives"),
                  ({"pad_targets": False}, "without a target"), ({"reduce": "sum"}, "sum instead of mean"),
                  ({"loss": "bce"}, "binary cross-entropy"), ({"loss": "no_positive"}, "denominator"),
                  ({"naive": "exp"}, "overflows"), ({"naive": "softmax"}, "overflows"),
                  ({"reduce": "none"}, "shape"), ({"dtype": torch.float64}, "dtype"),
                  ({"detach_items": True}, "gradient with respect to item_weight")]:
    wrong(E, words)(ss(**kw))


@wrong(E, "positive too")
def _ss_correct_every_column(hidden, targets, item_weight, negatives, log_q):  # Yi et al.'s in-batch habit
    has = targets > 0
    h, y, neg = hidden[has], targets[has], negatives[has]
    ids = torch.cat([y[:, None], neg], 1)  # (M, 1 + K), the target first
    logits = (h[:, None, :] * item_weight[ids]).sum(-1) - log_q[ids] - math.log(neg.shape[-1])
    logits[:, 1:] = logits[:, 1:].masked_fill((neg == y[:, None]) | (neg == 0), NEG)
    return F.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long))


@wrong(E, "in place")
def _ss_hits_to_padding(hidden, targets, item_weight, negatives, log_q):
    negatives[negatives == targets[..., None]] = 0  # "turn hits into padding", in the caller's tensor
    return ss()(hidden, targets, item_weight, negatives, log_q)


wrong(E, "torch.Tensor")(lambda *a: ss()(*a).item())


@right(E)
def _ss_cross_entropy_where(hidden, targets, item_weight, negatives, log_q):
    has = targets.gt(0)
    h, y, neg = hidden[has], targets[has], negatives[has]
    s = torch.einsum("md,mkd->mk", h, item_weight[neg]) - log_q[neg] - math.log(neg.size(-1))
    s = torch.where((neg != y.unsqueeze(1)) & (neg != 0), s, torch.full_like(s, NEG))
    logits = torch.cat([torch.einsum("md,md->m", h, item_weight[y]).unsqueeze(1), s], 1)
    return F.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long))


@right(E)
def _ss_loop_float64(hidden, targets, item_weight, negatives, log_q):  # one position at a time
    total, count = torch.zeros((), dtype=torch.float64), 0
    B, L = targets.shape
    for b in range(B):
        for l in range(L):
            y = int(targets[b, l])
            if y == 0:
                continue
            h = hidden[b, l].double()
            terms = [h @ item_weight[y].double()]
            for j in negatives[b, l].tolist():
                if j not in (0, y):
                    terms.append(h @ item_weight[j].double() - log_q[j].double()
                                 - math.log(negatives.shape[-1]))
            total = total + torch.logsumexp(torch.stack(terms), 0) - terms[0]
            count += 1
    return (total / count).to(hidden.dtype)


@right(E)
def _ss_all_scores_then_gather(hidden, targets, item_weight, negatives, log_q):
    scores = hidden @ item_weight.T - log_q  # (B, L, N + 1): every item, corrected
    s = scores.gather(-1, negatives) - math.log(negatives.shape[-1])  # (B, L, K)
    pos = hidden.mul(item_weight[targets]).sum(-1)  # (B, L), uncorrected
    s = s.masked_fill((negatives == targets[..., None]) | (negatives == 0), NEG)
    per = torch.logsumexp(torch.cat([pos[..., None], s], -1), -1) - pos
    has = targets > 0
    return per[has].mean()


right(E)(ss())


# --------------------------------------------------------------------------
# 23 gBCE
# --------------------------------------------------------------------------
def gb(*, beta_of=None, on="positive", naive=None, den="valid+1", hits=True, pad_targets=True,
       reduce="mean", dtype=None):
    """A learner's gBCE with one switch per bug; ``beta_of(K, N, t)`` overrides beta."""
    def beta_fn(K, N, t):
        alpha = min(1.0, K / (N - 1))
        return alpha * (t * (1 - 1 / alpha) + 1 / alpha)

    def fn(hidden, targets, item_weight, negatives, n_items, t):
        beta = (beta_of or beta_fn)(negatives.shape[-1], n_items, t)
        has = targets > 0 if pad_targets else torch.ones_like(targets, dtype=torch.bool)
        h, y, neg = hidden[has], targets[has], negatives[has]
        if dtype is not None:
            h, item_weight = h.to(dtype), item_weight.to(dtype)
        pos = (h * item_weight[y]).sum(-1)
        s = torch.einsum("md,mkd->mk", h, item_weight[neg])
        valid = neg != 0
        if hits:
            valid &= neg != y[:, None]
        if naive == "log":
            lp, ln = -torch.log(torch.sigmoid(pos)), -torch.log(1 - torch.sigmoid(s))
        elif naive == "eps":
            lp, ln = -torch.log(torch.sigmoid(pos) + 1e-8), -torch.log(1 - torch.sigmoid(s) + 1e-8)
        else:
            lp, ln = -F.logsigmoid(pos), -F.logsigmoid(-s)
        bp, bn = {"positive": (beta, 1.0), "negatives": (1.0, beta), "both": (beta, beta)}[on]
        terms = bp * lp + (bn * ln * valid).sum(1)
        count = {"valid+1": 1 + valid.sum(1), "valid": valid.sum(1)}[den]
        per = terms / count
        return per.sum() if reduce == "sum" else per.mean()
    return fn


E = "gbce_loss"
for kw, words in [({"on": "negatives"}, "beta applied to the negatives"),
                  ({"on": "both"}, "beta applied to the negatives"),
                  ({"beta_of": lambda K, N, t: min(1.0, K / (N - 1))}, "t ignored"),
                  ({"beta_of": lambda K, N, t: 1.0}, "plain BCE"),
                  ({"beta_of": lambda K, N, t: min(1.0, K / N) * (t * (1 - N / K) + N / K)}, "K / N"),
                  ({"beta_of": lambda K, N, t: (K / (N - 1)) * (t * (1 - (N - 1) / K) + (N - 1) / K)},
                   "capped at 1"),
                  ({"naive": "log"}, "computed naively"), ({"naive": "eps"}, "computed naively"),
                  ({"den": "valid"}, "instead of K + 1"), ({"hits": False}, "accidental hits not masked"),
                  ({"pad_targets": False}, "without a target"), ({"reduce": "sum"}, "sum instead of mean"),
                  ({"dtype": torch.float64}, "dtype")]:
    wrong(E, words)(gb(**kw))


@wrong(E, "K / N")
def _gb_rows_of_item_weight(hidden, targets, item_weight, negatives, n_items, t):
    N = item_weight.shape[0] - 1  # = n_items: the "- 1" of N - 1 went into the padding row
    alpha = min(1.0, negatives.shape[-1] / N)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    return gb(beta_of=lambda K, N_, t_: beta)(hidden, targets, item_weight, negatives, n_items, t)


@wrong(E, "counted in K + 1")
def _gb_bce_with_weights(hidden, targets, item_weight, negatives, n_items, t):
    """F.binary_cross_entropy_with_logits with weights: its mean divides by every entry."""
    alpha = min(1.0, negatives.shape[-1] / (n_items - 1))
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    has = targets > 0
    h, y, neg = hidden[has], targets[has], negatives[has]
    ids = torch.cat([y[:, None], neg], 1)
    logits = torch.einsum("md,mkd->mk", h, item_weight[ids])
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    weight = torch.cat([torch.full_like(logits[:, :1], beta),
                        ((neg != y[:, None]) & (neg != 0)).to(logits.dtype)], 1)
    return F.binary_cross_entropy_with_logits(logits, labels, weight=weight)


@right(E)
def _gb_weighted_bce_per_position(hidden, targets, item_weight, negatives, n_items, t):
    K = negatives.shape[-1]
    alpha = min(1.0, K / (n_items - 1))
    beta = 1 - t * (1 - alpha)  # the same beta, simplified
    has = targets > 0
    h, y, neg = hidden[has], targets[has], negatives[has]
    ids = torch.cat([y[:, None], neg], 1)
    logits = (h[:, None, :] * item_weight[ids]).sum(-1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    keep = torch.cat([torch.ones_like(y[:, None], dtype=torch.bool),
                      (neg != y[:, None]) & (neg != 0)], 1)
    weight = keep.to(logits.dtype)
    weight[:, 0] = beta
    per = F.binary_cross_entropy_with_logits(logits, labels, weight=weight, reduction="none").sum(1)
    return (per / keep.sum(1)).mean()


@right(E)
def _gb_loop_float64(hidden, targets, item_weight, negatives, n_items, t):
    K = negatives.shape[-1]
    alpha = min(1.0, K / (n_items - 1))
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    losses = []
    for b, l in (targets > 0).nonzero().tolist():
        h, y = hidden[b, l].double(), int(targets[b, l])
        terms = [beta * F.softplus(-(h @ item_weight[y].double()))]
        terms += [F.softplus(h @ item_weight[j].double()) for j in negatives[b, l].tolist()
                  if j not in (0, y)]
        losses.append(torch.stack(terms).sum() / len(terms))
    return torch.stack(losses).mean().to(hidden.dtype)


right(E)(gb())


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------


def test_every_generative_exercise_has_enough_programs():
    few = {e: c for e, c in counts().items() if c[0] < 6 or c[1] < 3}
    assert set(counts()) == {"pointwise_attention", "sampled_softmax_logq", "gbce_loss"}
    assert set(counts()) <= set(EXERCISES) and not few, few


(test_wrong_program_fails_and_names_the_mistake, test_correct_program_passes,
 test_correct_program_passes_under_no_grad) = catalogue_tests(CAT)


# --------------------------------------------------------------------------
# the graders' references against the course's code and brute force
# --------------------------------------------------------------------------
def test_pointwise_reference_is_the_hstu_blocks_attention():
    """Block.forward's A, recomputed from its own q, k, v and bias, and by a loop."""
    cfg = HSTUConfig(n_items=20, maxlen=6, d_model=8, n_heads=2, dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = Block(cfg, 4, 4, cfg.maxlen - 1).double().eval()
        with torch.no_grad():
            block.rab.pos.normal_()  # a bias large enough to matter
        history = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
        x = torch.randn(2, 5, 8, dtype=torch.float64) * (history != 0)[..., None]
    mask = hstu_mask(history)
    with torch.no_grad():
        _, a = block(x, mask, history != 0)
        u, v, q, k = F.silu(block.f1(block.ln_in(x))).split([8, 8, 8, 8], -1)
        q, k, v = (t.view(2, 5, 2, 4).transpose(1, 2) for t in (q, k, v))
        out, want = G.pointwise_reference(q, k, v, block.rab(5)[:, None], mask, cfg.maxlen)
    torch.testing.assert_close(want, a, atol=1e-14, rtol=0)
    torch.testing.assert_close(out, a @ v, atol=1e-14, rtol=0)
    bias = block.rab(5)[0].detach()
    for b, h, i, j in torch.cartesian_prod(*(torch.arange(s) for s in (2, 2, 5, 5))).tolist():
        z = float(q[b, h, i] @ k[b, h, j] + bias[i, j])
        by_hand = z / (1 + math.exp(-z)) / cfg.maxlen if mask[b, 0, i, j] else 0.0
        assert abs(float(want[b, h, i, j]) - by_hand) < 1e-14


def test_loss_references_equal_the_formulas_position_by_position():
    g = torch.Generator().manual_seed(5)
    hidden, targets, Ew, negatives, log_q = G._problem(g, 2, 4, 6, 20, 5, [4, 2], hits=3, pads=2)
    K, t, N = negatives.shape[-1], 0.75, 20
    alpha = K / (N - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    ss_terms, gb_terms = [], []
    for b, l in (targets > 0).nonzero().tolist():
        h, y = hidden[b, l], int(targets[b, l])
        s_y = float(h @ Ew[y])
        negs = [j for j in negatives[b, l].tolist() if j not in (0, y)]
        s = [float(h @ Ew[j]) for j in negs]
        ss_terms.append(-s_y + math.log(math.exp(s_y) + sum(
            math.exp(sk - float(log_q[j]) - math.log(K)) for sk, j in zip(s, negs))))
        sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
        gb_terms.append(-(beta * math.log(sig(s_y)) + sum(math.log(1 - sig(sk)) for sk in s))
                        / (len(s) + 1))
    ss_want, gb_want = sum(ss_terms) / len(ss_terms), sum(gb_terms) / len(gb_terms)
    assert abs(float(G.sampled_reference(hidden, targets, Ew, negatives, log_q)) - ss_want) < 1e-12
    assert abs(float(G.gbce_reference(hidden, targets, Ew, negatives, N, t)) - gb_want) < 1e-12


def test_every_check_is_fast():
    import time

    for eid, progs in RIGHT.items():
        t0 = time.perf_counter()
        assert check(eid, progs[-1]).passed
        assert time.perf_counter() - t0 < 2.0, eid
