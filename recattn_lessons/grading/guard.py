"""Run learner code safely: a time limit, captured output, restored global state.

Introduced with issue 8 (exercises you can trust). ``guarded(timeout)`` wraps
one ``check()``: learner code runs with autograd on (even when ``check`` is
called inside ``torch.no_grad()`` or ``torch.inference_mode()``), its prints
go to a bounded buffer, and the RNG states, thread count and default dtype
it may change are put back afterwards.

The time limit uses ``signal.setitimer`` when ``check`` runs in the main
thread (a Jupyter kernel runs cells there), and a ``sys.settrace`` deadline
otherwise; both raise :class:`CheckTimeout`, a ``BaseException`` so that a
learner's ``except Exception`` cannot swallow it (the timer re-fires every
0.25 s until the check ends; only a bare ``except:`` inside the endless loop
itself could still keep it running). Measured on a busy 2-core
machine: ``while True: pass`` under the default 30 s limit ended after
30.08 s in a plain process and 30.02 s in a Jupyter kernel;
tests/test_grading_api.py runs it with a 0.3-0.5 s limit.
"""

from __future__ import annotations

import contextlib
import io
import random
import signal
import sys
import threading
import time

import torch

__all__ = ["CheckTimeout", "BoundedBuffer", "guarded", "DEFAULT_TIMEOUT", "rng_devices"]

DEFAULT_TIMEOUT = 30.0


class CheckTimeout(BaseException):
    """The learner's code ran past the time limit."""


class BoundedBuffer(io.StringIO):
    """A text sink that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int = 2000):
        super().__init__()
        self.limit, self.chars, self.lines = limit, 0, 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        self.lines += s.count("\n")
        room = self.limit - super().tell()
        if room > 0:
            super().write(s[:room])
        return len(s)

    def summary(self, max_lines: int = 8) -> str:
        """'' when nothing was printed, else a short excerpt and the totals."""
        if not self.chars:
            return ""
        kept = self.getvalue().splitlines()[:max_lines]
        shown = "\n".join("  | " + ln[:100] for ln in kept)
        more = "" if self.chars <= len("\n".join(kept)) + 1 else \
            f"\n  ... ({self.chars:,} characters, {self.lines:,} lines in all; only the start is shown)"
        return f"Your code printed:\n{shown}{more}"


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise CheckTimeout in the main thread after ``seconds`` (and every 0.25 s after)."""
    state = {"on": True}

    def fire(signum, frame):
        if state["on"]:
            raise CheckTimeout()

    old_handler = signal.signal(signal.SIGALRM, fire)
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds, 0.25)
    start = time.monotonic()
    try:
        yield
    finally:
        state["on"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # an outer timer (e.g. the notebook runner's) keeps running
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


@contextlib.contextmanager
def _trace_deadline(seconds: float):
    """The same with a trace function: works in any thread, costs a little speed."""
    deadline = time.monotonic() + seconds
    old = sys.gettrace()

    def tracer(frame, event, arg):
        if time.monotonic() > deadline:
            raise CheckTimeout()
        return tracer

    sys.settrace(tracer)
    try:
        yield
    finally:
        sys.settrace(old)


def _time_limit(seconds: float | None):
    if not seconds or seconds <= 0:
        return contextlib.nullcontext()
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        return _alarm(seconds)
    return _trace_deadline(seconds)


def rng_devices() -> list[int]:
    """The CUDA devices whose RNG ``torch.random.fork_rng`` must save and restore: every
    visible one when CUDA is available (``torch.manual_seed`` reseeds them all), else none."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextlib.contextmanager
def _restored_state():
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    py_state = random.getstate()
    try:
        import numpy as np

        np_state = np.random.get_state()
    except ImportError:  # numpy is optional here
        np = np_state = None
    try:
        with torch.random.fork_rng(devices=rng_devices()):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        random.setstate(py_state)
        if np is not None:
            np.random.set_state(np_state)


@contextlib.contextmanager
def guarded(timeout: float | None = DEFAULT_TIMEOUT, output: BoundedBuffer | None = None):
    """Run the body with autograd on, output captured, a time limit and state restored."""
    sink = output if output is not None else BoundedBuffer()
    with _restored_state(), torch.inference_mode(False), torch.enable_grad(), \
            contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        torch.set_num_threads(1)  # tiny tensors: one thread is fastest on a busy CPU
        with _time_limit(timeout):
            yield sink
