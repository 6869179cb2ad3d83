"""DistributedDataParallel training (``recattn_lessons.train.distributed``).

Two processes launched by torchrun must train *the same model* as one
process: every rank draws the same global batch and keeps its rows
``rank::2``, and each rank's loss is weighted by its share of the batch's
targets, so the averaged gradient is the one-process gradient. In float64
with dropout 0 the two runs then differ only by summation order (~1e-15
per step); we allow 1e-9 on metrics and losses. With dropout > 0 each rank
draws its own dropout masks, other ones than one process would, so 1 and 2
processes then agree only statistically; resuming stays exact on both.

Each launch is a subprocess running :data:`SCRIPT` (a small synthetic data
set, a tiny SASRec, 3 epochs), with one thread per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch.distributed as dist

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build")

TOL = 1e-9  # float64, dropout 0: only the order of sums differs between 1 and 2 processes

SCRIPT = textwrap.dedent('''
    """Train a tiny SASRec on synthetic data: CE, BCE, a 1-row last batch, and a resume."""
    import json, os, sys
    import torch
    from recattn_lessons.data import Interactions
    from recattn_lessons.train import TrainConfig, run

    report = sys.argv[1]
    rank = int(os.environ.get("RANK", "0"))
    g = torch.Generator().manual_seed(0)
    n_items, n_users = 30, 40
    seqs = [torch.randint(1, n_items + 1, (int(torch.randint(6, 16, (1,), generator=g)),),
                          generator=g) for _ in range(n_users)]
    data = Interactions(sequences=seqs, n_users=n_users, n_items=n_items,
                        titles=["<pad>"] + [f"item {i}" for i in range(1, n_items + 1)],
                        genres=[""] * (n_items + 1), raw_item_ids=list(range(-1, n_items)),
                        raw_user_ids=list(range(n_users)), n_tied=0, n_tie_groups=0)

    import pathlib
    from recattn_lessons.train import loop
    written = []  # every file this rank's run() writes
    save, write_text = loop.save_checkpoint, pathlib.Path.write_text
    loop.save_checkpoint = lambda path, state: (written.append(path.name), save(path, state))
    pathlib.Path.write_text = lambda self, *a, **k: (written.append(self.name), write_text(self, *a, **k))

    if os.environ.get("FAIL_RANK") == str(rank):  # a bug on one rank, at its 3rd batch
        from recattn_lessons.models.sasrec import SASRec
        loss, calls = SASRec.loss, []
        def failing(self, batch):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError(f"injected failure on rank {rank}")
            return loss(self, batch)
        SASRec.loss = failing

    base = TrainConfig(model="sasrec", maxlen=6, d_model=16, n_blocks=1, n_heads=2, dropout=0.0,
                       batch_size=7, lr=3e-3, epochs=3, min_epochs=3, patience=5, dtype="float64",
                       amp="off", device="cpu", progress=False, eval_batch_size=16, n_sampled=10)
    # 68 windows: batch 7 ends with 5 rows (shards of 3 and 2), batch 67 with 1 (rank 1 empty)
    runs = {"ce": base, "bce": base.replace(loss="bce", n_negatives=3),
            "tail": base.replace(batch_size=67, lr=1e-2)}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # one group for every run() below
        torch.distributed.init_process_group("gloo")  # (run() uses it and leaves it open)
    found = {}
    for name, cfg in runs.items():
        r = run(cfg.replace(out=os.path.join(report, name)), data=data)
        found[name] = {"metrics": r.metrics, "losses": [e["loss"] for e in r.history]}
    # resume: 2 epochs, then continue to 3 (every rank loads rank 0's last.pt), without
    # and with dropout (each rank's own dropout stream is in the checkpoint)
    drop = base.replace(dropout=0.2, batch_size=8)  # shards of equal size: 4 + 4, last 2 + 2
    for name, cfg in {"resumed": base, "drop-resumed": drop}.items():
        run(cfg.replace(epochs=2, out=os.path.join(report, name)), data=data)
        r = run(cfg.replace(out=os.path.join(report, name), resume=True), data=data)
        found[name] = {"metrics": r.metrics, "losses": [e["loss"] for e in r.history]}
    r = run(drop.replace(out=os.path.join(report, "drop")), data=data)
    found["drop"] = {"metrics": r.metrics, "losses": [e["loss"] for e in r.history]}
    # the dropout stream this rank ended on: with equal shards the ranks draw equally many
    # numbers, so they end on the same one unless each rank has its own stream
    found["next_random"] = torch.rand(()).item()
    found["written"] = sorted(set(written))
    with open(os.path.join(report, f"result-rank{rank}.json"), "w") as f:
        json.dump(found, f)
    if torch.distributed.is_initialized():  # this script owns the group, so it tears it down:
        torch.distributed.barrier()  # both ranks done first (a rank leaving early made the
        torch.distributed.destroy_process_group()  # other abort at exit, SIGABRT; see launch)
''')


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _launch(tmp_path, name: str, nproc: int, timeout: float = 120, **env):
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT)
    report = tmp_path / name
    report.mkdir()
    cmd = [sys.executable, str(script), str(report)] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", str(script), str(report)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    return proc, report, time.perf_counter() - t0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    one, one_dir, _ = _launch(tmp, "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two, two_dir, _ = _launch(tmp, "two", 2)
    if two.returncode != 0 and "SIGABRT" in two.stderr:  # a gloo teardown race seen twice in CI
        two, two_dir, _ = _launch(tmp, "two-again", 2)  # rehearsals, never locally: one retry
    assert two.returncode == 0, two.stderr[-3000:]
    return one_dir, two_dir


def _numbers(metrics: dict) -> dict:
    return {f"{stage}/{proto}/{k}": v for stage in ("valid", "test")
            for proto, d in metrics[stage].items() for k, v in d.items()}


@pytest.mark.parametrize("name", ["ce", "bce", "tail", "resumed"])
def test_two_processes_train_the_one_process_model(runs, name):
    one_dir, two_dir = runs
    one = json.loads((one_dir / "result-rank0.json").read_text())[name]
    for rank in (0, 1):  # every rank returns rank 0's numbers
        two = json.loads((two_dir / f"result-rank{rank}.json").read_text())[name]
        assert two["losses"] == pytest.approx(one["losses"], abs=TOL, rel=0)
        assert len(two["losses"]) == 3
        a, b = _numbers(one["metrics"]), _numbers(two["metrics"])
        assert a.keys() == b.keys() and len(a) >= 12
        assert b == pytest.approx(a, abs=TOL, rel=0)
        assert two["metrics"]["best_epoch"] == one["metrics"]["best_epoch"]
    # the files rank 0 wrote hold the same numbers
    written = json.loads((two_dir / name / "metrics.json").read_text())
    assert _numbers(written) == pytest.approx(_numbers(one["metrics"]), abs=TOL, rel=0)


@pytest.mark.parametrize("which", [0, 1])
def test_resume_with_dropout_is_exact(runs, which):
    """Stopped after 2 epochs and resumed = 3 epochs at once, on 1 and on 2 processes."""
    found = json.loads((runs[which] / "result-rank0.json").read_text())
    assert found["drop-resumed"]["losses"] == found["drop"]["losses"]
    assert _numbers(found["drop-resumed"]["metrics"]) == _numbers(found["drop"]["metrics"])
    assert found["drop"]["losses"] != found["ce"]["losses"]  # dropout did something


def test_each_rank_draws_its_own_dropout_masks(runs):
    """Same initial weights everywhere, but not the same dropout stream (or rank 1's
    rows would get rank 0's masks)."""
    ranks = [json.loads((runs[1] / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["next_random"] != ranks[1]["next_random"]


def test_the_training_losses_change_between_epochs(runs):
    """Guards the comparison above against a run that does not train at all."""
    one = json.loads((runs[0] / "result-rank0.json").read_text())["ce"]["losses"]
    assert one[0] - one[-1] > 1e-3


def test_only_rank_0_writes_files(runs):
    _, two_dir = runs
    ranks = [json.loads((two_dir / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["written"] == ["history.json", "last.pt", "metrics.json"]
    assert ranks[1]["written"] == []
    for name in ("ce", "bce", "tail", "resumed", "drop", "drop-resumed"):
        assert sorted(p.name for p in (two_dir / name).iterdir()) == [
            "history.json", "last.pt", "metrics.json"]
    # nothing else: no per-rank checkpoints, no temporary files left behind
    assert sorted(p.name for p in two_dir.iterdir()) == [
        "bce", "ce", "drop", "drop-resumed", "result-rank0.json", "result-rank1.json",
        "resumed", "tail"]


def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    proc, report, seconds = _launch(tmp_path, "fail", 2, timeout=90, FAIL_RANK="1")
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stdout + proc.stderr
    assert not (report / "result-rank0.json").exists()  # rank 0 did not finish either
    assert seconds < 60  # torchrun stopped rank 0; it did not wait for the 30-minute timeout
