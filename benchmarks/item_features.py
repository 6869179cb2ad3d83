"""Lesson 09's cold-item benchmark: SASRec with and without item side information (issue 11).

Usage::

    # one training process at a time, one thread (a shared 2-core machine)
    OMP_NUM_THREADS=1 python benchmarks/item_features.py run --variants id sum concat cross --seeds 0
    python benchmarks/item_features.py render      # the markdown table from the files

Four variants of the benchmark's SASRec (``sasrec:lr=0.001,dropout=0.2`` of BENCHMARKS.md:
``TrainConfig`` defaults with lr 1e-3, dropout 0.2, an epoch cap of 100, ``amp="off"``, the
CPU): ``id`` (ids only, the benchmark model itself), and ``sum``, ``concat``, ``cross``: the
id embedding fused with the item's genre and title-word tokens
(``item_features=("genres", "title")``, :mod:`recattn_lessons.models.item_encoder`).

Every run is reported on the test stage with the full-ranking protocol
(:func:`recattn_lessons.metrics.ranks_full`: the target among all items except the user's
other history items) on **all** users and on the **cold-target users**: those whose test
item is a cold item, one with at most 3 interactions in ``split.train``
(:func:`recattn_lessons.data.item_features.cold_items`; the validation item is not trained
on, so it does not count). Raw files, per-user ranks included:
``benchmarks/results/lesson09/item_features-<variant>-seed<s>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "lesson09"
sys.path.insert(0, str(Path(__file__).resolve().parent))

__all__ = ["VARIANTS", "COLD_MAX", "config_for", "run_one", "load_results", "cold_median_rank", "render_table",
           "main"]

VARIANTS = ("id", "sum", "concat", "cross")
COLD_MAX = 3  # a cold item has at most this many training interactions
# the benchmark's SASRec (benchmarks/results/movielens-cpu-seeds.json, seed 2's config)
BASE = dict(model="sasrec", dataset="movielens", device="cpu", epochs=100, lr=0.001, dropout=0.2,
            amp="off", progress=False)


def config_for(variant: str, seed: int, **changes):
    """The ``TrainConfig`` of one run."""
    from recattn_lessons.train import TrainConfig

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    feats = {} if variant == "id" else dict(item_features=("genres", "title"), fusion=variant)
    return TrainConfig(**{**BASE, "seed": seed, **feats, **changes})


def run_one(variant: str, seed: int, data=None, **changes) -> dict:
    """Train one variant and return its row (also what is written to disk)."""
    from recattn_lessons import metrics
    from recattn_lessons.data.item_features import cold_items
    from recattn_lessons.train import run
    from recattn_lessons.train.evaluate import eval_negatives, evaluate_ranks

    cfg = config_for(variant, seed, **changes)
    t0 = time.perf_counter()
    result = run(cfg, data=data)
    split = result.split
    ranks = evaluate_ranks(result.model, split, "test", cfg.maxlen,
                           eval_negatives(split, "test", cfg.seed, cfg.n_sampled),
                           cfg.eval_batch_size, result.model.item_emb.weight.device)["full"]  # (U,)
    cold = cold_items(split.train, split.n_items, COLD_MAX)[split.test_target]  # (U,) bool
    m = result.metrics
    return {
        "variant": variant, "seed": seed, "cold_max_train_interactions": COLD_MAX,
        "n_users": split.n_users, "n_cold_users": int(cold.sum()),
        "test_all": metrics.summarize(ranks, 10),
        "test_cold": metrics.summarize(ranks[cold], 10) if cold.any() else None,
        "test_warm": metrics.summarize(ranks[~cold], 10),
        "valid": m["valid"]["full"], "epochs": m["epochs"], "best_epoch": m["best_epoch"],
        "valid_ndcg_curve": [round(e["valid"]["full"]["ndcg@10"], 5) for e in result.history],
        "train_seconds": m["train_seconds"], "wall_seconds": round(time.perf_counter() - t0, 1),
        "n_parameters": sum(p.numel() for p in result.model.parameters()),
        "config": m["config"], "test_ranks": ranks.tolist(), "cold_users": cold.nonzero().flatten().tolist(),
    }


def path_of(variant: str, seed: int, out: Path = OUT) -> Path:
    return out / f"item_features-{variant}-seed{seed}.json"


def load_results(out: Path = OUT) -> list[dict]:
    """Every ``item_features-*.json`` row in ``out``."""
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("item_features-*-seed*.json"))]


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def cold_median_rank(row: dict) -> float | None:
    """Median 1-based full-ranking rank of the cold-target users' test items (None: not stored)."""
    if "test_ranks" not in row or not row.get("cold_users"):
        return None
    return statistics.median(row["test_ranks"][u] + 1 for u in row["cold_users"])


def render_table(rows: list[dict] | None = None, out: Path = OUT) -> str:
    """Markdown table, one line per variant: mean ± sample std over seeds of test
    NDCG@10 and HR@10 (full ranking) on all users and on the cold-target users, and
    the cold targets' median rank among the ~9,000 candidates (lower is better)."""
    rows = load_results(out) if rows is None else rows
    lines = [f"| variant | seeds | NDCG@10 all | HR@10 all | NDCG@10 cold | HR@10 cold | median rank cold "
             f"| cold users (test item ≤ {COLD_MAX} train interactions) | best epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["seed"])
        if not rs:
            continue
        get = lambda part, key: [r[part][key] for r in rs if r[part] is not None]  # noqa: E731
        n_all, n_cold = {r["n_users"] for r in rs}, {r["n_cold_users"] for r in rs}
        medians = [m for m in map(cold_median_rank, rs) if m is not None]
        median = " / ".join(f"{m:.0f}" for m in medians) if medians else "n/a"
        lines.append(f"| {v} | {','.join(str(r['seed']) for r in rs)} | {_mean_sd(get('test_all', 'ndcg@10'))} "
                     f"| {_mean_sd(get('test_all', 'hr@10'))} | {_mean_sd(get('test_cold', 'ndcg@10'))} "
                     f"| {_mean_sd(get('test_cold', 'hr@10'))} | {median} "
                     f"| {'/'.join(map(str, sorted(n_cold)))} of "
                     f"{'/'.join(map(str, sorted(n_all)))} | {', '.join(str(r['best_epoch']) for r in rs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the variants, one after another")
    r.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    r.add_argument("--out", type=Path, default=OUT)
    g = sub.add_parser("render", help="print the markdown table")
    g.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.cmd == "render":
        print(render_table(out=args.out))
        return
    import torch

    from recommender import environment

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for v in args.variants:
            row = run_one(v, seed)
            row["env"] = environment("cpu")
            path_of(v, seed, args.out).write_text(json.dumps(row, indent=1) + "\n")
            print(f"{v} seed {seed}: all {row['test_all']['ndcg@10']:.4f}, cold "
                  f"{(row['test_cold'] or {}).get('ndcg@10', float('nan')):.4f} "
                  f"({row['n_cold_users']} users), {row['epochs']} epochs, {row['wall_seconds']} s",
                  flush=True)


if __name__ == "__main__":
    main()
