"""Lesson 10's benchmark tables (benchmarks/semantic_ids_report.py): numbers from synthetic runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import semantic_ids_report as rep  # noqa: E402


def _row(method, seed, ranks, cold=0.0, **extra):
    return {"method": method, "seed": seed, "cold": cold, "test_ranks_full": ranks, **extra}


def _write(folder: Path, rows):
    for r in rows:
        (folder / f"run-{r['method']}-cold{r['cold']:g}-seed{r['seed']}.json").write_text(json.dumps(r))


def test_ndcg_and_the_paired_interval_follow_the_ranks(tmp_path):
    U = 200
    base = [0] * (U // 2) + [50] * (U // 2)  # NDCG@10 = 0.5
    better = [0] * U  # NDCG@10 = 1
    _write(tmp_path, [_row("sasrec", s, base) for s in (0, 1)] + [_row("genret-rq", s, better) for s in (0, 1)])
    rows = rep.comparison_rows(rep.load_runs(tmp_path), 0.0, n_boot=200)
    by = {r["method"]: r for r in rows}
    assert by["sasrec"]["ndcg@10"] == pytest.approx((0.5, 0.0))
    assert by["genret-rq"]["hr@10"] == pytest.approx((1.0, 0.0))
    pooled = by["genret-rq"]["vs_baseline"]["pooled"]
    assert pooled["diff"] == pytest.approx(0.5) and pooled["lo"] > 0
    assert "vs_baseline" not in by["sasrec"]
    table = rep.comparison_table(rows)
    assert "+0.5000" in table and "| 2 / 0 / 0 |" in table
    assert rep.verdicts(rows) == [f"{rep.NAMES['genret-rq']} beats {rep.NAMES['sasrec']}: "
                                  f"Δ NDCG@10 +0.5000, 95% CI [{pooled['lo']:+.4f}, {pooled['hi']:+.4f}]."]


def test_a_tie_is_called_a_tie_and_a_loss_a_loss(tmp_path):
    U = 300
    a = [0, 50, 50] * (U // 3)
    b = [50, 0, 50] * (U // 3)  # same mean, different users: the interval straddles 0
    worse = [50] * U
    _write(tmp_path, [_row("sasrec", 0, a), _row("genret-lsh", 0, b), _row("genret-random", 0, worse)])
    rows = rep.comparison_rows(rep.load_runs(tmp_path), 0.0, n_boot=300)
    words = rep.verdicts(rows)
    assert any("LSH" in w and "cannot be told apart" in w for w in words)
    assert any("random" in w and "loses to" in w for w in words)


def test_seeds_pair_only_with_the_same_seed(tmp_path):
    U = 100
    _write(tmp_path, [_row("sasrec", 0, [0] * U), _row("sasrec", 1, [50] * U),
                      _row("sasrec-text", 1, [0] * U)])
    (r,) = [x for x in rep.comparison_rows(rep.load_runs(tmp_path), 0.0, n_boot=100) if x["method"] == "sasrec-text"]
    assert r["vs_baseline"]["seeds"] == [1]
    assert r["vs_baseline"]["pooled"]["diff"] == pytest.approx(1.0)  # against seed 1 (0.0), not seed 0 (1.0)


def test_lesson09_sasrec_fills_the_standard_split_and_cold_runs_stay_apart(tmp_path):
    l9 = tmp_path / "l9"
    l9.mkdir()
    (l9 / "topk-sasrec-lr0.001-dropout0.2-seed0.json").write_text(json.dumps({"seed": 0, "test_ranks_full": [0, 1]}))
    _write(tmp_path, [_row("sasrec", 0, [5, 5], cold=0.05, cold_items={
        "n_cold_test_users": 1, "cold_share_of_slots": 0.0, "distinct_cold_items_shown": 0,
        "cold_users": {"ndcg@10": 0.0, "mrr": 0.001}, "warm_users": {"ndcg@10": 0.25}})])
    runs = rep.load_runs(tmp_path, l9)
    assert set(runs) == {("sasrec", 0.0, 0), ("sasrec", 0.05, 0)}
    (c,) = rep.cold_rows(runs, 0.05)
    assert c["warm_ndcg@10"] == (0.25, 0.0) and c["cold_share_of_slots"] == (0.0, 0.0)
    assert "| 0.0000 ± 0.0000 | 0.00100 | 0.2500 ± 0.0000 | 0.00% | 0 |" in rep.cold_table([c])


def test_section_renders_between_its_markers_and_replaces_itself(tmp_path):
    _write(tmp_path, [_row("sasrec", 0, [0, 20]), _row("genret-rq", 0, [1, 20])])
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    rep.write_section(md, tmp_path)
    rep.write_section(md, tmp_path)
    text = md.read_text()
    assert text.count("<!-- semantic-ids:start -->") == 1 and "keep" in text
    assert "generative retrieval, RQ-k-means IDs" in text


def test_decode_table_reports_ratios_to_the_first_row():
    dec = {"rows": [{"name": "exact", "ms_per_user": 0.5}, {"name": "beam 20", "ms_per_user": 5.0,
                                                             "invalid_share": 0.25}]}
    t = rep.decode_table(dec)
    assert "| exact | 0.500 | 1.0 |  |" in t and "| beam 20 | 5.000 | 10.0 | 25.0% |" in t


def test_ids_table_shows_usage_entropy_and_collisions():
    ids = {"methods": [{"method": "rq-kmeans", "text": "e5", "seconds": 1.0, "log2_k": 8.0, "diagnostics": {
        "usage": [1.0, 0.5, 0.25], "entropy_bits": [8.0, 6.0, 4.0], "unique_share": 0.9,
        "collision_rate": 0.1, "largest_group": 3}}]}
    t = rep.ids_table(ids)
    assert "| rq-kmeans | e5 | 100% / 50% / 25% | 8.00 / 6.00 / 4.00 of 8 | 90.0% | 10.0% | 3 | 1.0 |" in t
    assert math.isclose(ids["methods"][0]["diagnostics"]["unique_share"], 0.9)
