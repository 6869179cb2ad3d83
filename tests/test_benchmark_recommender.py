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


def seeded_ranked_run(label, seed, full, sampled):
    """A run whose test metrics are those of its per-user ranks (as real runs store them)."""
    import torch
    from recattn_lessons.metrics import bootstrap_ci

    r = fake_run(label.split(":")[0], seed, 0.05)
    r["label"], r["test_ranks"] = label, {"full": full, "sampled100": sampled}
    r["test"] = {p: {m: v["mean"] for m, v in bootstrap_ci(torch.tensor(ranks), 10, 1000, 0).items()}
                 for p, ranks in (("full", full), ("sampled100", sampled))}
    return r


def test_ci_columns_show_the_first_seeds_point_and_interval_for_five_metrics():
    import torch
    from recattn_lessons.metrics import bootstrap_ci

    g = torch.Generator().manual_seed(0)
    seeds = {s: (torch.randint(0, 40, (200,), generator=g).tolist(), torch.randint(0, 30, (200,), generator=g).tolist())
             for s in (2, 0, 1)}  # out of order: the first seed is still seed 0
    runs = [seeded_ranked_run("sasrec", s, *ranks) for s, ranks in seeds.items()]
    agg = bench.aggregate(runs)["sasrec"]
    assert agg["ci_seed"] == 0 and set(agg["ci"]) == set(agg["ci_sampled"]) == {"hr@10", "ndcg@10", "mrr"}
    text = bench.render_table({"sasrec": agg}, {"device": "cpu"})
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert header.count("first seed [95% CI]") == 5 and header.count("|") == 16
    row = next(line for line in text.splitlines() if line.startswith("| sasrec "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 15
    full = bootstrap_ci(torch.tensor(seeds[0][0]), 10, 1000, 0)
    samp = bootstrap_ci(torch.tensor(seeds[0][1]), 10, 1000, 0)
    want = {3: (full, "hr@10", 3), 5: (full, "ndcg@10", 4), 7: (full, "mrr", 4),
            9: (samp, "hr@10", 3), 11: (samp, "ndcg@10", 3)}
    for i, (ci, m, d) in want.items():
        c = ci[m]
        assert cells[i] == f"{c['mean']:.{d}f} [{c['lo']:.{d}f}, {c['hi']:.{d}f}]", (i, m)
        assert c["lo"] <= c["mean"] <= c["hi"]
    # the point is seed 0's, not the three-seed mean printed in the column before it
    mean = statistics.fmean(r["test"]["full"]["ndcg@10"] for r in runs)
    assert cells[4].startswith(f"{mean:.4f} ±") and cells[5].startswith(f"{full['ndcg@10']['mean']:.4f} [")
    assert "first seed's point estimate (seed 0 here)" in text and "not an interval around the mean" in text


def test_rows_without_per_user_ranks_show_no_interval():
    text = bench.render_table(bench.aggregate([fake_run("sasrec", 0, 0.06)]), {"device": "cpu"})
    row = next(line for line in text.splitlines() if line.startswith("| sasrec "))
    assert row.count("| – |") == 5


def test_reference_row_has_no_seconds_per_epoch_but_keeps_its_train_time():
    text = bench.render_table(bench.aggregate([fake_run("sasrec", 0, 0.06)]), {"device": "cpu"})
    ref = next(line for line in text.splitlines() if "pmixer/SASRec.pytorch" in line)
    cells = [c.strip() for c in ref.strip("|").split("|")]
    assert len(cells) == 15 and cells[12] == "≈ 440" and cells[13] == "–"
    assert "1.84" not in ref
    assert bench.REFERENCE["seconds_per_epoch"] == 1.84  # lesson 05 reads REFERENCE: unchanged


def labelled_run(label, seed, valid, ranks):
    """``ranked_run`` for any label: its lr/dropout (if any) go to the config."""
    r = ranked_run(label.split(":")[0], seed, valid, ranks)
    kvs = dict(kv.split("=") for kv in label.partition(":")[2].split(",") if kv)
    r["label"] = label
    r["config"].update({k: float(kvs[k]) for k in ("lr", "dropout") if k in kvs})
    return r


def test_din_minus_meanpool_table_uses_the_picks_and_skips_other_users():
    from recommender_report import family_paired_table

    good, bad = [0] * 50 + [100] * 50, [100] * 100
    runs = [labelled_run("meanpool:lr=0.003,dropout=0.2", 0, 0.05, bad),
            labelled_run("meanpool:lr=0.001,dropout=0.2", 0, 0.01, good),  # not the pick
            labelled_run("din:attention=dot,lr=0.003,dropout=0.2", 0, 0.04, good),
            labelled_run("din:attention=mlp,lr=0.003,dropout=0.2,users=150", 0, 0.03, [0] * 30)]
    table = family_paired_table(runs, "din", "meanpool")
    assert table.splitlines()[0].startswith("| minus meanpool |")
    dot = next(line for line in table.splitlines() if line.startswith("| din:attention=dot"))
    assert "| +0.5000 |" in dot and dot.endswith("| yes |")
    mlp = next(line for line in table.splitlines() if line.startswith("| din:attention=mlp"))
    assert "– (other users)" in mlp
    assert family_paired_table(runs[:2], "din", "meanpool").startswith("_No din and meanpool")
    # the sasrec-minus table is unchanged by the shared row helper
    assert bench.paired_table(runs).startswith("_No sasrec run")


def test_grid_sizes_name_the_families_with_a_single_grid_point():
    from recommender_report import grid_sizes

    runs = [labelled_run("sasrec:lr=0.001,dropout=0.2", 0, 0.02, [1]), labelled_run("sasrec:lr=0.003,dropout=0.2", 0, 0.02, [1]),
            labelled_run("sasrec:lr=0.003,dropout=0.2", 1, 0.02, [1]),  # another seed: not a grid point
            dict(labelled_run("din:attention=mlp,lr=0.003,dropout=0.2", 0, 0.02, [1])),
            fake_run("popularity", 0, 0.02)]
    assert grid_sizes(runs) == {"sasrec": 2, "din:attention=mlp": 1}


def test_header_load_is_the_recorded_maximum():
    runs = [dict(fake_run("sasrec", 0, 0.06), loadavg_1m=5.93), dict(fake_run("sasrec", 0, 0.06), loadavg_1m=2.0),
            dict(fake_run("sasrec", 1, 0.06), loadavg_1m=1.81)]
    text = bench.header(runs)
    assert "reached\n5.9 at most" in text and "(at most\n1.8 after each run" in text
    assert "{load" not in text and "up to 11" not in text
    assert "(not recorded)" in bench.header([fake_run("sasrec", 0, 0.06)])


RESULTS = PATH.parent / "results"


def test_header_numbers_match_the_committed_results():
    """Every number the HEADER prose states is recomputed from benchmarks/results/ (and archive/)."""
    groups = bench.load_results(RESULTS)
    runs = groups["movielens", "cpu"]["runs"]
    by = lambda label: [r for r in runs if r.get("label", r["model"]) == label]
    text = " ".join(bench.HEADER.split())
    for bad in ("0.0195", "patience 10", "epoch 29", "load average up to", "reference's level",
                "for every trainable model"):
        assert bad not in text
    archive = json.loads(next((RESULTS / "archive").glob("movielens-cpu-file-order-*.json")).read_text())
    old = [r["test"]["full"]["ndcg@10"] for r in archive["runs"] if r["model"] == "sasrec"]
    assert len(old) == 3 and all(r["config"]["lr"] == 0.003 and r["config"]["epochs"] == 30
                                 for r in archive["runs"] if r["model"] == "sasrec")
    assert f"{bench.mean_sd(old)[0]:.4f} ± {bench.mean_sd(old)[1]:.4f} test full NDCG@10 (3 seeds" in text
    (default,) = by("sasrec:lr=0.003,dropout=0.2")
    assert f"the default (lr 3e-3) scores {default['test']['full']['ndcg@10']:.4f} (1 seed)" in text
    pick = [r["test"]["full"]["ndcg@10"] for r in by("sasrec:lr=0.001,dropout=0.2")]
    assert f"pick {bench.mean_sd(pick)[0]:.4f} ± {bench.mean_sd(pick)[1]:.4f} (3 seeds)" in text
    (bce,) = [r for r in runs if r.get("config", {}).get("loss") == "bce"]
    assert f"best validation at its epoch {bce['best_epoch']}" in text
    assert f"reaches {bce['test']['full']['ndcg@10']:.4f} test full NDCG@10" in text
    assert f"below the pmixer reference's {bench.REFERENCE['full']['ndcg@10']:.4f}" in text
    # the grid: one point for the two pmixer-configured SASRecs and DIN-MLP, two for the others
    from recommender_report import grid_sizes
    sizes = grid_sizes(runs)
    pmixer = [r for r in runs if r.get("config", {}).get("maxlen") == 200]  # BCE and CE
    assert sorted(r["config"]["loss"] for r in pmixer) == ["bce", "ce"]
    assert sorted(f for f, n in sizes.items() if n == 1) == sorted(
        ["din:attention=mlp,users=150"] + [bench.family(r["label"]) for r in pmixer])
    assert all(r["seed"] == 0 for r in pmixer) and "the pmixer-configured SASRecs have one seed" in text
    # the epoch cap: 100 for every trained run but the two pmixer-configured ones (300)
    caps = {r["config"]["epochs"] for r in runs if r["model"] != "popularity" and r not in pmixer}
    assert caps == {100} and {r["config"]["epochs"] for r in pmixer} == {300} and "`--set epochs=100`" in text
    assert {r["config"]["max_train_seconds"] for r in pmixer} == {2400} and "max_train_seconds=2400" in text
    assert max(r["loadavg_1m"] for r in runs if r["seed"] == 0) < 6


def test_the_loss_share_paragraph_matches_the_committed_results():
    """"The loss's share": CE minus BCE at pmixer's configuration, and the rest (the configuration)."""
    import torch
    from recattn_lessons.metrics import paired_bootstrap
    from recommender_report import BOOT_SEED, N_BOOT, best_per_family, stopped_by_time

    runs = bench.load_results(RESULTS)["movielens", "cpu"]["runs"]
    text = " ".join(bench.HEADER.split())
    share = text[text.index("**The loss's share.**"):text.index("**Why SASRec's number dropped.**")]
    pmixer = {r["config"]["loss"]: r for r in runs if r.get("config", {}).get("maxlen") == 200}
    ce, bce = pmixer["ce"], pmixer["bce"]
    # the same configuration but the loss (and BCE's one negative)
    same = ("maxlen", "d_model", "n_heads", "n_blocks", "dropout", "lr", "batch_size", "epochs", "patience",
            "min_epochs", "max_train_seconds", "model_args", "seed", "tie_seed", "amp")
    assert all(ce["config"][k] == bce["config"][k] for k in same)
    assert f"`{ce['label'].split(',')[0]},maxlen=200`" in share
    assert f"{ce['test']['full']['ndcg@10']:.4f} test full NDCG@10 against BCE's {bce['test']['full']['ndcg@10']:.4f}" in share

    def paired(a, b):
        ra, rb = (torch.tensor(r["test_ranks"]["full"]) for r in (a, b))
        assert ra.shape == rb.shape == (ce["split"]["n_users"],)
        d = paired_bootstrap(ra, rb, 10, N_BOOT, BOOT_SEED)["ndcg@10"]
        return d, f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"

    d, shown = paired(ce, bce)
    assert f"CE minus BCE is {shown}: not resolved on {ce['split']['n_users']} users" in share
    assert d["lo"] < 0 < d["hi"]
    # cut by its time budget while still improving: a lower bound
    assert stopped_by_time(ce) and ce["config"]["max_train_seconds"] == 2400 and "time budget (2,400 s)" in share
    assert f"after epoch {ce['epochs']} ({ce['seconds_per_epoch']:.1f} s/epoch against" in share
    assert f"the BCE run's {bce['seconds_per_epoch']:.1f} on the shared machine" in share
    assert f"its best validation at epoch {ce['best_epoch']} and still improving" in share
    assert ce["epochs"] - ce["best_epoch"] < 5 and "lower bound" in share
    # the rest: the course's pick (seed 0) minus the CE row
    pick = best_per_family(runs)["sasrec"]
    assert pick["label"] == "sasrec:lr=0.001,dropout=0.2" and pick["config"]["maxlen"] == 50
    assert (pick["config"]["d_model"], pick["config"]["batch_size"]) == (64, 32)
    total, _ = paired(pick, bce)
    assert f"(0.0606 on seed 0, {total['diff']:+.4f} over BCE)" in share
    assert f"{pick['test']['full']['ndcg@10']:.4f}" == "0.0606"
    rest, shown = paired(pick, ce)
    assert f"the pick minus the CE row is {shown}, resolved" in share and (rest["lo"] > 0 or rest["hi"] < 0)
    assert "maxlen 50, width 64, batch 32" in share
