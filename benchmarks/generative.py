"""Lesson 08's benchmark: HSTU against SASRec and GRU4Rec, and scaling (issue 10).

Usage::

    # the comparison: HSTU gets the grid every model got (lr 1e-3 / 3e-3 at dropout 0.2,
    # seed 0, picked on validation), then seeds 1 and 2 at its pick
    python benchmarks/recommender.py --models hstu:lr=0.001,dropout=0.2 hstu:lr=0.003,dropout=0.2 \\
        --seeds 0 --threads 1 --set epochs=100 'amp="off"' --results benchmarks/results/lesson08 \\
        --markdown /tmp/ignored.md --tag hstu-grid
    # scaling: model size (d_model x blocks) and training-data share, one seed
    python benchmarks/generative.py scaling --models sasrec hstu --threads 1   # ~1 h on 2 cores
    python benchmarks/generative.py render          # the BENCHMARKS.md section from the JSON

The comparison reads SASRec, GRU4Rec and popularity from the recommender
benchmark's files (``benchmarks/results/movielens-cpu-*.json``) and HSTU from
``benchmarks/results/lesson08/``, so every row has the same split, epoch cap,
early stopping and tuning grid. Scaling runs use the command line's defaults
(lr 3e-3, dropout 0.2, early stopping on validation) in fp32 and change one
thing each: ``d_model`` and ``n_blocks``, or ``train_fraction`` (the share of
users whose windows are trained on; every user is still evaluated).
Raw results: ``benchmarks/results/lesson08/scaling-<device>[-TAG].json``.
Lesson 08 plots them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from recommender import environment, run_all  # noqa: E402  (one training path for all benchmarks)
from recommender_report import (  # noqa: E402
    aggregate, best_per_family, budget_table, family, load_results, paired_table, render_table,
)
from sections import markers, splice  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LESSON08 = RESULTS / "lesson08"
START, END = markers("generative")
SIZES = ((16, 2), (32, 2), (128, 2))  # (d_model, n_blocks); (64, 2) is the comparison's run
FRACTIONS = (0.25, 0.5)  # plus 1.0: the comparison's run
BASE = "{model}:lr=0.003,dropout=0.2"  # the comparison's seed-0 run at the defaults: (64, 2), all users
COMPARED = ("sasrec", "gru4rec", "popularity", "hstu")  # families of the comparison
# facebookresearch/generative-recommenders README (verified 04/15/2024): ML-1M, full ranking
# over all items, sampled-softmax training; another dataset and protocol than ours
PUBLISHED_ML1M = {"SASRec (sampled softmax)": (0.2853, 0.1603), "HSTU": (0.3097, 0.1720),
                  "HSTU-large": (0.3294, 0.1893)}
__all__ = ["SIZES", "FRACTIONS", "scaling_specs", "parameter_counts", "scaling_rows",
           "comparison_runs", "with_base_points", "load_scaling", "render_section", "main"]


def scaling_specs(model: str, sizes=SIZES, fractions=FRACTIONS) -> list[str]:
    """Benchmark labels: one per size, one per smaller training share (at d_model 64, 2 blocks).

    The point (64, 2) on all users is not re-run: it is the comparison's run at
    the same settings (:func:`with_base_points`)."""
    specs = [f"{model}:d_model={d},n_blocks={b}" for d, b in sizes]
    specs += [f"{model}:d_model=64,n_blocks=2,train_fraction={f}" for f in fractions if f < 1.0]
    return specs


def parameter_counts(model: str, n_items: int, d_model: int, n_blocks: int) -> tuple[int, int]:
    """``(total, non-embedding)`` parameters; the item table is ``(n_items + 1) x d_model``."""
    from recattn_lessons import models

    m = models.build(model, n_items, d_model=d_model, n_blocks=n_blocks)
    total = sum(p.numel() for p in m.parameters())
    return total, total - m.item_emb.weight.numel()


def with_base_points(scaling: dict | None, compared: list[dict]) -> dict | None:
    """The scaling runs plus each model's comparison run at the defaults (seed 0)."""
    if not scaling:
        return None
    models = {r["model"] for r in scaling["runs"]}
    base = [r for r in compared if r["seed"] == 0 and r["model"] in models
            and r.get("label") == BASE.format(model=r["model"])]
    return {**scaling, "runs": scaling["runs"] + base}


def scaling_rows(runs: list[dict], n_items: int) -> list[dict]:
    """One row per run: its size, share of training users, parameters and numbers."""
    rows = []
    for r in runs:
        c = r["config"]
        total, body = parameter_counts(r["model"], n_items, c["d_model"], c["n_blocks"])
        rows.append({"model": r["model"], "d_model": c["d_model"], "n_blocks": c["n_blocks"],
                     "train_fraction": c.get("train_fraction", 1.0), "seed": r["seed"],
                     "params": total, "non_embedding_params": body,
                     "valid_ndcg@10": r["valid"]["full"]["ndcg@10"],
                     "test_ndcg@10": r["test"]["full"]["ndcg@10"], "test_hr@10": r["test"]["full"]["hr@10"],
                     "epochs": r["epochs"], "best_epoch": r["best_epoch"], "train_seconds": r["train_seconds"]})
    return sorted(rows, key=lambda x: (x["model"], -x["train_fraction"], x["n_blocks"], x["d_model"]))


def comparison_runs(results: Path = RESULTS, lesson08: Path = LESSON08) -> tuple[list[dict], dict]:
    """SASRec, GRU4Rec and popularity from the recommender benchmark; HSTU from lesson 08's files."""
    base = load_results(results).get(("movielens", "cpu"), {"runs": [], "env": {}})
    mine = load_results(lesson08).get(("movielens", "cpu"), {"runs": [], "env": {}})
    runs = [r for r in base["runs"] + mine["runs"] if family(r.get("label", r["model"])) in COMPARED]
    return runs, mine["env"] or base["env"]


def _published() -> str:
    lines = ["| published, **ML-1M** (not this data) | HR@10 | NDCG@10 |", "|---|---|---|"]
    lines += [f"| {k} | {hr:.4f} | {nd:.4f} |" for k, (hr, nd) in PUBLISHED_ML1M.items()]
    return "\n".join(lines)


def _scaling_table(rows: list[dict]) -> str:
    lines = ["| model | d_model | blocks | train users | parameters (non-embedding) | valid NDCG@10 "
             "| test NDCG@10 | test HR@10 | epochs (best) | train s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['d_model']} | {r['n_blocks']} | {r['train_fraction']:.3g} "
                     f"| {r['params']:,} ({r['non_embedding_params']:,}) | {r['valid_ndcg@10']:.4f} "
                     f"| {r['test_ndcg@10']:.4f} | {r['test_hr@10']:.3f} | {r['epochs']} ({r['best_epoch']}) "
                     f"| {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def render_section(runs: list[dict], env: dict, scaling: dict | None, n_items: int) -> str:
    """The ``generative`` section of BENCHMARKS.md, markers included."""
    out = [START, "## Generative recommenders: HSTU against SASRec and GRU4Rec (lesson 08)", "",
           "Generated by `python benchmarks/generative.py render` (see its docstring for the runs). "
           "SASRec, GRU4Rec and popularity are the recommender benchmark's runs above; HSTU ran with "
           "the same split, epoch cap (100), early stopping (patience 5, at least 10 epochs), "
           "full-softmax loss and tuning grid (lr 1e-3 / 3e-3 at dropout 0.2, picked on seed-0 "
           "validation), in fp32 (`amp=off`) on one torch thread.", ""]
    if runs:
        table = render_table(aggregate(runs), env)
        table = re.sub(r" Not measured in this file: [^.]*\.", "", table)
        out += [table, "### Equal tuning budget (validation, seed 0)", "", budget_table(runs),
                "### Paired differences on the same test users (seed 0)", "", paired_table(runs)]
        picks = best_per_family(runs)
        if "hstu" in picks:
            out += [f"HSTU's pick: `{picks['hstu'].get('label')}`."]
    out += ["", "Context only: the HSTU repository's ML-1M table (6,040 users, 3,416 items, "
            "sampled-softmax training with 128 negatives, maxlen 200). Another dataset, so these "
            "numbers are not comparable with the rows above.", "", _published(), ""]
    if scaling and scaling.get("runs"):
        e = scaling["env"]
        out += ["### Scaling: model size and training data (one seed)", "",
                "Each run changes one thing from the command-line defaults (d_model 64, 2 blocks, "
                "lr 3e-3, dropout 0.2, early stopping on validation NDCG@10, epoch cap 100, fp32): "
                "`d_model`, or the share of users whose windows are trained on (`train_fraction`; "
                "every user is still evaluated). The (64, 2, all users) point is the comparison's "
                "seed-0 run at lr 3e-3. One seed: differences below about 0.01 are within "
                "seed noise. The runs shared the machine with other jobs: `train s` is not a "
                f"cost measurement. Device {e.get('device')} ({e.get('cpu')}), {e.get('torch_threads')} torch "
                f"threads, torch {e.get('torch')}, {e.get('date_utc')} UTC.", "",
                _scaling_table(scaling_rows(scaling["runs"], n_items)), ""]
    out.append(END)
    return "\n".join(out) + "\n"


def load_scaling(folder: Path = LESSON08, device: str = "cpu") -> dict | None:
    """Every ``scaling-<device>*.json`` merged (parallel jobs write one file each)."""
    blobs = [json.loads(f.read_text()) for f in sorted(folder.glob(f"scaling-{device}*.json"))]
    if not blobs:
        return None
    return {"kind": "scaling", "env": blobs[0]["env"], "runs": [r for b in blobs for r in b["runs"]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("part", choices=["scaling", "render"])
    p.add_argument("--models", nargs="+", default=["sasrec", "hstu"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", nargs="*", default=None, help="run only these labels (of scaling_specs)")
    p.add_argument("--tag", default=None, help="results file suffix for parallel jobs")
    p.add_argument("--results", type=Path, default=LESSON08)
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.part == "scaling":
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        specs = [s for m in args.models for s in scaling_specs(m)]
        if args.only is not None:
            specs = [s for s in specs if s in args.only]
        path = args.results / f"scaling-{args.device}{'-' + args.tag if args.tag else ''}.json"
        blob = {"kind": "scaling", "env": environment(args.device), "runs": []}

        def save(runs: list[dict]) -> None:  # after every run: partial results survive
            blob["runs"] = [{k: v for k, v in r.items() if k != "test_ranks"} for r in runs]
            args.results.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(blob, indent=1) + "\n")

        run_all(specs, args.seeds, args.device, "movielens", {"epochs": 100, "amp": "off"}, None, save)
    from recattn_lessons.data.movielens import load_movielens

    runs, env = comparison_runs(RESULTS, args.results)
    scaling = with_base_points(load_scaling(args.results, args.device), runs)
    section = render_section(runs, env, scaling, load_movielens().n_items)
    md = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
    args.markdown.write_text(splice(md, section), encoding="utf-8")
    print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
