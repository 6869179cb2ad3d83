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
