"""benchmarks/serving_cost.py: pure table functions and every measurement at toy size."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
spec = importlib.util.spec_from_file_location("bench_serving_cost", BENCH / "serving_cost.py")
sc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sc)


def test_recall_at_k():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert sc.recall_at_k(truth, truth) == 1.0
    assert sc.recall_at_k(truth[:, ::-1], truth) == 1.0  # order does not matter
    assert sc.recall_at_k(np.array([[3, 9, -1], [7, 8, 9]]), truth) == pytest.approx(1 / 6)
    assert sc.recall_at_k(np.array([[-1, -1, -1], [6, 6, 6]]), truth) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match=r"must both be \(queries, k\)"):
        sc.recall_at_k(truth[:, :2], truth)


def test_splice_inserts_then_replaces_in_place():
    doc = "# Benchmarks\n\ntable\n"
    once = sc.splice(doc, "## Serving cost\nv1 \\1 $0")  # backslashes stay literal
    assert once == f"# Benchmarks\n\ntable\n\n{sc.START}\n## Serving cost\nv1 \\1 $0\n{sc.END}\n"
    twice = sc.splice(once + "\n## After\n", "## Serving cost\nv2")
    assert twice.count(sc.START) == 1 and "v1" not in twice and "v2" in twice
    assert twice.startswith(doc) and twice.endswith("\n## After\n")
    assert sc.splice(twice, "## Serving cost\nv2") == twice  # idempotent


def test_synthetic_catalogue_is_seeded_float32():
    items, q = sc.synthetic_catalogue(1000, 8, 5, seed=3, clusters=10)
    assert items.shape == (1000, 8) and q.shape == (5, 8)
    assert items.dtype == q.dtype == np.float32
    again, _ = sc.synthetic_catalogue(1000, 8, 5, seed=3, clusters=10)
    assert np.array_equal(items, again)


@pytest.fixture(scope="module")
def tiny_run():
    from recattn_lessons.data import interactions_from_frame
    from recattn_lessons.train import TrainConfig, run

    g = torch.Generator().manual_seed(0)
    rows = [(u, int(torch.randint(1, 41, (1,), generator=g)), t)
            for u in range(30) for t in range(12)]
    data = interactions_from_frame(pd.DataFrame(rows, columns=["userId", "movieId", "timestamp"]))
    cfg = TrainConfig(maxlen=8, d_model=16, batch_size=16, epochs=1, min_epochs=1, progress=False,
                      device="cpu", eval_batch_size=32, n_sampled=10)
    result = run(cfg, data=data)
    return result.model.eval(), result.split


def test_every_measurement_at_toy_size_and_the_markdown(tiny_run, tmp_path):
    torch.set_num_threads(1)
    model, split = tiny_run
    cand = sc.candidate_cost(40, 8, 16, [10, 40], repeats=1, seed=0)
    assert [r["candidates"] for r in cand["rows"]] == [10, 40]
    assert all(r["din_mlp_ms"] > 0 and r["sasrec_ms"] > 0 for r in cand["rows"])
    kv = sc.kv_cache_cost(40, [6, 20], 16, appends=3, repeats=1, seed=0)
    assert [r["length"] for r in kv] == [6, 20]
    assert all(r["same_top10"] and r["cached"] and r["max_score_diff"] < 1e-4 for r in kv)
    items, queries = sc.synthetic_catalogue(2000, 16, 20, seed=0, clusters=20)
    ann = sc.ann_cost(items, queries, repeats=1, ef_search=(8,), nprobe=(1, 2000 // 39))
    recall = {(m["method"], m["setting"]): m["recall@10"] for m in ann["methods"]}
    assert recall[("torch matmul + topk", "exact")] == recall[("faiss IndexFlatIP", "exact")] == 1.0
    assert recall[("faiss IndexIVFFlat", "nlist=51, nprobe=51")] == 1.0  # every list: exhaustive
    assert 0 <= recall[("faiss IndexIVFFlat", "nlist=51, nprobe=1")] <= 1
    quant = sc.quantization_cost(model, split, 8, repeats=1, seed=0, n_sampled=10)
    assert [q["variant"] for q in quant] == ["fp32", "bf16", "int8 dynamic (nn.Linear)"]
    assert quant[0]["ndcg_change"] == 0 and quant[0]["rank_moved"] == 0
    assert quant[0]["request_ratio"] == 1
    result = {"command": "python benchmarks/serving_cost.py --quick", "note": sc.NOTE,
              "settings": {"threads": 1, "repeats": 1}, "env": sc.environment(1),
              "candidates": cand, "kv_cache": kv, "ann": {"toy": ann}, "quantization": quant}
    text = sc.markdown(result)
    assert text.startswith("## Serving cost (lesson 07)")
    assert "| 40 | " in text and "| 20 | " in text and "nlist=51, nprobe=51 |" in text
    assert "| fp32 | " in text and "+0.0000 | " in text and text.count("### ") == 4
    out, md = tmp_path / "r.json", tmp_path / "B.md"
    out.write_text(json.dumps(result))
    md.write_text("# Benchmarks\n")
    sc.main(["--render-only", "--out", str(out), "--markdown", str(md)])
    assert md.read_text() == sc.splice("# Benchmarks\n", text)


def kv_row(length, speedup, forward_speedup, append_top_ms=1.0, append_ms=0.4):
    return {"length": length, "speedup": speedup, "forward_speedup": forward_speedup,
            "append_top_ms": append_top_ms, "append_ms": append_ms}


def test_kv_goal_states_the_shortfall_from_the_numbers():
    rows = [kv_row(50, 1.3, 1.8), kv_row(200, 2.1957, 3.406, 0.877, 0.349), kv_row(1000, 10.66, 26.4)]
    from serving_cost_report import kv_goal

    text = kv_goal(rows, 9066)
    assert "at least 3x faster than recompute + top-10 at L = 200" in text
    assert "**Not met**: measured 2.2x" in text and "3.41x" in text and "at L = 1,000: 10.7x" in text
    assert "all 9,066 movies" in text and "cache cannot remove" in text
    assert "0.528 ms, 60% of the cached request" in text
    met = kv_goal([kv_row(200, 3.5, 5.0)], 9066)
    assert "Met: measured 3.5x" in met and "Not met" not in met and "L = 1,000" not in met
    assert "Not measured in this run" in kv_goal([kv_row(50, 1.3, 1.8)], 9066)


def test_committed_serving_result_renders_its_shortfall():
    result = json.loads((BENCH / "results" / "serving-cost-cpu.json").read_text())
    text = sc.markdown(result)
    (row,) = [x for x in result["kv_cache"] if x["length"] == 200]
    assert row["speedup"] < 3
    assert f"**Not met**: measured {row['speedup']:.2g}x" in text and "all 9,066 movies" in text
    assert text.index("**Issue 9's target**") < text.index("### Exact vs approximate")
