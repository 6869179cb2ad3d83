"""Tables of lesson 09's benchmark: beyond-accuracy metrics of every benchmark model and the
re-ranking sweep, from the files ``beyond_accuracy.py retrain`` writes. Pure functions of
those files and the MovieLens split (``tests/test_beyond_accuracy_report.py``)."""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sections import markers, splice  # noqa: E402

from recattn_lessons import metrics  # noqa: E402
from recattn_lessons.data import genre_multi_hot, item_popularity, leave_one_out, load_movielens  # noqa: E402
from recattn_lessons.serving.rerank import calibrated_rerank, mmr_rerank  # noqa: E402

__all__ = ["Context", "context", "load_topk", "list_metrics", "model_rows", "model_table", "attention_verdict",
           "rerank_sweep", "sweep_table", "render_section", "write_section", "FAMILIES", "MMR_LAMS", "CAL_LAMS"]

# family -> (shown name, does it use attention?)
FAMILIES = {
    "popularity": ("popularity", False), "meanpool": ("mean-pool", False), "gru4rec": ("GRU4Rec", False),
    "din": ("DIN (target attention, dot)", True), "sasrec": ("SASRec (self-attention)", True),
    "hstu": ("HSTU (pointwise attention)", True),
}
MMR_LAMS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3)
CAL_LAMS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95)
COLUMNS = ("ndcg@10", "ild", "coverage", "novelty", "gini", "miscalibration")


@dataclass(frozen=True)
class Context:
    """What every metric needs about the test stage of the benchmark split."""

    genres: torch.Tensor  # (N+1, G) multi-hot
    popularity: torch.Tensor  # (N+1,) interaction counts of the test-stage histories
    histories: list[torch.Tensor]  # per user: what they had seen before the test item
    targets: torch.Tensor  # (U,) test items
    n_items: int


def context(data=None) -> Context:
    """The benchmark's split (``load_movielens()``, tie seed 0, leave-one-out) at test time."""
    data = data if data is not None else load_movielens()
    split = leave_one_out(data)
    seen = split.seen("test")
    return Context(genre_multi_hot(data)[0], item_popularity(seen, data.n_items), seen,
                   split.test_target, data.n_items)


def load_topk(folder: Path) -> list[dict]:
    """Every ``topk-*.json`` row in ``folder``, sorted by (label, seed)."""
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("topk-*.json"))]
    return sorted(rows, key=lambda r: (r["label"], r["seed"]))


def ndcg_of_lists(top: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean NDCG@k of one held-out item per user: 1/log2(position + 2) if it is in the list."""
    hit = top == targets[:, None]  # (U, k)
    pos = torch.arange(top.shape[1], dtype=torch.float64)
    return float((hit.to(torch.float64) / torch.log2(pos + 2)).sum(1).mean())


def list_metrics(top: torch.Tensor, ctx: Context) -> dict[str, float]:
    """NDCG@10 and the five beyond-accuracy metrics of ``(U, 10)`` lists."""
    return {
        "ndcg@10": ndcg_of_lists(top, ctx.targets),
        "ild": metrics.intra_list_diversity(top, ctx.genres),
        "coverage": metrics.catalog_coverage(top, ctx.n_items),
        "novelty": metrics.novelty(top, ctx.popularity),
        "gini": metrics.gini_index(top, ctx.n_items),
        "miscalibration": metrics.genre_calibration(top, ctx.histories, ctx.genres),
    }


def model_rows(rows: list[dict], ctx: Context) -> list[dict]:
    """One record per retrained run: family, seed, the metrics, the recorded NDCG@10."""
    out = []
    for r in rows:
        m = list_metrics(torch.tensor(r["top10"]), ctx)
        # the benchmark's number: from the full ranks, ties counted against the target (the
        # lists break popularity's ties by id, so their NDCG is a hair higher there)
        m["ndcg@10"] = float(metrics.ndcg_at_k(torch.tensor(r["test_ranks_full"]), 10))
        out.append({"family": r["model"], "label": r["label"], "seed": r["seed"],
                    "recorded_ndcg@10": r["recorded_test_ndcg@10"], **m})
    return out


def _mean_std(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


DIGITS = {"ndcg@10": 4, "recorded_ndcg@10": 4, "ild": 3, "coverage": 3, "novelty": 2, "gini": 3, "miscalibration": 3}


def _by_family(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["family"], []).append(r)
    return {f: groups[f] for f in FAMILIES if f in groups}


def model_table(records: list[dict]) -> str:
    """Markdown: one row per family, mean ± std over its seeds."""
    head = ("| model | attention | seeds | NDCG@10 (recorded) | ILD (genres) ↑ | coverage@10 ↑ "
            "| novelty (bits) ↑ | Gini of exposure ↓ | miscalibration KL ↓ |")
    lines = [head, "|" + "---|" * 9]
    for fam, group in _by_family(records).items():
        name, attends = FAMILIES[fam]
        cell = {c: _mean_std([g[c] for g in group], DIGITS[c]) for c in (*COLUMNS, "recorded_ndcg@10")}
        lines.append(f"| {name} | {'yes' if attends else 'no'} | {len(group)} | {cell['ndcg@10']} "
                     f"({cell['recorded_ndcg@10']}) | {cell['ild']} | {cell['coverage']} | {cell['novelty']} "
                     f"| {cell['gini']} | {cell['miscalibration']} |")
    return "\n".join(lines)


def attention_verdict(records: list[dict]) -> str:
    """One sentence, computed: did the attention models recommend more diverse lists than the
    learned models without attention (mean-pool, GRU4Rec)? Popularity is left out (one list)."""
    groups = _by_family(records)
    ild = {f: [g["ild"] for g in groups[f]] for f in groups if f != "popularity"}
    plain = {f: v for f, v in ild.items() if not FAMILIES[f][1]}
    attn = {f: v for f, v in ild.items() if FAMILIES[f][1]}
    if not plain or not attn:
        return "Not enough models to compare."
    best_plain = max(plain, key=lambda f: statistics.mean(plain[f]))
    parts = []
    for f, v in attn.items():
        diff = statistics.mean(v) - statistics.mean(plain[best_plain])
        spread = max((statistics.stdev(x) for x in (v, plain[best_plain]) if len(x) > 1), default=0.0)
        word = ("higher" if diff > 0 else "lower") if abs(diff) > 2 * spread else "no different (within 2 seed std)"
        parts.append(f"{FAMILIES[f][0]} {statistics.mean(v):.3f} is {word}" +
                     (f" by {abs(diff):.3f}" if abs(diff) > 2 * spread else ""))
    return (f"Intra-list diversity against the most diverse model without attention, "
            f"{FAMILIES[best_plain][0]} ({statistics.mean(plain[best_plain]):.3f}): " + "; ".join(parts) + ".")


def rerank_sweep(candidate_files: list[Path], ctx: Context, mmr_lams=MMR_LAMS, cal_lams=CAL_LAMS,
                 k: int = 10) -> list[dict]:
    """Re-rank each run's top-100 candidates with MMR and calibration at every λ."""
    out = []
    for path in candidate_files:
        z = np.load(path)
        items, scores = torch.from_numpy(z["items"].astype(np.int64)), torch.from_numpy(z["scores"])
        seed = int(path.stem.rsplit("seed", 1)[1])
        for lam in mmr_lams:
            out.append({"method": "mmr", "lam": lam, "seed": seed,
                        **list_metrics(mmr_rerank(items, scores, ctx.genres, k, lam), ctx)})
        for lam in cal_lams:
            top = calibrated_rerank(items, scores, ctx.histories, ctx.genres, k, lam)
            out.append({"method": "calibrated", "lam": lam, "seed": seed, **list_metrics(top, ctx)})
    return out


def sweep_table(sweep: list[dict]) -> str:
    """Markdown: one row per (method, λ), mean ± std over seeds."""
    lines = ["| re-ranker | λ | NDCG@10 | ILD ↑ | coverage@10 ↑ | novelty ↑ | Gini ↓ | miscalibration ↓ |",
             "|" + "---|" * 8]
    keys = sorted({(r["method"], r["lam"]) for r in sweep}, key=lambda mk: (mk[0] != "mmr", -mk[1] if mk[0] == "mmr" else mk[1]))
    for method, lam in keys:
        group = [r for r in sweep if (r["method"], r["lam"]) == (method, lam)]
        cell = {c: _mean_std([g[c] for g in group], DIGITS[c]) for c in COLUMNS}
        note = " (the model's order)" if (method, lam) in (("mmr", 1.0), ("calibrated", 0.0)) else ""
        lines.append(f"| {'MMR' if method == 'mmr' else 'calibrated'}{note} | {lam:g} | {cell['ndcg@10']} | "
                     f"{cell['ild']} | {cell['coverage']} | {cell['novelty']} | {cell['gini']} | "
                     f"{cell['miscalibration']} |")
    return "\n".join(lines)


def render_section(records: list[dict], sweep: list[dict], extra: str = "") -> str:
    """The ``beyond-accuracy`` section of BENCHMARKS.md, markers included."""
    start, end = markers("beyond-accuracy")
    n_seeds = len({r["seed"] for r in sweep})
    return "\n".join([
        start,
        "## Beyond accuracy: diversity, coverage, novelty, exposure (lesson 09)",
        "",
        "Each benchmark pick of the tables above (the validation-picked grid point of each family) "
        "retrained with its recorded configuration up to its recorded best epoch "
        "(`python benchmarks/beyond_accuracy.py retrain`), then its test-time top 10 for every one "
        "of the 671 users (the user's history excluded) measured. NDCG@10 is the retrained run's; "
        "in brackets the number recorded above (retraining is not bit-exact: thread count and "
        "kernel choice change float sums). ILD: mean pairwise 1 − Jaccard of genre sets inside a "
        "list; coverage@10: share of the 9,066 movies in anyone's list; novelty: mean −log2 of "
        "an item's smoothed share of interactions; Gini: concentration of exposure over the "
        "catalogue; miscalibration: Steck's KL(history genres ‖ list genres), α = 0.01. Mean ± "
        "std over seeds (DIN: one seed, as in its benchmark row). Definitions: "
        "`recattn_lessons/metrics/beyond.py`.",
        "",
        model_table(records),
        "",
        "**Did attention make recommendations more diverse?** " + attention_verdict(records),
        "",
        f"### Re-ranking SASRec's top 100 (λ sweep, {n_seeds} seeds)",
        "",
        "MMR trades relevance (scores min-max scaled per user) for dissimilarity to the items "
        "already picked (λ = 1: the model's order); calibrated re-ranking trades it for a genre "
        "mix close to the user's history (λ = 0: the model's order). Both pick from the model's "
        "100 best candidates (`recattn_lessons/serving/rerank.py`), so a test item ranked past "
        "100 stays out at every λ.",
        "",
        sweep_table(sweep),
        *([extra] if extra else []),
        end,
        "",
    ])


def write_section(markdown: Path, folder: Path) -> None:
    """Render from ``folder``'s files and splice into ``markdown``."""
    ctx = context()
    records = model_rows(load_topk(folder), ctx)
    sweep = rerank_sweep(sorted(folder.glob("topk-sasrec-*.npz")), ctx)
    (folder / "rerank-sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    (folder / "model-metrics.json").write_text(json.dumps(records, indent=1) + "\n")
    md = markdown.read_text(encoding="utf-8")
    markdown.write_text(splice(md, render_section(records, sweep, extra_tables(folder))), encoding="utf-8")


def extra_tables(folder: Path) -> str:
    """The feedback and side-information tables of lesson 09 (their scripts render them)."""
    import feedback
    import item_features
    return "\n".join([
        "", "### Negative feedback and feedback loops (lesson 09, section 5)", "",
        "SASRec's benchmark configuration, three readings of the 1-2 star ratings, ranked on the "
        "same targets (each user's last two liked ratings) and candidates "
        "(`python benchmarks/feedback.py dislikes --seeds 0 1 2`); then the feedback-loop "
        "simulation, seed 0, exploration 0 vs 0.1 (`python benchmarks/feedback.py loop`).", "",
        feedback.render(folder), "",
        "### Side information and cold items (lesson 09, section 6)", "",
        "SASRec with genre and title-word tokens fused with the item ids "
        "(`python benchmarks/item_features.py`); cold users: those whose test item has at most "
        "3 interactions in the training sequences.", "",
        item_features.render_table(out=folder),
    ])
