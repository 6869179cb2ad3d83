"""Synthetic users at scale and the lesson 08 benchmark scripts' pure parts (issue 10)."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from recattn_lessons.data.scale import zipf_sequences

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import ddp_throughput  # noqa: E402
import generative  # noqa: E402


def test_zipf_sequences_are_seeded_valid_and_long_tailed():
    a, b = zipf_sequences(4000, 500, mean_len=12, min_len=3, seed=1), zipf_sequences(4000, 500, 12, 3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, zipf_sequences(4000, 500, 12, 3, seed=2)))
    lengths = torch.tensor([len(s) for s in a], dtype=torch.float64)
    assert lengths.min() >= 3 and abs(lengths.mean() - 12) < 0.5  # geometric tail, mean as asked
    flat = torch.cat(a)
    assert flat.min() >= 1 and flat.max() <= 500
    counts = torch.bincount(flat, minlength=501).double()
    assert 8 < counts[1] / counts[10] < 12.5  # Zipf exponent 1: item 1 is ~10x item 10


@pytest.mark.parametrize("kw, match", [(dict(n_users=0), "n_users"), (dict(min_len=1), "min_len"),
                                       (dict(mean_len=2.0, min_len=3), "mean_len")])
def test_zipf_sequences_refuse_bad_sizes(kw, match):
    with pytest.raises(ValueError, match=match):
        zipf_sequences(**{"n_users": 10, "n_items": 5, **kw})


def test_throughput_worker_times_the_training_step_on_one_process(tmp_path):
    out = tmp_path / "r.json"
    args = Namespace(users=300, items=200, mean_len=8.0, maxlen=10, negatives=5, batch_size=16,
                     steps=3, warmup=1, threads=1, out=str(out))
    ddp_throughput.worker(args)
    r = json.loads(out.read_text())
    assert (r["processes"], r["steps"]) == (1, 3)
    assert 0 < r["events"] <= 3 * 16 * 10 and r["events_per_second"] == pytest.approx(
        r["events"] / r["seconds"], rel=0.01)


def test_throughput_section_reports_ratios_to_one_process_one_thread():
    runs = [{"processes": p, "threads": t, "events_per_second": e} for p, t, e in
            [(1, 1, 1000.0), (1, 2, 1500.0), (2, 1, 1800.0)]]
    settings = dict(users=10, items=5, mean_len=4, maxlen=8, negatives=2, batch_size=4, steps=2, warmup=1)
    md = ddp_throughput.render_section({"runs": runs, "env": {}, "settings": settings})
    assert "| 2 | 1 | 2 | 1,800 | 1.80x |" in md and "| 1 | 2 | 2 | 1,500 | 1.50x |" in md
    assert md.startswith("<!-- ddp-throughput:start -->")


def test_scaling_specs_change_one_thing_each():
    specs = generative.scaling_specs("hstu", sizes=((16, 2), (64, 2)), fractions=(0.25, 1.0))
    assert specs == ["hstu:d_model=16,n_blocks=2", "hstu:d_model=64,n_blocks=2",
                     "hstu:d_model=64,n_blocks=2,train_fraction=0.25"]


def test_parameter_counts_split_off_the_item_table():
    total, body = generative.parameter_counts("sasrec", 100, d_model=8, n_blocks=1)
    from recattn_lessons import models
    m = models.build("sasrec", 100, d_model=8, n_blocks=1)
    assert total == sum(p.numel() for p in m.parameters()) and total - body == 101 * 8


def _run(model, d, b, frac, nd):
    return {"model": model, "seed": 0, "epochs": 12, "best_epoch": 7, "train_seconds": 30.0,
            "config": {"d_model": d, "n_blocks": b, "train_fraction": frac},
            "valid": {"full": {"ndcg@10": nd + 0.01}}, "test": {"full": {"ndcg@10": nd, "hr@10": 2 * nd}}}


def test_scaling_rows_and_section_carry_each_runs_numbers():
    runs = [_run("hstu", 16, 2, 1.0, 0.04), _run("hstu", 64, 2, 0.25, 0.03), _run("sasrec", 64, 2, 1.0, 0.05)]
    rows = generative.scaling_rows(runs, n_items=50)
    assert [(r["model"], r["d_model"], r["train_fraction"]) for r in rows] == [
        ("hstu", 16, 1.0), ("hstu", 64, 0.25), ("sasrec", 64, 1.0)]
    assert rows[1]["test_ndcg@10"] == 0.03 and rows[0]["params"] > rows[0]["non_embedding_params"]
    md = generative.render_section([], {}, {"env": {}, "runs": runs}, n_items=50)
    assert "| hstu | 64 | 2 | 0.25 |" in md and "0.0300" in md and "0.1893" in md
    assert md.startswith("<!-- generative:start -->") and md.rstrip().endswith("<!-- generative:end -->")


def test_scaling_reuses_the_comparisons_default_run_as_the_full_size_point(tmp_path):
    scaling = {"kind": "scaling", "env": {}, "runs": [dict(_run("hstu", 16, 2, 1.0, 0.04), label="hstu:d_model=16")]}
    base = [dict(_run("hstu", 64, 2, 1.0, 0.05), label="hstu:lr=0.003,dropout=0.2"),
            dict(_run("hstu", 64, 2, 1.0, 0.06), label="hstu:lr=0.001,dropout=0.2"),  # another grid point
            dict(_run("hstu", 64, 2, 1.0, 0.07), label="hstu:lr=0.003,dropout=0.2", seed=1),  # another seed
            dict(_run("sasrec", 64, 2, 1.0, 0.08), label="sasrec:lr=0.003,dropout=0.2")]  # not in this file
    merged = generative.with_base_points(scaling, base)
    assert [r["test"]["full"]["ndcg@10"] for r in merged["runs"]] == [0.04, 0.05]
    assert generative.with_base_points(None, base) is None
    for tag, runs in (("a", scaling["runs"]), ("b", base[:1])):
        (tmp_path / f"scaling-cpu-{tag}.json").write_text(json.dumps({"env": {"cpu": tag}, "runs": runs}))
    loaded = generative.load_scaling(tmp_path)
    assert len(loaded["runs"]) == 2 and loaded["env"] == {"cpu": "a"} and generative.load_scaling(tmp_path / "x") is None


# ---------------------------------------------------------------- added by mutation testing

def test_zipf_sequences_map_the_top_of_the_unit_interval_to_the_last_item(monkeypatch):
    """cumsum / sum can end just below 1 (here 1 - 2^-52), under torch.rand's largest
    float64 value 1 - 2^-53: such a draw must still be item n_items, not n_items + 1."""
    top = 1 - 2 ** -53
    w = torch.arange(1, 7, dtype=torch.float64) ** -1.0
    assert float((w.cumsum(0) / w.sum())[-1]) < top  # the edge is real for n_items = 6
    monkeypatch.setattr(torch, "rand", lambda *size, generator=None, dtype=None: torch.full(size, top, dtype=dtype))
    flat = torch.cat(zipf_sequences(50, 6, mean_len=5, min_len=3, seed=0))
    assert flat.min() >= 1 and flat.max() <= 6 and (flat == 6).all()
