"""benchmarks/attention_cost.py: fits, tables, the memory cap, and a tiny real run."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "attention_cost.py"
spec = importlib.util.spec_from_file_location("bench_attention_cost", PATH)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)

LENGTHS = [16, 32, 64, 128, 256, 512, 1024]


def test_fit_recovers_the_exponent():
    assert bench.fit_slope(LENGTHS, [3e-9 * L ** 2 for L in LENGTHS]) == pytest.approx(2.0)
    assert bench.fit_slope(LENGTHS, [5e-6 * L for L in LENGTHS]) == pytest.approx(1.0)
    noisy = [3e-9 * L ** 2 * (1.1 if i % 2 else 0.9) for i, L in enumerate(LENGTHS)]
    assert bench.fit_slope(LENGTHS, noisy) == pytest.approx(2.0, abs=0.15)


def test_fit_uses_the_upper_half():
    # a fixed overhead dominates small L: only the upper half shows the L^2 regime
    t = [1e-3 + 1e-7 * L ** 2 for L in LENGTHS]
    assert bench.fit_slope(LENGTHS, t) > 1.7
    assert bench.fit_slope(LENGTHS, t, upper_half=False) < bench.fit_slope(LENGTHS, t) - 0.3
    assert bench.fit_slope([16], [1.0]) is None
    assert bench.fit_slope([16, 32, 64], [1.0, None, None]) is None  # skipped points carry None


def test_predict_peak_follows_the_last_two_points():
    assert bench.predict_peak([], 64) is None and bench.predict_peak([(16, 100)], 32) is None
    assert bench.predict_peak([(16, 100), (32, 90)], 64) == pytest.approx(90)  # never falling
    assert bench.predict_peak([(16, 100), (32, 200)], 128) == pytest.approx(800)  # linear so far
    assert bench.predict_peak([(16, 100), (32, 400)], 64) == pytest.approx(1600)


def fake_blob():
    rows = []
    for L in (256, 512, 1024):
        rows += [{"method": "reference", "L": L, "status": "ok", "median_s": 1.4e-2 * (L / 256) ** 2,
                  "peak_bytes": 4 * 4 * L * L},
                 {"method": "sdpa", "L": L, "status": "ok", "median_s": 1e-3 * (L / 256) ** 2,
                  "peak_bytes": 8 * L * 64}]
    rows[-2] = {"method": "reference", "L": 1024, "status": "skipped",
                "reason": "predicted peak 16.0 MiB > cap 8.0 MiB"}
    return {"kind": "attention-cost",
            "env": {"cpu": "Test CPU", "torch": "2.x", "torch_threads": 1, "date_utc": "today",
                    "loadavg_1m": 0.1, "loadavg_1m_after": 0.2},
            "config": {"device": "cpu", "batch": 1, "heads": 4, "head_dim": 64, "dtype": "float32",
                       "block_size": 128, "window": 64, "max_bytes": 8 * 2 ** 20,
                       "lengths": [256, 512, 1024]},
            "methods": {"reference": {"available": True}, "sdpa": {"available": True},
                        "sdpa-cudnn": {"available": False, "reason": "No viable backend"}},
            "results": rows,
            "slopes": {"reference": {"time": 2.0, "memory": 2.0}, "sdpa": {"time": 2.0, "memory": 1.0}}}


def test_table_shows_ratios_skips_and_unavailable():
    text = bench.render_section([fake_blob()])
    assert text.startswith(bench.START) and text.rstrip().endswith(bench.END)
    row256 = next(line for line in text.splitlines() if line.startswith("| 256 |"))
    assert "14.00 ms" in row256 and "1.00 ms (14x)" in row256  # time table: 14x faster
    row1024 = next(line for line in text.splitlines() if line.startswith("| 1024 |"))
    assert row1024.split("|")[2].strip() == "skipped"
    assert "At L=512" in text and "sdpa is 14x faster" in text  # largest L the reference ran
    assert "reference from L=1024 on (predicted peak 16.0 MiB > cap 8.0 MiB)" in text
    assert "sdpa-cudnn (No viable backend)" in text and "| sdpa-cudnn" not in text
    assert "| slope | 2.00 | 2.00 |" in text and "| slope | 2.00 | 1.00 |" in text
    assert "Test CPU" in text


def test_splice_replaces_between_markers_or_appends():
    section = bench.render_section([fake_blob()])
    doc = f"# Bench\n\nbefore\n\n{bench.START}\nold stuff\n{bench.END}\n\nafter\n"
    new = bench.splice(doc, section)
    assert "old stuff" not in new and new.startswith("# Bench\n\nbefore\n\n") and new.endswith("\n\nafter\n")
    assert new.count(bench.START) == 1 and bench.splice(new, section) == new  # idempotent
    appended = bench.splice("# Bench\n", section)
    assert appended == "# Bench\n\n" + section
    assert bench.splice("", section) == section


def test_peak_bytes_is_a_peak_not_a_total():
    def two_in_turn(q, k, v):
        a = torch.empty(2 ** 18)  # 1 MiB, freed before the next one
        del a
        b = torch.empty(2 ** 18)
        return b

    q = torch.randn(1, 4, 128, 64)
    assert bench.peak_bytes(two_in_turn, q, q, q) == 2 ** 20
    fns = bench.method_fns(bench.CostConfig(methods=("reference", "sdpa-flash")))
    assert bench.peak_bytes(fns["reference"], q, q, q) >= 4 * 128 * 128 * 4  # the (H, L, L) weights
    assert bench.peak_bytes(fns["sdpa-flash"], q, q, q) < 4 * 128 * 128 * 4


def test_methods_compute_the_same_attention():
    cfg = bench.CostConfig(block_size=5, window=100)  # window > L: local window is full attention
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 24, 8, generator=g) for _ in range(3))
    fns = bench.method_fns(cfg)
    want = fns["reference"](q, k, v)
    for name in ("sdpa", "sdpa-math", "sdpa-flash", "tiled", "local"):
        torch.testing.assert_close(fns[name](q, k, v), want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fns["linear"](q, k, v), want, atol=1e-3)  # another model
    with pytest.raises(ValueError, match="unknown methods"):
        bench.method_fns(bench.CostConfig(methods=("reference", "flashy")))


def test_memory_cap_skips_and_reports():
    cfg = bench.CostConfig.quick(lengths=(16, 32, 64), methods=("reference", "sdpa-flash"),
                                 min_run_time=0.002, max_bytes=130_000)
    blob = bench.run_cost(cfg, progress=False)
    ref = {r["L"]: r for r in blob["results"] if r["method"] == "reference"}
    assert ref[16]["status"] == ref[32]["status"] == "ok" and ref[32]["peak_bytes"] < 130_000
    assert ref[64]["status"] == "skipped" and "cap" in ref[64]["reason"]  # predicted ~175 KB
    flash = [r for r in blob["results"] if r["method"] == "sdpa-flash"]
    assert [r["status"] for r in flash] == ["ok", "ok", "ok"]  # O(L) memory stays under the cap
    assert "reference from L=" in bench.render_section([blob])


def test_quick_run_end_to_end(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(f"# Bench\n\n{bench.START}\nold\n{bench.END}\n\ntail\n")
    out = tmp_path / "attention-cost-cpu.json"
    blob = bench.main(["--quick", "--lengths", "16", "32", "64", "--min-run-time", "0.002", "--out", str(out),
                       "--markdown", str(md), "--methods", "reference", "sdpa", "tiled", "linear", "local"])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(blob))
    assert {"torch", "cpu", "torch_threads", "date_utc", "loadavg_1m"} <= set(saved["env"])
    assert {r["method"] for r in saved["results"]} == {"reference", "sdpa", "tiled", "linear", "local"}
    assert all(r["status"] == "ok" and r["median_s"] > 0 and r["peak_bytes"] > 0 for r in saved["results"])
    assert all(math.isfinite(s["time"]) for s in saved["slopes"].values())
    text = md.read_text()
    assert "old" not in text and text.endswith("\n\ntail\n") and "| 64 |" in text
    md.write_text("# Only the recommender tables\n")  # markers missing: --render-only appends them
    bench.main(["--render-only", "--results", str(tmp_path), "--markdown", str(md)])
    assert md.read_text().startswith("# Only the recommender tables\n\n" + bench.START)
