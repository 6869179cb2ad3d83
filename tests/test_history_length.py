"""benchmarks/history_length.py: the per-L summary and its BENCHMARKS.md section."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
spec = importlib.util.spec_from_file_location("bench_history_length", BENCH / "history_length.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
from sections import splice  # noqa: E402


def fake(L, seed, ndcg, spe):
    block = {"hr@10": 2 * ndcg, "ndcg@10": ndcg, "mrr": ndcg / 2}
    return {"config": {"maxlen": L}, "seed": seed, "test": {"full": block}, "valid": {"full": block},
            "epochs": 10, "train_seconds": 10 * spe, "seconds_per_epoch": spe, "loadavg_1m": 1.0}


def test_rows_average_seeds_per_length_in_order():
    rows = bench.summarise([fake(50, 1, 0.05, 2.0), fake(10, 0, 0.03, 1.0), fake(50, 0, 0.07, 4.0)])
    assert [r["maxlen"] for r in rows] == [10, 50]
    assert rows[1]["seeds"] == [0, 1] and rows[1]["ndcg@10"] == pytest.approx(0.06)
    assert rows[1]["seconds_per_epoch"] == pytest.approx(3.0)


def test_section_shows_ratios_against_maxlen_50_between_its_markers():
    blob = {"env": {"device": "cpu"}, "runs": [fake(10, 0, 0.03, 1.0), fake(50, 0, 0.06, 4.0)]}
    text = bench.render_section(blob)
    assert text.startswith(bench.START) and text.rstrip().endswith(bench.END)
    row10 = next(line for line in text.splitlines() if line.startswith("| 10 |"))
    assert "| 0.50x |" in row10 and "| 0.25x |" in row10
    doc = splice("# B\n\n" + bench.START + "\nold\n" + bench.END + "\n\ntail\n", text)
    assert "old" not in doc and doc.count(bench.START) == 1 and doc.endswith("tail\n")


def test_splice_refuses_a_section_without_markers():
    with pytest.raises(ValueError, match="NAME:start"):
        splice("# B\n", "no markers\n")
