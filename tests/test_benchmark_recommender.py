"""benchmarks/recommender.py: aggregation, rendering, and one real (popularity) run."""

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "recommender.py"
spec = importlib.util.spec_from_file_location("bench_recommender", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def fake_run(model, seed, ndcg, sampled=0.5, seconds=10.0, epochs=5):
    block = {"hr@10": ndcg * 2, "ndcg@10": ndcg, "mrr": ndcg / 2}
    samp = {"hr@10": sampled + 0.2, "ndcg@10": sampled, "mrr": sampled - 0.1}
    return {"model": model, "seed": seed, "epochs": epochs, "train_seconds": seconds,
            "seconds_per_epoch": seconds / max(epochs, 1),
            "valid": {"full": block, "sampled100": samp}, "test": {"full": block, "sampled100": samp}}


def test_aggregate_mean_and_sample_sd():
    runs = [fake_run("sasrec", s, v) for s, v in zip((0, 1, 2), (0.05, 0.06, 0.07))]
    agg = bench.aggregate(runs)["sasrec"]
    assert agg["n"] == 3 and agg["seeds"] == [0, 1, 2]
    mean, sd = agg["full"]["ndcg@10"]
    assert mean == pytest.approx(0.06) and sd == pytest.approx(statistics.stdev([0.05, 0.06, 0.07]))
    assert agg["full"]["hr@10"][0] == pytest.approx(0.12)
    assert bench.aggregate([fake_run("din", 0, 0.03)])["din"]["full"]["ndcg@10"] == (0.03, 0.0)


def test_render_table_ratios_and_reference_row():
    runs = [fake_run("popularity", 0, 0.02, epochs=0, seconds=0.0), fake_run("sasrec", 0, 0.06)]
    text = bench.render_table(bench.aggregate(runs), {"device": "cpu", "cpu": "Test CPU", "torch_threads": 2})
    sasrec_row = next(line for line in text.splitlines() if line.startswith("| sasrec "))
    assert "3.00x" in sasrec_row  # 0.06 / 0.02 popularity
    assert f"{0.06 / 0.0456:.2f}x" in sasrec_row  # vs the pmixer reference
    assert "pmixer/SASRec.pytorch" in text and "Test CPU" in text
    # rows follow a fixed model order (sasrec first), whatever the run order
    lines = [line for line in text.splitlines() if line.startswith("| ") and "model" not in line]
    assert lines[0].startswith("| sasrec") and lines[1].startswith("| popularity")


def test_render_only_reads_every_results_file(tmp_path):
    for device in ("cpu", "cuda"):
        blob = {"dataset": "movielens", "env": {"device": device, "cpu": "x", "gpu": "H100"},
                "runs": [fake_run("popularity", 0, 0.02), fake_run("sasrec", 0, 0.07)]}
        (tmp_path / f"movielens-{device}.json").write_text(json.dumps(blob))
    md = tmp_path / "B.md"
    assert bench.main(["--render-only", "--results", str(tmp_path), "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "## movielens on cpu" in text and "## movielens on cuda" in text
    assert "0.5905" in text  # the published anchors are listed


def test_real_popularity_run(tmp_path):
    """End to end on the real data with the only model that needs no training (~2 s)."""
    md = tmp_path / "B.md"
    argv = ["--models", "popularity", "--seeds", "0", "--results", str(tmp_path), "--markdown", str(md)]
    assert bench.main(argv) == 0
    blob = json.loads((tmp_path / "movielens-cpu.json").read_text())
    (run,) = blob["runs"]
    assert run["model"] == "popularity" and blob["env"]["torch"]
    full, sampled = run["test"]["full"]["ndcg@10"], run["test"]["sampled100"]["ndcg@10"]
    # popularity is a weak but real model: far above chance in both protocols,
    # and the sampled protocol flatters it (chance: full ~ 1/9066, sampled ~ 0.045)
    assert 0.005 < full < 0.05 and 0.2 < sampled < 0.5
    assert "| popularity |" in md.read_text()


def test_bad_override_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--set", "epochs", "--results", str(tmp_path), "--markdown", str(tmp_path / "B.md")])


def test_model_spec_parsing_and_labels():
    assert bench.parse_model_spec("din:attention=dot,n_negatives=8") == ("din", {"attention": "dot", "n_negatives": 8})
    assert bench.parse_model_spec("sasrec") == ("sasrec", {})
    with pytest.raises(ValueError, match="key=value"):
        bench.parse_model_spec("din:dot")
    runs = [fake_run("din", 0, 0.03), fake_run("din", 0, 0.04), fake_run("popularity", 0, 0.02)]
    runs[1]["label"] = "din:attention=dot"
    agg = bench.aggregate(runs)
    assert set(agg) == {"din", "din:attention=dot", "popularity"}
    text = bench.render_table(agg, {"device": "cpu"})
    rows = [line.split(" |")[0] for line in text.splitlines() if line.startswith("| ") and "model" not in line]
    assert rows[:3] == ["| din", "| din:attention=dot", "| popularity"]


def test_append_keeps_other_runs(tmp_path, monkeypatch):
    blob = {"dataset": "movielens", "env": {"device": "cpu", "torch_threads": 2},
            "runs": [fake_run("sasrec", 0, 0.07), fake_run("popularity", 0, 0.01)]}
    (tmp_path / "movielens-cpu.json").write_text(json.dumps(blob))
    monkeypatch.setattr(bench, "run_all", lambda *a: a[-1]([fake_run("popularity", 0, 0.02), fake_run("din", 1, 0.03)]))
    argv = ["--append", "--results", str(tmp_path), "--markdown", str(tmp_path / "B.md")]
    assert bench.main(argv) == 0
    runs = json.loads((tmp_path / "movielens-cpu.json").read_text())["runs"]
    got = sorted((r["model"], r["seed"], r["test"]["full"]["ndcg@10"]) for r in runs)
    assert got == [("din", 1, 0.03), ("popularity", 0, 0.02), ("sasrec", 0, 0.07)]


def test_busy_machine_is_flagged():
    agg = bench.aggregate([fake_run("sasrec", 0, 0.06)])
    busy = bench.render_table(agg, {"device": "cpu", "cpu_count": 2, "loadavg_1m": [1.5, 6.0]})
    quiet = bench.render_table(agg, {"device": "cpu", "cpu_count": 2, "loadavg_1m": [0.5, 1.5]})
    assert "timings are inflated" in busy and "1.5–6.0" in busy
    assert "timings are inflated" not in quiet


def test_runs_cut_by_the_time_limit_are_marked():
    cut = dict(fake_run("sasrec", 0, 0.06), stopped_by_deadline=True)
    text = bench.render_table(bench.aggregate([cut, fake_run("popularity", 0, 0.02)]), {"device": "cpu"})
    assert "| sasrec† |" in text and "Interrupted" in text
    assert "| popularity |" in text


def test_settings_of_each_row_are_listed():
    run = dict(fake_run("sasrec", 0, 0.06), config={"lr": 0.002, "dropout": 0.3, "seed": 0}, bf16=False)
    text = bench.render_table(bench.aggregate([run]), {"device": "cpu"})
    assert "- sasrec: lr=0.002, dropout=0.3, bf16=False" in text
