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
    assert "| epochs |" not in text  # pmixer's epochs are not ours: no epochs column
    ref = next(line for line in text.splitlines() if "pmixer/SASRec.pytorch" in line)
    assert "old file-order split" in ref and "440" in ref  # its true time, its old split
    assert "Test CPU" in text
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


def test_time_budget_and_epoch_cap_are_detected_from_the_config():
    budget = dict(fake_run("sasrec", 0, 0.06, seconds=905.0), config={"max_train_seconds": 900, "epochs": 100})
    capped = dict(fake_run("gru4rec", 0, 0.05, epochs=30), best_epoch=29, config={"epochs": 30, "patience": 5})
    early = dict(fake_run("meanpool", 0, 0.04, epochs=30), best_epoch=20, config={"epochs": 30, "patience": 5})
    text = bench.render_table(bench.aggregate([budget, capped, early]), {"device": "cpu"})
    assert "| sasrec† |" in text and "| gru4rec‡ |" in text and "| meanpool |" in text
    assert "time budget" in text and "epoch cap" in text


def test_a_fixed_length_run_that_peaked_long_before_the_cap_is_not_marked_capped():
    # pmixer-style: 300 epochs, patience 300, best at 172: the cap did not bind it
    fixed = dict(fake_run("sasrec", 0, 0.035, epochs=300), best_epoch=172, config={"epochs": 300, "patience": 300})
    late = dict(fake_run("gru4rec", 0, 0.05, epochs=300), best_epoch=298, config={"epochs": 300, "patience": 300})
    text = bench.render_table(bench.aggregate([fixed, late]), {"device": "cpu"})
    assert "| sasrec |" in text and "| gru4rec‡ |" in text


def test_a_user_subset_row_is_not_divided_by_popularity_on_all_users():
    pop = fake_run("popularity", 0, 0.02)
    sub = dict(fake_run("din", 0, 0.01), label="din:attention=mlp,users=150")
    text = bench.render_table(bench.aggregate([pop, sub]), {"device": "cpu"})
    row = next(line for line in text.splitlines() if line.startswith("| din:attention=mlp,users=150"))
    assert row.endswith("| – (other users) |") and "0.50x" not in row
    assert "| 1.00x |" in next(line for line in text.splitlines() if line.startswith("| popularity"))


def ranked_run(label, seed, valid, ranks):
    r = fake_run(label.split(":")[0], seed, 0.05)
    r["label"], r["valid"] = label, {"full": {"hr@10": 0, "ndcg@10": valid, "mrr": 0}, "sampled100": r["valid"]["sampled100"]}
    lr, dropout = (float(x.split("=")[1]) for x in label.split(":")[1].split(",")) if ":" in label else (0.003, 0.2)
    r["config"] = {"lr": lr, "dropout": dropout, "epochs": 100, "patience": 5}
    r["best_epoch"], r["test_ranks"] = 3, {"full": ranks, "sampled100": ranks}
    return r


def test_budget_table_picks_on_validation_and_paired_table_compares_picks():
    good = [0] * 50 + [100] * 50  # NDCG@10 0.5
    bad = [100] * 100
    runs = [ranked_run("sasrec:lr=0.001,dropout=0.2", 0, 0.02, bad),
            ranked_run("sasrec:lr=0.003,dropout=0.2", 0, 0.05, good),  # best on validation
            ranked_run("gru4rec:lr=0.001,dropout=0.2", 0, 0.04, bad),
            ranked_run("gru4rec:lr=0.003,dropout=0.2", 0, 0.01, good)]  # better on test, not picked
    best = bench.best_per_family(runs)
    assert best["sasrec"]["label"] == "sasrec:lr=0.003,dropout=0.2"
    assert best["gru4rec"]["label"] == "gru4rec:lr=0.001,dropout=0.2"  # test is never looked at
    table = bench.budget_table(runs)
    assert "lr=0.003, dropout=0.2 ★" in table and table.count("★") == 2
    paired = bench.paired_table(runs)
    row = next(line for line in paired.splitlines() if line.startswith("| gru4rec"))
    assert "+0.5000" in row and row.endswith("| yes |")


def test_family_drops_only_the_tuned_settings():
    assert bench.family("sasrec:lr=0.001,dropout=0.5") == "sasrec"
    assert bench.family("din:attention=dot,lr=0.003,dropout=0.2,max_train_seconds=900") == "din:attention=dot"
    assert bench.family("sasrec:loss=bce,maxlen=200") == "sasrec:loss=bce,maxlen=200"


def test_user_subset_keeps_the_catalogue():
    from recattn_lessons.data import interactions_from_frame
    import pandas as pd
    df = pd.DataFrame({"userId": [1, 1, 2, 2, 3, 3], "movieId": [5, 6, 5, 7, 8, 9], "timestamp": range(6)})
    d = interactions_from_frame(df)
    sub = bench.user_subset(d, 2, seed=0)
    assert sub.n_users == 2 and len(sub.sequences) == 2 and sub.n_items == d.n_items
    assert set(sub.raw_user_ids) <= {1, 2, 3}
    with pytest.raises(ValueError, match="users=4"):
        bench.user_subset(d, 4)


def test_short_label_keeps_what_defines_a_row_and_counts_the_rest():
    from recommender_report import short_label

    assert short_label("popularity") == "popularity"
    assert short_label("sasrec:lr=0.001,dropout=0.2") == "sasrec:lr=0.001,dropout=0.2"
    assert short_label("din:attention=mlp,lr=0.003,users=150") == "din:attention=mlp,lr=0.003,users=150"
    assert short_label("sasrec:loss=bce,n_negatives=1,maxlen=200,lr=0.001") == "sasrec:loss=bce,lr=0.001 (+2 settings)"


def test_re_rendering_keeps_the_sections_other_benchmarks_wrote(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# old tables\n\n<!-- attention-cost:start -->\ncost table\n<!-- attention-cost:end -->\n"
                  "<!-- serving-cost:start -->\nserving\n<!-- serving-cost:end -->\n")
    (tmp_path / "results").mkdir()
    bench.write_markdown(md, tmp_path / "results")
    text = md.read_text()
    assert "# old tables" not in text and text.startswith("# Benchmarks")
    assert "<!-- attention-cost:start -->\ncost table\n<!-- attention-cost:end -->" in text
    assert "<!-- serving-cost:start -->\nserving\n<!-- serving-cost:end -->" in text
    # a section the renderer itself writes is not duplicated
    assert bench.keep_sections("<!-- a:start -->old<!-- a:end -->", "new <!-- a:start -->x<!-- a:end -->") \
        == "new <!-- a:start -->x<!-- a:end -->"


def test_other_benchmarks_result_files_are_not_read_as_recommender_runs(tmp_path):
    run = fake_run("sasrec", 0, 0.06)
    env = {"device": "cpu"}
    (tmp_path / "attention-cost-cpu.json").write_text(json.dumps({"kind": "attention-cost", "env": env, "points": []}))
    (tmp_path / "serving-cpu.json").write_text(json.dumps({"kind": "serving-load", "dataset": "movielens", "env": env}))
    (tmp_path / "movielens-cpu.json").write_text(json.dumps({"dataset": "movielens", "env": env, "runs": [run]}))
    groups = bench.load_results(tmp_path)
    assert list(groups) == [("movielens", "cpu")] and groups["movielens", "cpu"]["runs"] == [run]


def test_runs_from_several_cpus_say_which_seeds_ran_where(tmp_path):
    runs = [dict(fake_run("sasrec", 0, 0.06), cpu="AMD EPYC"), dict(fake_run("sasrec", 2, 0.05), cpu="Intel Xeon")]
    env = {"device": "cpu", "cpu": "Intel Xeon"}
    (tmp_path / "movielens-cpu.json").write_text(json.dumps({"dataset": "movielens", "env": env, "runs": runs}))
    text = bench.render(tmp_path)
    assert "(AMD EPYC: seeds [0], Intel Xeon: seeds [2])" in text
