"""Lesson 09's feedback benchmark: dislikes as a signal, and the feedback loop (issue 11, part 4).

Usage::

    # (a) the three readings of a <= 2-star rating, SASRec's benchmark config, per seed
    python benchmarks/feedback.py dislikes --seeds 0 1 2 --threads 1
    # (b) the feedback-loop simulation, exploration 0 and 0.1
    python benchmarks/feedback.py loop --threads 1
    python benchmarks/feedback.py render     # both markdown tables from the files

(a) trains ``positive`` / ``dropped`` / ``dislike``
(:func:`recattn_lessons.train.feedback.run_variant`) with the recorded ``config`` of the
``sasrec:lr=0.001,dropout=0.2`` runs in ``benchmarks/results/movielens-cpu-grid-sasrec.json``
(only the seed changes) and ranks every variant on the same targets and candidates.
(b) runs :func:`recattn_lessons.simulation.feedback_loop.simulate`. Raw files:
``benchmarks/results/lesson09/feedback-dislikes-<variant>-seed<s>.json`` and
``feedback-loop-eps<eps>-seed<s>.json``; :func:`render` turns them into the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "lesson09"
LABEL = "sasrec:lr=0.001,dropout=0.2"
VARIANT_NAMES = {"positive": "as positive (today)", "dropped": "dislikes dropped",
                 "dislike": "dislike embedding"}


def benchmark_config(seed: int):
    """The recorded ``TrainConfig`` of ``LABEL`` (seed 0's), with ``seed`` and no bars."""
    from recattn_lessons.train.config import TrainConfig
    runs = json.loads((RESULTS / "movielens-cpu-grid-sasrec.json").read_text())["runs"]
    record = next(r for r in runs if r.get("label") == LABEL)
    return TrainConfig(**{**record["config"], "seed": seed, "progress": False})


def cmd_dislikes(args) -> int:
    from recattn_lessons.train.feedback import run_variant
    OUT.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for variant in args.variants:
            path = OUT / f"feedback-dislikes-{variant}-seed{seed}.json"
            if path.exists() and not args.force:
                print(f"skip {path.name} (exists; --force to redo)")
                continue
            t0 = time.perf_counter()
            out = run_variant(benchmark_config(seed), variant)
            out.update(label=LABEL, seed=seed, seconds=round(time.perf_counter() - t0, 1))
            path.write_text(json.dumps(out, indent=2) + "\n")
            print(f"{variant} seed {seed}: test NDCG@10 {out['test']['ndcg@10']:.4f} "
                  f"(best epoch {out['loop']['best_epoch']}, {out['seconds']:.0f} s)", flush=True)
    return 0


def cmd_loop(args) -> int:
    from dataclasses import replace
    from recattn_lessons.simulation.feedback_loop import LoopConfig, compare
    OUT.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        rounds = {} if args.rounds is None else {"rounds": args.rounds}
        cfg = (LoopConfig.quick if args.quick else LoopConfig)(seed=seed, **rounds)
        t0 = time.perf_counter()
        runs = compare(cfg, tuple(args.eps))  # one ground truth for every eps
        for eps, records in runs.items():
            out = {"config": replace(cfg, explore=eps).to_dict(), "rounds": records,
                   "seconds_all": round(time.perf_counter() - t0, 1)}
            path = OUT / f"feedback-loop{'-quick' if args.quick else ''}-eps{eps}-seed{seed}.json"
            path.write_text(json.dumps(out, indent=2) + "\n")
            print(f"eps {eps} seed {seed}: -> {path.name}", flush=True)
    return 0


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def dislikes_table(folder: Path = OUT) -> str:
    """Markdown: test (and validation) NDCG@10 / HR@10 per variant, mean ± std over seeds."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("feedback-dislikes-*-seed*.json")):
        r = json.loads(path.read_text())
        runs.setdefault(r["variant"], []).append(r)
    if not runs:
        return "(no feedback-dislikes-*.json files yet)"
    lines = ["| history reading | seeds | test NDCG@10 | test HR@10 | valid NDCG@10 | best epoch |",
             "|---|---|---|---|---|---|"]
    for variant in VARIANT_NAMES:
        rs = sorted(runs.get(variant, []), key=lambda r: r["seed"])
        if not rs:
            continue
        cells = [_mean_std([r[s][m] for r in rs]) for s, m in
                 (("test", "ndcg@10"), ("test", "hr@10"), ("valid", "ndcg@10"))]
        epochs = ", ".join(str(r["loop"]["best_epoch"]) for r in rs)
        seeds = ",".join(str(r["seed"]) for r in rs)
        lines.append(f"| {VARIANT_NAMES[variant]} | {seeds} | " + " | ".join(cells) + f" | {epochs} |")
    return "\n".join(lines)


LOOP_COLUMNS = (("coverage", "coverage"), ("gini", "Gini"), ("mean_popularity", "mean pop."),
                ("novelty", "novelty (bits)"), ("train_gini", "training-data Gini"),
                ("accept_rate", "accept rate"))


def loop_table(folder: Path = OUT, seed: int = 0, quick: bool = False) -> str:
    """Markdown: per round, each metric at every exploration rate (``a / b``)."""
    files = sorted(folder.glob(f"feedback-loop{'-quick' if quick else ''}-eps*-seed{seed}.json"))
    if not files:
        return "(no feedback-loop-*.json files yet)"
    by_eps = {}
    for path in files:
        r = json.loads(path.read_text())
        by_eps[r["config"]["explore"]] = r["rounds"]
    eps = sorted(by_eps)
    head = " / ".join(f"ε={e:g}" for e in eps)
    lines = ["| round | " + " | ".join(f"{name} ({head})" for _, name in LOOP_COLUMNS) + " |",
             "|---" * (len(LOOP_COLUMNS) + 1) + "|"]
    for i in range(min(len(v) for v in by_eps.values())):
        cells = [" / ".join(_fmt(by_eps[e][i][key]) for e in eps) for key, _ in LOOP_COLUMNS]
        lines.append(f"| {by_eps[eps[0]][i]['round']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3f}"


def render(folder: Path = OUT, quick: bool = False) -> str:
    """Both tables, (a) then (b), as one markdown string."""
    return ("**Dislikes as a signal** (full ranking, same targets and candidates)\n\n"
            + dislikes_table(folder) + "\n\n**Feedback loop** (per round; coverage, Gini, "
            "popularity and novelty of the shown lists)\n\n" + loop_table(folder, quick=quick))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("dislikes", help="(a) positive / dropped / dislike, per seed")
    a.add_argument("--seeds", type=int, nargs="+", default=[0])
    a.add_argument("--variants", nargs="+", default=list(VARIANT_NAMES), choices=list(VARIANT_NAMES))
    a.add_argument("--force", action="store_true", help="redo runs whose file exists")
    b = sub.add_parser("loop", help="(b) the feedback-loop simulation")
    b.add_argument("--seeds", type=int, nargs="+", default=[0])
    b.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.1])
    b.add_argument("--rounds", type=int, default=None, help="default: LoopConfig's (8; quick 6)")
    b.add_argument("--quick", action="store_true", help="LoopConfig.quick (the lesson's size)")
    sub.add_parser("render", help="print both markdown tables")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    if args.cmd == "render":
        print(render())
        return 0
    return {"dislikes": cmd_dislikes, "loop": cmd_loop}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
