"""check() always answers with a CheckResult (issue 8), and the grader's own
tolerances and property checks bite (issue 18's grader self-tests)."""

from __future__ import annotations

import random
import threading
import time

import torch
from torch import nn

from recattn_lessons import attention as A
from recattn_lessons import metrics
from recattn_lessons.grading import check, core, exercises_modules, hint, properties
from recattn_lessons.grading.core import tolerances


# --------------------------------------------------------------------------
# the API: never a traceback
# --------------------------------------------------------------------------
def _loop(x, dim=-1):
    while True:
        pass


def test_an_infinite_loop_is_stopped_with_a_message():
    t0 = time.monotonic()
    res = check("softmax", _loop, timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert not res.passed and "stopped after 0.5 s" in res.message and "loop" in res.message


def test_a_loop_that_swallows_exceptions_is_stopped_too():
    def sneaky(x, dim=-1):
        while True:
            try:
                while True:
                    pass
            except Exception:
                pass
    assert "stopped after" in check("softmax", sneaky, timeout=0.3).message


def test_the_time_limit_works_outside_the_main_thread():
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("r", check("softmax", _loop, timeout=0.3)))
    th.start()
    th.join(10)
    assert not th.is_alive() and "stopped after" in box["r"].message


def test_learner_output_is_captured_and_truncated(capsys):
    def chatty(x, dim=-1):
        for i in range(20000):
            print("debug line", i)
        return A.softmax(x, dim)
    res = check("softmax", chatty)
    assert res.passed
    assert capsys.readouterr().out == ""  # nothing reached the notebook's output
    assert "Your code printed" in res.message and "0,000 lines in all" in res.message
    assert len(res.message) < 2000


def test_global_state_is_restored():
    def messy(x, dim=-1):
        torch.manual_seed(99)
        random.seed(99)
        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        return A.softmax(x, dim)
    torch.manual_seed(5)
    random.seed(5)
    rng, py, threads = torch.random.get_rng_state(), random.getstate(), torch.get_num_threads()
    check("softmax", messy)
    assert torch.equal(torch.random.get_rng_state(), rng) and random.getstate() == py
    assert torch.get_num_threads() == threads and torch.get_default_dtype() == torch.float32
    assert torch.is_grad_enabled()


def test_unknown_id_and_string_hint_level():
    res = check("scaled_dot_product_atention", A.scaled_dot_product_attention)
    assert not res.passed and "did you mean 'scaled_dot_product_attention'" in res.message
    assert "Hint 2" in str(hint("softmax", "2"))


def test_not_attempted_only_for_the_stub_itself():
    from recattn_lessons.exercises import STUB

    ns: dict = {}
    exec(f"def stub(x, dim=-1):\n    {STUB}", ns)
    assert check("softmax", ns["stub"]).status == "not attempted"

    def helper(x):
        raise NotImplementedError("my helper for the float16 case")

    res = check("softmax", lambda x, dim=-1: helper(x))
    assert res.status == "failed" and "my helper" in res.message and "in helper()" in res.message


def test_module_instance_and_function_for_a_class_get_clear_messages():
    res = check("multi_head_attention", A.MultiHeadAttention(12, 3))
    assert not res.passed and "class itself, not an instance" in res.message
    res = check("softmax", A.MultiHeadAttention)
    assert not res.passed and "needs your function" in res.message
    res = check("multi_head_attention", lambda *a: None)
    assert not res.passed and "nn.Module class" in res.message


def test_learner_exception_outside_a_graded_call_is_a_message():
    class Broken(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            raise RuntimeError("oops")
    res = check("multi_head_attention", Broken)
    assert not res.passed and "RuntimeError: oops" in res.message


def test_messages_wrap_on_word_boundaries_in_plain_ascii():
    long = "word " * 60 + "scores"
    text = str(core.CheckResult(False, long, "softmax"))
    assert text.isascii() and all(len(ln) <= 88 for ln in text.splitlines())
    assert all(w in {"word", "scores"} for ln in text.splitlines()[1:] for w in ln.split())


def test_correct_solutions_pass_inside_no_grad_and_inference_mode():
    with torch.no_grad():
        assert check("multi_head_attention", A.MultiHeadAttention).passed
    with torch.inference_mode():
        assert check("softmax", A.softmax).passed


# --------------------------------------------------------------------------
# grader self-tests: each tolerance, near misses on both sides
# --------------------------------------------------------------------------
def _scaled_softmax(rel_of):
    def fn(x, dim=-1):
        return A.softmax(x, dim) * (1 + rel_of(x.dtype))
    return fn


def test_tensor_tolerances_reject_a_near_miss_just_outside_and_accept_one_inside():
    rtol = {dt: tolerances(dt)["rtol"] for dt in (torch.float32, torch.float64)}
    inside = check("softmax", _scaled_softmax(lambda dt: rtol[dt] / 5))
    assert inside.passed, inside.message
    for dt in (torch.float32, torch.float64):  # outside in one dtype only: still a failure
        other = torch.float64 if dt == torch.float32 else torch.float32
        fn = _scaled_softmax(lambda d, dt=dt, other=other: rtol[d] * 5 if d == dt else rtol[d] / 5)
        res = check("softmax", fn)
        assert not res.passed and "differs from the reference" in res.message, (dt, res.message)


def test_a_softmax_with_epsilon_in_the_denominator_fails():
    def eps(x, dim=-1):
        e = (x - x.amax(dim, keepdim=True)).exp()
        return e / (e.sum(dim, keepdim=True) + 1e-6)
    assert not check("softmax", eps).passed


def test_scalar_tolerance_near_misses():
    assert check("hit_rate_at_k", lambda r, k: metrics.hit_rate_at_k(r, k) * (1 + 1e-8)).passed
    assert not check("hit_rate_at_k", lambda r, k: metrics.hit_rate_at_k(r, k) * (1 + 1e-5)).passed
    assert check("ndcg_at_k", lambda r, k: metrics.ndcg_at_k(r, k) * (1 - 1e-8)).passed
    assert not check("ndcg_at_k", lambda r, k: metrics.ndcg_at_k(r, k) * (1 - 1e-5)).passed


# --------------------------------------------------------------------------
# grader self-tests: each property check rejects a program that only it catches
# --------------------------------------------------------------------------
class _Simple(nn.Module):
    """A correct SimpleAttention with one optional defect."""

    def __init__(self, hidden_dim, defect=None):
        super().__init__()
        self.W_q = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.defect = defect

    def forward(self, input_seq, query_seq, mask=None):
        s = self.W_q(query_seq) @ input_seq.transpose(1, 2) / input_seq.shape[-1] ** 0.5
        if mask is not None:
            s = s.masked_fill(~mask[:, None, :], float("-inf"))
        w = torch.softmax(s, -1).nan_to_num(0.0)
        out = w @ input_seq
        if self.defect == "naive":  # exp / sum exp: right until the scores are large
            e = s.exp()
            w = e / e.sum(-1, keepdim=True)
        if self.defect == "noise":  # sampling left on: tiny, but not deterministic
            out = out + 1e-8 * torch.randn_like(out)
        if self.defect == "rowsum":  # weights reported 0.5 % short of summing to 1
            return out * 0.995, w * 0.995
        return out, w


def _variant(defect):
    return type(f"Simple_{defect}", (_Simple,), {"__init__": lambda self, d: _Simple.__init__(self, d, defect)})


def test_eval_determinism_is_the_only_check_rejecting_tiny_noise(monkeypatch):
    res = check("bug_simple_attention", _variant("noise"))
    assert not res.passed and "eval mode" in res.message
    monkeypatch.setattr(exercises_modules, "call_eval", properties.call)
    monkeypatch.setattr(properties, "call_eval", properties.call)
    assert check("bug_simple_attention", _variant("noise")).passed


def test_rows_sum_to_one_is_the_only_check_rejecting_short_rows(monkeypatch):
    res = check("bug_simple_attention", _variant("rowsum"))
    assert not res.passed and "sum to 1" in res.message
    monkeypatch.setattr(exercises_modules, "weights_ok", lambda *a, **k: None)
    assert check("bug_simple_attention", _variant("rowsum")).passed


def test_the_gradient_check_is_the_only_one_rejecting_a_dead_parameter(monkeypatch):
    class Dead(_Simple):
        def __init__(self, d):
            super().__init__(d)
            self.unused = nn.Linear(d, d)
    res = check("bug_simple_attention", Dead)
    assert not res.passed and "unused.weight" in res.message
    monkeypatch.setattr(properties, "_gradients_reach_every_parameter", lambda *a: None)
    assert check("bug_simple_attention", Dead).passed


def test_each_check_stays_under_two_seconds():
    """Steady state: the first autograd/optimizer use in a process costs torch a one-time
    warm-up of seconds (measured 4 s on a busy 2-core machine), paid once per kernel."""
    check("multi_head_attention", A.MultiHeadAttention)  # warm-up
    for eid, fn in [("multi_head_attention", A.MultiHeadAttention), ("softmax", A.softmax)]:
        t0 = time.perf_counter()
        assert check(eid, fn).passed
        assert time.perf_counter() - t0 < 2.0


def test_large_inputs_are_the_only_check_rejecting_a_naive_softmax(monkeypatch):
    """exp(s) / exp(s).sum() is right on every ordinary input; only large ones overflow."""
    res = check("bug_simple_attention", _variant("naive"))
    assert not res.passed and "large inputs give NaN" in res.message, res.message
    original = exercises_modules.module_properties

    def without_large_inputs(make, batch, loss_of, *, large, **kw):
        return original(make, batch, loss_of, large=lambda m: (m, batch(3)), **kw)

    monkeypatch.setattr(exercises_modules, "module_properties", without_large_inputs)
    assert check("bug_simple_attention", _variant("naive")).passed


# --------------------------------------------------------------------------
# a correct text classifier (exercise 10) and a multimodal recommender (12),
# each with one optional defect that a single property check must catch
# --------------------------------------------------------------------------
def _text(defect=None, mix=1.0):
    class Text(nn.Module):
        def __init__(self, vocab_size, d_model, n_classes, pad_id=0):
            super().__init__()
            self.pad_id = pad_id
            self.embed = nn.Embedding(vocab_size, d_model)
            self.encode = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh())
            self.query = nn.Parameter(torch.randn(d_model) / 4)
            self.head = nn.Linear(d_model, n_classes)

        def forward(self, tokens):
            h = self.encode(self.embed(tokens))  # (B, L, D)
            keep = tokens != self.pad_id
            s = (h @ self.query / h.shape[-1] ** 0.5).masked_fill(~keep, float("-inf"))
            w = torch.softmax(s, -1).nan_to_num(0.0)
            if mix != 1.0:  # a near miss: almost mean pooling, (1 - mix) uniform + mix attention
                uniform = keep.to(w.dtype) / keep.sum(-1, keepdim=True).clamp_min(1)
                w = (1 - mix) * uniform + mix * w
            logits = self.head((w[..., None] * h).sum(1))
            if defect == "tiny":  # the logits scaled down 1000 times: it cannot learn
                logits = logits * 1e-3
            return logits, w
    return Text


def test_a_correct_text_classifier_passes():
    res = check("text_attention_classifier", _text())
    assert res.passed, res.message


def test_overfitting_is_the_only_check_rejecting_a_model_that_cannot_learn(monkeypatch):
    res = check("text_attention_classifier", _text("tiny"))
    assert not res.passed and "training on one fixed batch" in res.message, res.message
    monkeypatch.setattr(properties, "_overfit", lambda *a, **k: None)
    assert check("text_attention_classifier", _text("tiny")).passed


def test_uniform_tolerance_near_misses():
    """``_uniform`` calls weights within 1e-6 of uniform mean pooling; 1e-5 off is attention."""
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    u = valid.double() / valid.sum(-1, keepdim=True)
    bump = torch.tensor([[1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]], dtype=torch.float64)
    assert exercises_modules._uniform(u + 1e-7 * bump, valid)
    assert not exercises_modules._uniform(u + 1e-5 * bump, valid)


def test_near_miss_attention_just_inside_the_uniform_tolerance_is_mean_pooling(monkeypatch):
    outside = check("text_attention_classifier", _text(mix=1e-4))  # weights ~1e-5 off uniform
    assert outside.passed, outside.message
    inside = check("text_attention_classifier", _text(mix=1e-6))  # < 1e-6 off uniform
    assert not inside.passed and "mean pooling" in inside.message, inside.message
    monkeypatch.setattr(exercises_modules, "_content_matters", lambda *a, **k: None)
    assert check("text_attention_classifier", _text(mix=1e-6)).passed


def _multimodal(defect=None):
    class Multimodal(nn.Module):
        def __init__(self, d_text, d_image, d_model):
            super().__init__()
            self.text, self.image = nn.Linear(d_text, d_model), nn.Linear(d_image, d_model)
            self.W_q = nn.Linear(d_model, d_model, bias=False)
            self.W_k = nn.Linear(d_model, d_model, bias=False)

        def forward(self, hist_text, hist_image, hist_mask, cand_text, cand_image):
            h = self.text(hist_text) + self.image(hist_image)  # (B, L, D)
            c = self.text(cand_text) + self.image(cand_image)  # (B, N, D)
            s = self.W_q(c) @ self.W_k(h).transpose(1, 2) / h.shape[-1] ** 0.5  # (B, N, L)
            keep = hist_mask[:, None, :].expand_as(s)
            w = torch.softmax(s.masked_fill(~keep, float("-inf")), -1).nan_to_num(0.0)
            user = w @ h  # (B, N, D)
            if defect == "leak":  # a user profile averaged over every position, padding too
                user = user + h.mean(1, keepdim=True)
            return (user * c).sum(-1), w
    return Multimodal


def test_padding_invariance_is_the_only_check_rejecting_padding_leaking_into_scores(monkeypatch):
    """The weights on padding stay 0, but a second path reads the padded features."""
    assert check("multimodal_attention_recommender", _multimodal()).passed
    res = check("multimodal_attention_recommender", _multimodal("leak"))
    assert not res.passed and "padded history positions changed the scores" in res.message, \
        res.message
    monkeypatch.setattr(exercises_modules, "_padding_ignored", lambda *a, **k: None)
    assert check("multimodal_attention_recommender", _multimodal("leak")).passed


def test_a_timeout_passed_to_check_in_a_notebook_reaches_check(tmp_path):
    """``make progress`` runs notebooks whose check cells may say timeout=..."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from recattn_lessons.grading.runner import execute_cells

    cells = [new_code_cell("from recattn_lessons.grading import check\n"
                           "from recattn_lessons.attention import softmax"),
             new_code_cell("check('softmax', softmax, timeout=60)"),
             new_code_cell("def spin(x, dim=-1):\n    while True:\n        pass"),
             new_code_cell("check('softmax', spin, timeout=0.3)")]
    nbformat.write(new_notebook(cells=cells), str(tmp_path / "01_t.ipynb"))
    _, results, errors = execute_cells(tmp_path / "01_t.ipynb")
    assert errors == [] and [r.passed for r in results] == [True, False]
    assert "stopped after 0.3 s" in results[1].message


def test_cuda_rng_is_restored_too():
    if not torch.cuda.is_available():
        import pytest

        pytest.skip("no CUDA device")

    def messy(x, dim=-1):
        torch.manual_seed(99)  # reseeds every CUDA device as well
        return A.softmax(x, dim)
    torch.cuda.manual_seed_all(5)
    before = torch.cuda.get_rng_state()
    assert check("softmax", messy).passed
    assert check("multi_head_attention", A.MultiHeadAttention).passed  # seeds inside build()
    assert torch.equal(torch.cuda.get_rng_state(), before)
