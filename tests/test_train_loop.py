"""The training loop's promises, each checked on a run whose answer is known (issue 18).

The probe model :class:`Peak` has one weight ``t``. Its loss is ``-t``, so
AdamW (constant gradient) moves ``t`` by exactly ``lr`` per step, and it
scores item ``i`` by ``-(i - round(t))**2``: after epoch ``e`` (one batch
per epoch, ``lr=1``) the scores peak at item ``e``. Five users have
validation targets ``3, 3, 9, 9, 9`` and test target ``11``, so the
validation NDCG@10 after each epoch is known in advance:

    epoch  1     2     3     4     5     6     7     8     9    10 ...
    ndcg   .381  .381  .581  .381  .335  .333  .353  .300  .600  .300 ...

(pessimistic ties make it uneven). The best validation epoch is 3 for runs
stopped before epoch 9, and 9 after; the best *test* epoch would be 11.
That lets every test below say exactly which epoch must win, when the run
must stop, and which weights it must end with.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from recattn_lessons import models
from recattn_lessons.data import Interactions, leave_one_out
from recattn_lessons.data.batching import Windows, train_subset
from recattn_lessons.data.splits import Split
from recattn_lessons.models.base import SequentialRecommender, gather_candidates
from recattn_lessons.train import TrainConfig, eval_negatives, evaluate, run
from recattn_lessons.train import compiling, loop
from recattn_lessons.train.checkpoint import load_checkpoint

N_ITEMS = 24
VALID, TEST = [3, 3, 9, 9, 9], 11
# valid NDCG@10 after epoch e (scores peaking at item e), from the docstring's reasoning;
# test_probe_valid_curve_is_the_documented_one recomputes it through evaluate()
CURVE = [0.381, 0.381, 0.581, 0.381, 0.335, 0.333, 0.353, 0.300, 0.600, 0.300]


@dataclass(frozen=True)
class PeakConfig:
    n_items: int
    maxlen: int = 8


class Peak(SequentialRecommender):
    """Scores peak at item round(t); the loss -t makes every AdamW step add lr to t."""

    def __init__(self, cfg: PeakConfig) -> None:
        super().__init__()
        self.cfg, self.n_items = cfg, cfg.n_items
        self.t = nn.Parameter(torch.zeros(()))
        self.modes: list[tuple[str, bool]] = []  # (call, model.training) of every call

    def score(self, history, candidates=None):
        self.modes.append(("score", self.training))
        items = torch.arange(self.n_items + 1, dtype=torch.float32)  # (N+1,)
        s = -(items - torch.round(self.t.detach())) ** 2
        return gather_candidates(s.expand(len(history), -1).clone(), candidates)

    def loss(self, batch):
        self.modes.append(("loss", self.training))
        return -self.t


@pytest.fixture
def peak(monkeypatch):
    """Make ``model="peak"`` buildable by the loop."""
    monkeypatch.setitem(models.MODELS, "peak", (Peak, PeakConfig))


@pytest.fixture(scope="module")
def data():
    """Five users: train items 20-22, then their validation and test targets."""
    seqs = [torch.tensor([20, 21, 22, v, TEST]) for v in VALID]
    return Interactions(sequences=seqs, n_users=len(seqs), n_items=N_ITEMS,
                        titles=["<pad>"] + [f"item {i}" for i in range(1, N_ITEMS + 1)],
                        genres=[""] * (N_ITEMS + 1), raw_item_ids=list(range(-1, N_ITEMS)),
                        raw_user_ids=list(range(len(seqs))), n_tied=0, n_tie_groups=0)


def cfg(**kw) -> TrainConfig:
    base = dict(model="peak", maxlen=8, batch_size=8, lr=1.0, epochs=12, min_epochs=0, patience=20,
                progress=False, device="cpu", eval_batch_size=2, n_sampled=5, amp="off",
                weight_decay=0.0)
    return TrainConfig(**{**base, **kw})


def valid_ndcgs(result) -> list[float]:
    return [e["valid"]["full"]["ndcg@10"] for e in result.history]


def test_probe_valid_curve_is_the_documented_one(peak, data):
    r = run(cfg(epochs=10, patience=20), data=data)
    assert valid_ndcgs(r) == pytest.approx(CURVE, abs=1e-3)


@pytest.mark.parametrize("epochs,best", [(2, 1), (8, 3), (12, 9)])
def test_best_valid_epoch_wins_and_its_weights_are_restored(peak, data, epochs, best):
    """Best epoch = first maximum of valid NDCG (ties keep the earlier one), not the last epoch;
    reported valid metrics = that epoch's history entry; final weights = that epoch's."""
    r = run(cfg(epochs=epochs), data=data)
    assert r.metrics["epochs"] == epochs and r.metrics["best_epoch"] == best
    assert r.metrics["valid"] == r.history[best - 1]["valid"]
    assert r.model.t.item() == pytest.approx(best, abs=1e-4)  # not the live (last) weights
    # test is reported for the restored weights: scores peak at item `best`, target 11
    fresh = evaluate(r.model, r.split, "test", 8, eval_negatives(r.split, "test", 0, 5))
    assert r.metrics["test"] == fresh
    assert r.metrics["test"]["full"]["ndcg@10"] < 1.0  # the test-best epoch (11) was not chosen


@pytest.mark.parametrize("patience,min_epochs,stop,best", [
    (2, 0, 5, 3),   # epochs 4, 5 without improvement -> stop after 5
    (3, 0, 6, 3),
    (2, 7, 7, 3),   # patience ran out at 5, but never before min_epochs
    (1, 10, 10, 9),  # min_epochs lets the later, better epoch 9 be found
    (6, 0, 15, 9),  # epoch 9 improves and resets the count: 10..15 without improvement
])
def test_early_stopping_honours_patience_and_min_epochs(peak, data, patience, min_epochs, stop, best):
    r = run(cfg(epochs=20, patience=patience, min_epochs=min_epochs), data=data)
    assert [e["epoch"] for e in r.history] == list(range(1, stop + 1))
    assert r.metrics["epochs"] == stop and r.metrics["best_epoch"] == best
    assert r.model.t.item() == pytest.approx(best, abs=1e-4)


def test_time_budget_stops_after_the_epoch_that_passes_it(peak, data):
    r = run(cfg(epochs=20, max_train_seconds=1e-9), data=data)
    assert r.metrics["epochs"] == 1


class Reads:
    """A shared log of what the run did, in order."""

    def __init__(self):
        self.events: list[str] = []


class WatchedSplit(Split):
    """A Split that logs every read of test data ('test' stage or test_target)."""

    log: Reads | None = None

    def __getattribute__(self, name):
        if name == "test_target" and object.__getattribute__(self, "log") is not None:
            object.__getattribute__(self, "log").events.append("test-read")
        return object.__getattribute__(self, name)

    def seen(self, stage):
        if stage == "test":
            self.log.events.append("test-read")
        return super().seen(stage)

    def targets(self, stage):
        if stage == "test":
            self.log.events.append("test-read")
        return super().targets(stage)


def test_test_split_is_read_once_at_the_end(peak, data, monkeypatch):
    log = Reads()

    def watched_split(interactions):
        s = leave_one_out(interactions)
        w = WatchedSplit(s.train, s.valid_target, s.test_target, s.users, s.n_items, s.n_dropped)
        object.__setattr__(w, "log", log)
        return w

    real_batches, real_evaluate = loop.iterate_batches, loop.evaluate

    def batches(*a, **kw):
        for b in real_batches(*a, **kw):
            log.events.append("batch")
            yield b

    def evaluate_logged(model, split, stage, **kw):
        log.events.append(f"evaluate {stage}")
        return real_evaluate(model, split, stage, **kw)

    monkeypatch.setattr(loop, "leave_one_out", watched_split)
    monkeypatch.setattr(loop, "iterate_batches", batches)
    monkeypatch.setattr(loop, "evaluate", evaluate_logged)
    r = run(cfg(epochs=6), data=data)
    ev = log.events
    # one validation pass per epoch, then valid and test once with the restored weights
    assert [e for e in ev if e.startswith("evaluate")] == ["evaluate valid"] * 6 + [
        "evaluate valid", "evaluate test"]
    first, last = ev.index("batch"), len(ev) - 1 - ev[::-1].index("batch")
    assert "test-read" not in ev[first:last + 1]  # nothing about test while training/selecting
    end = ev.index("evaluate test")
    assert end > last and "test-read" in ev[end:]
    assert "evaluate valid" not in ev[end:]
    assert r.metrics["best_epoch"] == 3


def test_evaluation_runs_in_eval_mode_and_training_in_train_mode(peak, data):
    r = run(cfg(epochs=4), data=data)
    modes = r.model.modes
    assert {m for call, m in modes if call == "score"} == {False}
    assert {m for call, m in modes if call == "loss"} == {True}
    assert len([c for c, _ in modes if c == "loss"]) == 4  # one batch per epoch


def test_history_values_are_the_epoch_means_and_times_add_up(peak, data, tmp_path):
    """batch_size=2: three batches per epoch, t = 0, 1, 2 | 3, 4, 5 | ... so losses -1 | -4 | ..."""
    r = run(cfg(epochs=3, batch_size=2, out=str(tmp_path)), data=data)
    assert [e["loss"] for e in r.history] == pytest.approx([-1.0, -4.0, -7.0], abs=1e-4)
    assert r.metrics["train_seconds"] == pytest.approx(sum(e["seconds"] for e in r.history), abs=0.02)
    assert r.metrics["seconds_per_epoch"] == pytest.approx(r.metrics["train_seconds"] / 3, abs=0.01)
    assert all(e["seconds"] > 0 for e in r.history)
    # each epoch's validation entry is what evaluate() gives for that epoch's weights (peak at 3e)
    for e in r.history:
        r.model.t.data.fill_(3.0 * e["epoch"])
        assert e["valid"] == evaluate(r.model, r.split, "valid", 8, eval_negatives(r.split, "valid", 0, 5),
                                      batch_size=2)
    skip = ("out", "resume", "progress")
    assert r.metrics["config"] == {k: v for k, v in r.config.to_dict().items() if k not in skip}


def test_resume_keeps_the_best_weights_seen_before_the_interruption(peak, data, tmp_path):
    whole = run(cfg(epochs=8), data=data)
    run(cfg(epochs=5, out=str(tmp_path)), data=data)  # best (3) is in the checkpoint, live is 5
    ck = load_checkpoint(tmp_path / "last.pt")
    assert float(ck["best_model"]["t"]) == pytest.approx(3.0) and float(ck["model"]["t"]) == pytest.approx(5.0)
    resumed = run(cfg(epochs=8, out=str(tmp_path), resume=True), data=data)
    assert resumed.metrics["best_epoch"] == whole.metrics["best_epoch"] == 3
    assert resumed.model.t.item() == pytest.approx(3.0)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)


def test_dropout_heavy_model_evaluates_deterministically(data):
    """Dropout 0.9 would change every evaluation if it were still on."""
    torch.manual_seed(0)
    m = models.build("sasrec", N_ITEMS, maxlen=8, d_model=16, dropout=0.9).train()
    split = leave_one_out(data)
    negs = eval_negatives(split, "valid", 0, 5)
    a = evaluate(m, split, "valid", 8, negs)
    b = evaluate(m, split, "valid", 8, negs)
    assert a == b and m.training  # identical, and the caller's mode is restored
    with torch.no_grad():
        m.train()
        h = torch.tensor([[0, 0, 0, 0, 0, 20, 21, 22]])
        assert not torch.equal(m.score(h), m.score(h))  # the dropout is real


# ------------------------------------------------------------ wiring (mutation survivors, issue 18)

def test_every_common_hyper_parameter_reaches_the_model(data):
    c = cfg(model="sasrec", epochs=1, lr=1e-3, d_model=24, n_heads=3, n_blocks=1, dropout=0.35,
            loss="bce", n_negatives=2, attention="reference")
    m = run(c, data=data).model
    assert (m.cfg.d_model, m.cfg.n_heads, m.cfg.n_blocks, m.cfg.maxlen) == (24, 3, 1, 8)
    assert (m.cfg.dropout, m.cfg.loss, m.n_negatives, m.cfg.attention) == (0.35, "bce", 2, "reference")
    assert len(m.blocks) == 1 and m.item_emb.weight.shape == (N_ITEMS + 1, 24)


def test_the_configured_stride_cuts_the_training_windows(peak, data, monkeypatch):
    seen = []
    real = loop.sliding_windows
    monkeypatch.setattr(loop, "sliding_windows", lambda s, maxlen, stride=None: seen.append((maxlen, stride))
                        or real(s, maxlen, stride))
    run(cfg(epochs=1, stride=3), data=data)
    assert seen == [(8, 3)]


def test_data_split_with_another_tie_seed_is_refused(peak, data):
    with pytest.raises(ValueError, match=r"loaded with tie_seed=0 but the config says tie_seed=1"):
        run(cfg(epochs=1, tie_seed=1), data=data)


def test_resume_without_a_folder_says_what_is_missing(peak, data):
    with pytest.raises(ValueError, match=r"^resume=True needs out= \(the folder holding last.pt\)$"):
        run(cfg(epochs=1, resume=True), data=data)


@pytest.mark.parametrize("flags,native", [("fpu sse avx2", False), ("fpu avx512f avx512_bf16", True),
                                          ("fpu amx_bf16 amx_tile", True)])
def test_bf16_is_used_on_cpu_only_where_the_cpu_has_it(monkeypatch, tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor : 0\nflags : {flags}\n")
    real_open = open
    monkeypatch.setattr(loop, "open", lambda p, *a, **k: real_open(info if p == "/proc/cpuinfo" else p, *a, **k),
                        raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loop.cpu_has_bf16() is native
    assert loop.use_bf16("auto", cpu) is native and loop.use_bf16("auto", cuda) is True
    assert loop.use_bf16("bf16", cpu) is True and loop.use_bf16("off", cuda) is False


def test_no_cpuinfo_means_no_native_bf16(monkeypatch):
    def missing(*a, **k):
        raise OSError("no /proc here")

    monkeypatch.setattr(loop, "open", missing, raising=False)
    assert loop.cpu_has_bf16() is False


def test_metrics_record_precision_and_per_epoch_time(peak, data, tmp_path):
    out = tmp_path / "nested" / "run"  # parents are created
    m = run(cfg(epochs=1, out=str(out)), data=data).metrics
    assert m["bf16"] is False and m["epochs"] == 1
    assert m["seconds_per_epoch"] == pytest.approx(m["train_seconds"], abs=0.0051)  # one epoch: same, up to rounding
    assert (out / "last.pt").exists() and not list(out.glob("*.tmp"))  # written atomically


def test_resume_from_an_empty_folder_says_to_run_once_first(peak, data, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*last\.pt: run once without --resume first"):
        run(cfg(epochs=1, out=str(tmp_path), resume=True), data=data)


def test_lesson_runs_are_fp64_without_autocast_on_every_cpu(monkeypatch):
    """TrainConfig.quick is what the lessons train with: nbval compares their numbers
    across machines, so a CPU with native bf16 must not switch autocast on, and the
    weights are float64 (float32 digits differ between AVX2 and AVX-512 CPUs)."""
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    quick = TrainConfig.quick(model="sasrec")
    assert quick.amp == "off" and quick.dtype == "float64"
    assert not loop.use_bf16(quick.amp, torch.device("cpu"), quick.dtype)
    assert not loop.use_bf16("auto", torch.device("cuda"), "float64")  # auto never bf16 in fp64
    assert loop.use_bf16(TrainConfig().amp, torch.device("cpu"))  # the CLI default still uses it
    assert TrainConfig().dtype == "float32"
    assert TrainConfig.quick(amp="bf16", dtype="float32").amp == "bf16"  # a lesson can still ask
    with pytest.raises(ValueError, match="contradicts dtype='float64'"):
        TrainConfig.quick(amp="bf16")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        TrainConfig(dtype="float16")


def test_float64_run_trains_in_float64(data):
    """dtype reaches the parameters and the scores."""
    res = run(TrainConfig.quick(model="sasrec", epochs=1, min_epochs=1, maxlen=10, d_model=8,
                                n_blocks=1, n_sampled=5, progress=False), data=data)
    assert {p.dtype for p in res.model.parameters()} == {torch.float64}
    assert res.model.score(torch.tensor([[0, 0, 20, 21, 22]])).dtype == torch.float64


def test_evaluation_keeps_float64_scores(data):
    """A target ahead by 1e-12 wins in float64; a .float() on the scores would make it a
    tie, which counts against the model (rank 1 instead of 0)."""
    from recattn_lessons.train.evaluate import evaluate_ranks

    class AlmostTied(nn.Module):
        def score(self, history):  # (B, L) -> (B, N+1): item TEST ahead by 1e-12
            s = torch.ones(len(history), N_ITEMS + 1, dtype=torch.float64)
            s[:, TEST] += 1e-12
            s[:, 1] += 0.5e-12  # runner-up, also above the rest
            return s

    split = leave_one_out(data)
    negs = torch.full((split.n_users, 3), 2)
    ranks = evaluate_ranks(AlmostTied(), split, "test", maxlen=4, negatives=negs)
    assert ranks["full"].tolist() == [0] * split.n_users
    assert ranks["sampled100"].tolist() == [0] * split.n_users


def _windows_of(n_users: int, per_user: int) -> Windows:
    users = torch.arange(n_users).repeat_interleave(per_user)  # (N,)
    inputs = torch.arange(len(users))[:, None].repeat(1, 3)  # (N, 3) row i holds i
    return Windows(inputs, inputs + 1, users)


@pytest.mark.parametrize("fraction, n_kept", [(0.25, 3), (0.5, 5), (0.01, 1), (1.0, 10)])
def test_train_subset_keeps_every_window_of_a_share_of_the_users(fraction, n_kept):
    w = train_subset(_windows_of(10, 4), 10, fraction, seed=3)
    users = w.users.unique()
    assert len(users) == n_kept and len(w) == 4 * n_kept  # ceil(fraction * 10) users, all windows
    torch.testing.assert_close(w.inputs[:, 0], torch.nonzero(torch.isin(
        torch.arange(10).repeat_interleave(4), users)).flatten())  # rows kept whole, in order
    torch.testing.assert_close(w.targets, w.inputs + 1)


def test_train_subsets_are_nested_for_one_seed_and_differ_between_seeds():
    w = _windows_of(40, 2)
    small, large = (set(train_subset(w, 40, f, seed=0).users.tolist()) for f in (0.25, 0.5))
    assert small < large
    other = set(train_subset(w, 40, 0.25, seed=1).users.tolist())
    assert other != small


def test_train_fraction_shrinks_training_only(peak, data, monkeypatch):
    trained, evaluated = [], []
    real_batches, real_eval = loop.iterate_batches, loop.evaluate
    monkeypatch.setattr(loop, "iterate_batches",
                        lambda w, *a, **k: trained.append(len(w)) or real_batches(w, *a, **k))
    monkeypatch.setattr(loop, "evaluate",
                        lambda m, split, stage, **k: evaluated.append((stage, split.n_users))
                        or real_eval(m, split, stage, **k))
    run(cfg(epochs=1), data=data)
    run(cfg(epochs=1, train_fraction=0.4), data=data)
    assert trained == [5, 2]  # one window per user; ceil(0.4 * 5) = 2 users trained on
    assert {n for _, n in evaluated} == {5}  # every user is still evaluated
    assert [s for s, _ in evaluated].count("test") == 2


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_train_fraction_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match="train_fraction must lie in"):
        TrainConfig(train_fraction=bad)


def test_compile_is_automatic_only_on_cuda_with_triton_and_never_under_ddp(monkeypatch):
    import torch.utils._triton as triton

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(triton, "has_triton", lambda: True)
    assert compiling.use_compile("auto", cuda, False) and not compiling.use_compile("auto", cpu, False)
    assert not compiling.use_compile("auto", cuda, True) and not compiling.use_compile("on", cpu, True)
    assert compiling.use_compile("on", cpu, False) and not compiling.use_compile("off", cuda, False)
    monkeypatch.setattr(triton, "has_triton", lambda: False)
    assert not compiling.use_compile("auto", cuda, False)
    with pytest.raises(ValueError, match="compile must be auto, on or off"):
        TrainConfig(compile="yes")


def test_compiled_loss_trains_through_torch_compile_and_matches_eager(data, monkeypatch):
    calls = []

    def fake_compile(fn, **kw):  # torch.compile's contract: a callable equal to fn
        calls.append(kw)
        return lambda batch: fn(batch)

    monkeypatch.setattr(torch, "compile", fake_compile)
    kw = dict(model="sasrec", maxlen=4, d_model=8, n_blocks=1, epochs=2, min_epochs=2, lr=1e-2,
              dropout=0.0, progress=False, device="cpu", amp="off", dtype="float64", n_sampled=5)
    on = run(TrainConfig(compile="on", **kw), data=data)
    off = run(TrainConfig(compile="off", **kw), data=data)
    assert calls == [{"dynamic": True}] and on.metrics["compiled"] and not off.metrics["compiled"]
    assert [e["loss"] for e in on.history] == [e["loss"] for e in off.history]


def test_a_failing_compile_falls_back_to_eager_with_one_message(data, monkeypatch, capsys):
    def broken(batch):
        raise RuntimeError("no C++ compiler found\nlong trace")

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    kw = dict(model="sasrec", maxlen=4, d_model=8, n_blocks=1, epochs=2, min_epochs=2, lr=1e-2,
              dropout=0.0, device="cpu", amp="off", dtype="float64", n_sampled=5)
    fell_back = run(TrainConfig(compile="on", progress=True, **kw), data=data)
    eager = run(TrainConfig(compile="off", progress=False, **kw), data=data)
    assert [e["loss"] for e in fell_back.history] == [e["loss"] for e in eager.history]
    err = capsys.readouterr()
    text = err.out + err.err
    assert text.count("torch.compile failed (RuntimeError: no C++ compiler found)") == 1
    assert "--compile off" in text and "long trace" not in text
