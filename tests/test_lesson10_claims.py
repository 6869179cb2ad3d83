"""Every verdict lesson 10 writes in prose, checked against the committed benchmark files
(benchmarks/results/lesson10/, lesson09/ for SASRec and popularity). Re-running the
benchmark with other results fails here, and the lesson's prose must change with it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
import semantic_ids_report as rep  # noqa: E402

GENRET = ("genret-random", "genret-lsh", "genret-rq")


@pytest.fixture(scope="module")
def runs():
    return rep.load_runs(RESULTS / "lesson10", RESULTS / "lesson09")


@pytest.fixture(scope="module")
def rows(runs):
    return {r["method"]: r for r in rep.comparison_rows(runs, 0.0)}


def test_every_method_has_three_seeds_on_the_same_users(runs, rows):
    assert set(rows) == set(rep.NAMES)
    for m, r in rows.items():
        assert r["seeds"] == [0, 1, 2], m
    users = {len(row["test_ranks_full"]) for row in runs.values()}
    assert users == {671}


def test_generative_retrieval_loses_to_sasrec_on_every_seed(rows):
    for m in GENRET:
        assert all(ci["hi"] < 0 for ci in rows[m]["vs_baseline"]["per_seed"]), m
    rq, sasrec = rows["genret-rq"]["ndcg@10"][0], rows["sasrec"]["ndcg@10"][0]
    assert 0.3 < rq / sasrec < 0.6  # "about half of SASRec's NDCG@10"


def test_rq_ids_sit_above_popularity_and_random_or_lsh_below(rows):
    pop = rows["popularity"]["ndcg@10"][0]
    assert rows["genret-rq"]["ndcg@10"][0] > pop
    assert rows["genret-random"]["ndcg@10"][0] < pop and rows["genret-lsh"]["ndcg@10"][0] < pop


def test_rq_ids_beat_random_ids_and_lsh_ids_do_not(runs):
    vs = {r["method"]: r["vs_baseline"]["pooled"] for r in rep.comparison_rows(runs, 0.0, baseline="genret-random")
          if "vs_baseline" in r}
    assert vs["genret-rq"]["lo"] > 0
    assert vs["genret-lsh"]["lo"] < 0 < vs["genret-lsh"]["hi"]


def test_the_text_embedding_does_not_help_sasrec(runs, rows):
    p = rows["sasrec-text"]["vs_baseline"]["pooled"]
    assert p["lo"] < 0 < p["hi"]
    sides = [rep._side(c) for c in rows["sasrec-text"]["vs_baseline"]["per_seed"]]
    assert sides.count("better") == 0 and sides.count("worse") == 1  # "one seed of three is worse"
    cold = {r["method"]: r for r in rep.comparison_rows(runs, 0.05)}
    p = cold["sasrec-text"]["vs_baseline"]["pooled"]
    assert p["lo"] < 0 < p["hi"]


def test_cold_items_reach_no_user_and_only_rq_ids_show_them(runs):
    cold = {r["method"]: r for r in rep.cold_rows(runs, 0.05)}
    assert set(cold) == {"sasrec", "sasrec-text", "genret-random", "genret-rq"}
    for m, r in cold.items():
        assert r["seeds"] == [0, 1, 2] and r["cold_ndcg@10"] == (0.0, 0.0), m
        assert r["cold_mrr"][0] < 0.001, m  # near the bottom of 9,066
        shown = r["distinct_cold_items_shown"][0]
        assert (shown > 0) == (m == "genret-rq"), m


def test_id_diagnostics_the_lesson_quotes():
    ids = json.loads((RESULTS / "lesson10" / "ids.json").read_text())
    d = {(r["method"], r["text"]): r["diagnostics"] for r in ids["methods"]}
    rq = d[("rq-kmeans", "e5")]
    assert rq["usage"] == [1.0, 1.0, 1.0] and 0.85 < rq["unique_share"] < 0.95  # "one film in ten"
    assert d[("random", "none")]["unique_share"] > rq["unique_share"] < d[("lsh", "e5")]["unique_share"]
    assert d[("rq-kmeans", "tfidf")]["largest_group"] > 50 * rq["largest_group"]  # exercise 4
    collapse = {(r["quantizer"], r["init"], r["reset_dead"]): r["usage"] for r in ids["collapse"]}
    assert collapse[("rqvae", "random x10", False)] == [1 / 256] * 3  # one code per level
    for key, usage in collapse.items():
        if key != ("rqvae", "random x10", False):
            assert usage[0] > 0.85 and min(usage[1:]) > 0.95, key  # "above 85% ... nearly 100% below"
        if key[0] == "rq-kmeans":
            assert usage == [1.0, 1.0, 1.0], key  # "RQ-k-means never collapsed"


def test_decoding_cost_and_invalid_ids_the_lesson_quotes():
    dec = json.loads((RESULTS / "lesson10" / "decode.json").read_text())
    base = dec["rows"][0]["ms_per_user"]
    beams = {r["name"]: r for r in dec["rows"]}
    assert beams["generative retrieval, beam 10, trie-constrained"]["ms_per_user"] > 30 * base
    assert beams["generative retrieval, beam 50, trie-constrained"]["ms_per_user"] > 300 * base
    assert beams["generative retrieval, beam 20, with the trie"]["invalid_share"] == 0.0
    assert 0.05 < beams["generative retrieval, beam 20, without the trie"]["invalid_share"] < 0.3
