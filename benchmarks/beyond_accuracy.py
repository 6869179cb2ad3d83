"""Lesson 09's benchmark: the diversity claim, tested on every benchmark model (issue 11).

Usage::

    # retrain every picked benchmark run (same TrainConfig, same split), keep its test top-k
    python benchmarks/beyond_accuracy.py retrain --only sasrec gru4rec meanpool popularity --threads 1
    python benchmarks/beyond_accuracy.py retrain --only hstu din --threads 1
    python benchmarks/beyond_accuracy.py render        # the BENCHMARKS.md section from the files

BENCHMARKS.md's runs kept their numbers, not their weights. ``retrain`` reads each picked
run's recorded ``config`` (every ``TrainConfig`` field) from ``benchmarks/results/*.json``
and ``benchmarks/results/lesson08/*.json`` and trains it again with one change: the epoch
cap is the run's recorded best epoch (the epochs after it only waited out the patience;
validation still picks the best epoch within the cap). The retrained run's test NDCG@10 is
stored beside the recorded one, so the table shows whether it reproduced.

For every test user it keeps the model's full-ranking top 10 (the user's other history
items excluded, as in the benchmark) and, for the families in ``--candidates``, the top 100
with their scores (the re-ranking experiments start from those). Raw files:
``benchmarks/results/lesson09/topk-<label>-seed<s>.json`` (+ ``.npz``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "lesson09"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from recommender import environment  # noqa: E402
from recommender_report import family  # noqa: E402

# The picks of BENCHMARKS.md (validation-picked grid points) and the seeds each has there.
PICKS = {
    "popularity": ("popularity", (0, 1, 2)),
    "meanpool": ("meanpool:lr=0.003,dropout=0.2", (0, 1, 2)),
    "gru4rec": ("gru4rec:lr=0.003,dropout=0.2", (0, 1, 2)),
    "din": ("din:attention=dot,lr=0.003,dropout=0.2", (0,)),
    "sasrec": ("sasrec:lr=0.001,dropout=0.2", (0, 1, 2)),
    "hstu": ("hstu:lr=0.003,dropout=0.2", (0, 1, 2)),
}


def recorded_runs() -> dict[tuple[str, int], dict]:
    """``{(label, seed): metrics dict}`` of every benchmark run in the results files."""
    runs = {}
    for path in sorted(RESULTS.glob("movielens-cpu-*.json")) + sorted((RESULTS / "lesson08").glob("movielens-cpu-*.json")):
        for r in json.loads(path.read_text())["runs"]:
            runs[(r.get("label", r["model"]), r["seed"])] = r
    return runs


def file_stem(label: str, seed: int) -> str:
    """``topk-sasrec-lr0.001-dropout0.2-seed0`` (dots kept: never use ``Path.with_suffix`` on it)."""
    return "topk-" + label.replace(":", "-").replace("=", "").replace(",", "-") + f"-seed{seed}"


def retrain(record: dict, candidates: int, k: int = 10):
    """Train ``record``'s configuration up to its best epoch; return (row, top-candidates)."""
    import torch

    from recattn_lessons.train import TrainConfig, run
    from recattn_lessons.train.evaluate import top_k_lists

    cfg = dict(record["config"])
    best = max(1, int(record.get("best_epoch") or 1))
    if cfg["model"] != "popularity":
        cfg.update(epochs=best, min_epochs=min(cfg.get("min_epochs", 0), best), patience=best + 1)
    cfg.update(out=None, progress=False, resume=False)
    config = TrainConfig(**cfg)
    t0 = time.perf_counter()
    result = run(config)
    ids, scores, ranks = top_k_lists(result.model, result.split, "test", config.maxlen,
                                     max(k, candidates), config.eval_batch_size)
    row = {
        "label": record.get("label", record["model"]), "seed": record["seed"], "model": cfg["model"],
        "epoch_cap": cfg["epochs"], "best_epoch": result.metrics["best_epoch"],
        "recorded_test_ndcg@10": record["test"]["full"]["ndcg@10"],
        "test": result.metrics["test"], "valid": result.metrics["valid"],
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "top10": ids[:, :k].tolist(), "test_ranks_full": ranks.tolist(),
        "torch_threads": torch.get_num_threads(),
    }
    return row, (ids[:, :candidates], scores[:, :candidates])


def cmd_retrain(args) -> int:
    import numpy as np
    import torch

    from recattn_lessons.progress import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    records = recorded_runs()
    jobs = [(label, s) for name in args.only for label, seeds in [PICKS[name]] for s in seeds]
    env = environment("cpu")
    for label, seed in tqdm(jobs, desc="retrain", unit="run"):
        stem = OUT / file_stem(label, seed)
        json_path, npz_path = stem.parent / (stem.name + ".json"), stem.parent / (stem.name + ".npz")
        if json_path.exists() and not args.force:
            continue
        record = records.get((label, seed))
        if record is None:
            raise SystemExit(f"no benchmark run {label!r} seed {seed} in {RESULTS}: run it first")
        n_cand = args.n_candidates if family(label) in args.candidates else 0
        row, (ids, scores) = retrain(record, n_cand)
        row["cpu"] = env["cpu"]
        json_path.write_text(json.dumps(row) + "\n")
        if n_cand:
            np.savez_compressed(npz_path, items=ids.numpy().astype(np.int16),
                                scores=scores.numpy().astype(np.float32))
        tqdm.write(f"{label} seed {seed}: test NDCG@10 {row['test']['full']['ndcg@10']:.4f} "
                   f"(recorded {row['recorded_test_ndcg@10']:.4f}), {row['wall_seconds']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("retrain", help="retrain the picked runs and keep their test top-k")
    r.add_argument("--only", nargs="+", default=list(PICKS), choices=list(PICKS))
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--candidates", nargs="*", default=["sasrec"], help="families whose top-N (+scores) are kept")
    r.add_argument("--n-candidates", type=int, default=100)
    r.add_argument("--force", action="store_true", help="redo runs whose file exists")
    sub.add_parser("render", help="rebuild the BENCHMARKS.md section")
    args = p.parse_args(argv)
    if args.cmd == "retrain":
        return cmd_retrain(args)
    from beyond_accuracy_report import write_section  # noqa: E402  (pure tables, tested)

    write_section(ROOT / "BENCHMARKS.md", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
