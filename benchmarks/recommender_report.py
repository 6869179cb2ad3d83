"""Tables of benchmarks/recommender.py, rendered from the JSON results (issue 12).

Pure functions over the runs' ``metrics.json`` dicts (plus ``test_ranks``,
the per-user test ranks the benchmark stores for the bootstrap):

- :func:`aggregate` / :func:`render_table`: one row per configuration, with
  the first seed's point estimate and its 95% percentile-bootstrap interval
  over users for full HR@10, NDCG@10 and MRR and sampled HR@10 and NDCG@10;
- :func:`budget_table`: the equal tuning budget, every grid point of every
  model on **validation**, the one picked, and its test numbers;
- :func:`paired_table`: differences between the picked models (same users,
  same redraws) with their intervals: "does attention help?";
- :func:`family_paired_table`: the same for every pick of one model minus
  another's (DIN minus mean pooling, lesson 05).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from recattn_lessons.metrics import bootstrap_ci, paired_bootstrap

MODELS = ("sasrec", "gru4rec", "meanpool", "din", "popularity")
METRICS = ("hr@10", "ndcg@10", "mrr")
SETTINGS = ("epochs", "patience", "min_epochs", "lr", "dropout", "d_model", "maxlen", "batch_size", "amp",
            "loss", "max_train_seconds", "tie_seed")
TUNED = ("lr", "dropout")  # the grid; everything else is fixed per model
N_BOOT, BOOT_SEED = 1000, 0

# pmixer/SASRec.pytorch, measured in issue 4 on the OLD split (ties in file
# order, which leaks) with its defaults: maxlen 200, 50 dims, 2 blocks, BCE.
# Best at its epoch 240 of 1.84 s: about 440 s (issue 4 said 330 s: wrong).
# Its epoch is one window per user, ours every training transition: the
# table shows its train time but not its s/epoch (another unit).
REFERENCE = {
    "label": "pmixer/SASRec.pytorch (defaults, BCE; old file-order split)",
    "full": {"hr@10": 0.088, "ndcg@10": 0.0456},
    "sampled100": {"hr@10": 0.716, "ndcg@10": 0.484},
    "train_seconds": 440.0,
    "seconds_per_epoch": 1.84,
}
# Published anchors on ML-1M (not the same data: context, not a target).
ANCHORS = [
    ("SASRec paper (Kang & McAuley 2018), ML-1M", "sampled100", {"hr@10": 0.8245, "ndcg@10": 0.5905}),
    ("Klenitskiy & Vasilev 2023, SASRec BCE, ML-1M", "full", {"ndcg@10": 0.134}),
    ("Klenitskiy & Vasilev 2023, SASRec+ (cross-entropy), ML-1M", "full", {"ndcg@10": "≈ 0.18"}),
]


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def stopped_by_time(run: dict) -> bool:
    """True if the run ended on its time budget (``max_train_seconds``), not by early stopping."""
    if run.get("stopped_by_deadline"):
        return True
    limit = run.get("config", {}).get("max_train_seconds")
    return limit is not None and float(run.get("train_seconds", 0)) >= float(limit)


RECENT_EPOCHS = 5  # the default patience: a best epoch this close to the cap may not be the last


def hit_epoch_cap(run: dict) -> bool:
    """True if the run used every allowed epoch while still improving recently.

    "Recently" is the last ``min(patience, 5)`` epochs: a fixed-length run
    (patience >= epochs) whose best epoch lies far before the cap was not
    bound by the cap, although early stopping never ended it.
    """
    cfg = run.get("config", {})
    if "epochs" not in cfg or not run.get("epochs"):
        return False
    recent = min(cfg.get("patience", RECENT_EPOCHS), RECENT_EPOCHS)
    return run["epochs"] >= cfg["epochs"] and run["epochs"] - run.get("best_epoch", 0) < recent


def aggregate(runs: list[dict], stage: str = "test") -> dict[str, dict]:
    """Per label: mean/sd of every metric under both protocols, timings, markers, CIs."""
    by_model: dict[str, list[dict]] = {}
    for r in runs:
        by_model.setdefault(r.get("label", r["model"]), []).append(r)
    out = {}
    for model, rs in by_model.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        agg = {"n": len(rs), "seeds": [r["seed"] for r in rs],
               "cut": sum(stopped_by_time(r) for r in rs), "capped": sum(hit_epoch_cap(r) for r in rs)}
        for proto in ("full", "sampled100"):
            agg[proto] = {m: mean_sd([r[stage][proto][m] for r in rs]) for m in METRICS}
        for key in ("train_seconds", "seconds_per_epoch", "epochs"):
            agg[key] = mean_sd([float(r[key]) for r in rs])
        if stage == "test" and "test_ranks" in rs[0]:  # the first seed's users
            agg["ci_seed"] = rs[0]["seed"]  # "mean" of each CI is that seed's point estimate
            agg["ci"] = bootstrap_ci(torch.tensor(rs[0]["test_ranks"]["full"]), 10, N_BOOT, BOOT_SEED)
            if "sampled100" in rs[0]["test_ranks"]:
                agg["ci_sampled"] = bootstrap_ci(torch.tensor(rs[0]["test_ranks"]["sampled100"]), 10,
                                                 N_BOOT, BOOT_SEED)
        cfg = rs[0].get("config", {})
        agg["settings"] = ", ".join(f"{k}={cfg[k]}" for k in SETTINGS if k in cfg)
        if cfg.get("model_args"):
            agg["settings"] += ", " + ", ".join(f"{k}={v}" for k, v in cfg["model_args"].items())
        if "bf16" in rs[0]:
            agg["settings"] += f", bf16={rs[0]['bf16']}"
        if "split" in rs[0]:
            agg["split"] = rs[0]["split"]
        out[model] = agg
    return out


def _fmt(ms: tuple[float, float], digits: int = 4) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def _ci(a: dict, metric: str, digits: int, key: str = "ci") -> str:
    """``point [lo, hi]``: the first seed's estimate and its interval (``key``: "ci" = full,
    "ci_sampled" = sampled protocol); "–" without per-user ranks."""
    c = a.get(key, {}).get(metric)
    return f"{c['mean']:.{digits}f} [{c['lo']:.{digits}f}, {c['hi']:.{digits}f}]" if c else "–"


SHOWN = ("loss", "attention", "users")  # settings a table row names; the rest go to the settings list


def short_label(label: str) -> str:
    """A row name that fits a table: the model, its tuned and defining settings,
    and how many other settings it has (listed under the table)."""
    name, _, rest = label.partition(":")
    kvs = [kv for kv in rest.split(",") if kv]
    keep = [kv for kv in kvs if kv.split("=")[0] in TUNED + SHOWN]
    more = len(kvs) - len(keep)
    return name + (":" + ",".join(keep) if keep else "") + (f" (+{more} settings)" if more else "")


def _is_subset(label: str) -> bool:
    """A run on a user subset (``users=N``): its users are not popularity's."""
    return any(kv.split("=")[0] == "users" for kv in label.partition(":")[2].split(","))


def _order(labels):
    def key(label):
        name = label.split(":")[0]
        return (MODELS.index(name) if name in MODELS else len(MODELS), label)
    return sorted(labels, key=key)


def _seeds_word(agg: dict[str, dict]) -> str:
    first = sorted({a["ci_seed"] for a in agg.values() if "ci_seed" in a})
    return "seed " + ", ".join(map(str, first)) if first else "no per-user ranks"


def render_table(agg: dict[str, dict], env: dict) -> str:
    """One markdown table: test metrics under both protocols, 95% CIs, timings."""
    pop = agg.get("popularity", {}).get("full", {}).get("ndcg@10", (float("nan"), 0))[0]
    head = ("| model | seeds | full HR@10 | first seed [95% CI] | full NDCG@10 | first seed [95% CI] "
            "| full MRR | first seed [95% CI] | sampled HR@10 | first seed [95% CI] | sampled NDCG@10 "
            "| first seed [95% CI] | train s | s/epoch | full NDCG@10 ÷ popularity |")
    lines = [head, "|" + "---|" * 15]
    order = _order(agg)
    for model in order:
        a = agg[model]
        nd = a["full"]["ndcg@10"][0]
        name = short_label(model) + ("†" if a.get("cut") else "") + ("‡" if a.get("capped") else "")
        lines.append(
            f"| {name} | {len(a['seeds'])} | {_fmt(a['full']['hr@10'], 3)} | {_ci(a, 'hr@10', 3)} "
            f"| {_fmt(a['full']['ndcg@10'])} | {_ci(a, 'ndcg@10', 4)} "
            f"| {_fmt(a['full']['mrr'])} | {_ci(a, 'mrr', 4)} "
            f"| {_fmt(a['sampled100']['hr@10'], 3)} | {_ci(a, 'hr@10', 3, 'ci_sampled')} "
            f"| {_fmt(a['sampled100']['ndcg@10'], 3)} | {_ci(a, 'ndcg@10', 3, 'ci_sampled')} "
            f"| {a['train_seconds'][0]:.0f} ± {a['train_seconds'][1]:.0f} | {a['seconds_per_epoch'][0]:.2f} "
            f"| {'– (other users)' if _is_subset(model) else f'{nd / pop:.2f}x'} |"
        )
    r = REFERENCE
    lines.append(
        f"| *{r['label']}* | 1 | {r['full']['hr@10']:.3f} | – | {r['full']['ndcg@10']:.4f} | – | – | – "
        f"| {r['sampled100']['hr@10']:.3f} | – | {r['sampled100']['ndcg@10']:.3f} | – "
        f"| ≈ {r['train_seconds']:.0f} | – | – |"  # s/epoch: its epochs are other units
    )
    seeds = sorted({s for a in agg.values() for s in a["seeds"]})
    measured = {label.split(":")[0] for label in agg}
    missing = [m for m in MODELS if m not in measured]
    loads = env.get("loadavg_1m") or []
    cpus = env.get("cpus") or {}
    where = env.get("gpu") or (", ".join(f"{c}: seeds {s}" for c, s in cpus.items()) if len(cpus) > 1
                               else env.get("cpu", "?"))
    note = (f"Device: **{env.get('device')}** ({where}), {env.get('torch_threads')} torch threads; "
            f"torch {env.get('torch')}, Python {env.get('python')}, measured {env.get('date_utc')} UTC; "
            f"seeds {seeds}; mean ± sample standard deviation over seeds. *first seed [95% CI]*: "
            f"the first seed's point estimate ({_seeds_word(agg)} here) and its 95% percentile bootstrap "
            f"interval over that run's test users ({N_BOOT} redraws, bootstrap seed {BOOT_SEED}, the "
            f"same redraws for every row on the same users); on a row with several seeds it is that "
            f"one seed's point and interval, not an interval around the mean beside it. The pmixer "
            f"row's s/epoch is not shown: its epoch is one window per user, ours every transition.")
    split = next((a["split"] for a in agg.values() if "split" in a), None)
    if split:
        note += (f" Split: tie_seed={split['tie_seed']}; {split['n_cold_test']} of {split['n_users']} test "
                 f"targets never occur in training (cold: no model can rank them from what it learned).")
    if loads:
        note += (f" Machine load average (1 min) after the runs: {min(loads):.1f}–{max(loads):.1f}"
                 f"{' (more jobs than cores: timings are inflated)' if max(loads) > (env.get('cpu_count') or 2) else ''}.")
    if missing:
        note += f" Not measured in this file: {', '.join(missing)}."
    if any(a.get("cut") for a in agg.values()):
        note += (" † Interrupted: stopped by its time budget (`max_train_seconds`) before early stopping"
                 " ended it; numbers from its best validation epoch so far.")
    if any(a.get("capped") for a in agg.values()):
        note += " ‡ Used every allowed epoch while still improving: the epoch cap bound it."
    settings = [f"- {short_label(m)}: {agg[m]['settings']}" for m in order if agg[m].get("settings")]
    tail = ("\n\nSettings of each row (`epochs` is the cap; early stopping usually ends sooner):\n\n"
            + "\n".join(settings)) if settings else ""
    return note + "\n\n" + "\n".join(lines) + tail + "\n"


def family(label: str) -> str:
    """The model a grid point belongs to: its label without the tuned settings."""
    name, _, rest = label.partition(":")
    keep = [kv for kv in filter(None, rest.split(",")) if kv.split("=")[0] not in TUNED + ("epochs", "max_train_seconds")]
    return name + (":" + ",".join(keep) if keep else "")


def best_per_family(runs: list[dict], seed: int = 0) -> dict[str, dict]:
    """``{family: run}``: the grid point with the best **validation** full NDCG@10 (seed ``seed``)."""
    best: dict[str, dict] = {}
    for r in runs:
        if r["seed"] != seed:
            continue
        f = family(r.get("label", r["model"]))
        if f not in best or r["valid"]["full"]["ndcg@10"] > best[f]["valid"]["full"]["ndcg@10"]:
            best[f] = r
    return best


def grid_sizes(runs: list[dict], seed: int = 0) -> dict[str, int]:
    """``{family: number of grid points run at seed ``seed``}`` for every trainable family, in table order."""
    n: dict[str, set] = {}
    for r in runs:
        if r["seed"] == seed and r["model"] != "popularity":
            label = r.get("label", r["model"])
            n.setdefault(family(label), set()).add(label)
    return {f: len(n[f]) for f in _order(n)}


def budget_table(runs: list[dict], seed: int = 0) -> str:
    """Every grid point (seed ``seed``): validation NDCG@10, the pick (★), its test numbers."""
    best = best_per_family(runs, seed)
    lines = ["| model | grid point | valid full NDCG@10 | epochs (best) | train s | test full NDCG@10 |",
             "|---|---|---|---|---|---|"]
    rows = [r for r in runs if r["seed"] == seed]
    rows.sort(key=lambda r: (_order([family(r.get("label", r["model"]))])[0], r.get("label", r["model"])))
    for r in sorted(rows, key=lambda r: (MODELS.index(r["model"]) if r["model"] in MODELS else 9,
                                         family(r.get("label", r["model"])), r.get("label", r["model"]))):
        label = r.get("label", r["model"])
        cfg = r.get("config", {})
        point = ", ".join(f"{k}={cfg[k]}" for k in TUNED if k in cfg) if r["model"] != "popularity" else "–"
        star = " ★" if best.get(family(label)) is r else ""
        mark = ("†" if stopped_by_time(r) else "") + ("‡" if hit_epoch_cap(r) else "")
        lines.append(f"| {short_label(family(label))}{mark} | {point}{star} | {r['valid']['full']['ndcg@10']:.4f} "
                     f"| {r['epochs']} ({r.get('best_epoch', 0)}) | {float(r['train_seconds']):.0f} "
                     f"| {r['test']['full']['ndcg@10']:.4f} |")
    return "\n".join(lines) + "\n"


def paired_table(runs: list[dict], against: str = "sasrec", seed: int = 0) -> str:
    """Test full NDCG@10 of ``against``'s pick minus every other pick, with paired 95% CIs."""
    best = {f: r for f, r in best_per_family(runs, seed).items() if "test_ranks" in r}
    if against not in best:
        return f"_No {against} run with per-user ranks yet._\n"
    lines = [f"| {against} minus | NDCG@10 difference | 95% CI | HR@10 difference | 95% CI | resolved? |",
             "|---|---|---|---|---|---|"]
    for f in _order(best):
        if f != against:
            lines.append(_paired_row(short_label(f), best[against], best[f]))
    return "\n".join(lines) + "\n"


def _paired_row(name: str, run_a: dict, run_b: dict) -> str:
    """One row: test full NDCG@10 and HR@10 of ``run_a`` minus ``run_b``, paired bootstrap."""
    a, b = (torch.tensor(r["test_ranks"]["full"]) for r in (run_a, run_b))
    if a.shape != b.shape:  # e.g. a user subset: not the same users
        return f"| {name} | – (other users) | – | – | – | – |"
    d = paired_bootstrap(a, b, 10, N_BOOT, BOOT_SEED)
    n, h = d["ndcg@10"], d["hr@10"]
    yes = "yes" if n["lo"] > 0 or n["hi"] < 0 else "no"
    return (f"| {name} | {n['diff']:+.4f} | [{n['lo']:+.4f}, {n['hi']:+.4f}] | {h['diff']:+.3f} "
            f"| [{h['lo']:+.3f}, {h['hi']:+.3f}] | {yes} |")


def family_paired_table(runs: list[dict], model: str = "din", against: str = "meanpool", seed: int = 0) -> str:
    """Every pick of ``model`` (each of its families, e.g. DIN-dot and DIN-MLP) minus ``against``'s
    pick: test full NDCG@10 and HR@10 differences, same paired bootstrap as :func:`paired_table`."""
    best = {f: r for f, r in best_per_family(runs, seed).items() if "test_ranks" in r}
    mine = [f for f in _order(best) if f.split(":")[0] == model]
    if against not in best or not mine:
        return f"_No {model} and {against} runs with per-user ranks yet._\n"
    lines = [f"| minus {against} | NDCG@10 difference | 95% CI | HR@10 difference | 95% CI | resolved? |",
             "|---|---|---|---|---|---|"]
    lines += [_paired_row(short_label(f), best[f], best[against]) for f in mine]
    return "\n".join(lines) + "\n"


def load_results(results_dir: Path) -> dict[tuple[str, str], dict]:
    """All recommender ``*.json`` files of ``results_dir`` merged per (dataset, device)."""
    groups: dict[tuple[str, str], dict] = {}
    for f in sorted(results_dir.glob("*.json")):
        blob = json.loads(f.read_text())
        if "kind" in blob or "dataset" not in blob or not blob.get("runs"):
            continue  # another benchmark's file (attention-cost-*, serving-*), or no runs yet
        key = (blob["dataset"], blob["env"]["device"])
        g = groups.setdefault(key, {"env": dict(blob["env"]), "runs": []})
        g["runs"].extend(blob["runs"])
    return groups
