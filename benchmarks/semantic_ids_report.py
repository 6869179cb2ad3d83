"""Tables of lesson 10's benchmark (issue 17), from the files ``semantic_ids.py`` writes.

Pure functions of those files (``tests/test_semantic_ids_report.py``): the comparison of
every method with SASRec on the same users (per-seed and 3-seed paired bootstrap
intervals), the cold-item table, the semantic-ID diagnostics and the decoding cost.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sections import markers, splice  # noqa: E402

from recattn_lessons import metrics  # noqa: E402

__all__ = ["load_runs", "seed_ndcgs", "comparison_rows", "comparison_table", "verdicts", "cold_rows", "cold_table",
           "ids_table", "decode_table", "render_section", "write_section", "NAMES"]

NAMES = {
    "popularity": "popularity (context)",
    "sasrec": "SASRec (item ids)",
    "sasrec-text": "SASRec + e5 text embedding",
    "genret-random": "generative retrieval, random IDs",
    "genret-lsh": "generative retrieval, LSH IDs",
    "genret-rq": "generative retrieval, RQ-k-means IDs",
}
SECTION = "semantic-ids"
PROTOCOL = """Every method trains on the benchmark split (MovieLens latest-small, same-second ratings in a
seeded random order, leave-one-out) and is scored by **full ranking** of every film the user has
not seen; validation picks the epoch. SASRec keeps its grid-picked configuration (lr 1e-3, dropout
0.2; the standard split's rows are lesson 09's retrained runs). The generative retriever is **not
tuned** (lr 3e-3, d_model 64, 2 blocks, the last 20 films, beam 20, epoch cap 15, patience 3),
because each validation pass decodes every user with beam search; the comparison favours SASRec by
that much. The intervals are paired bootstraps over the 671 test users (1,000 redraws), per seed
and for the per-user mean over the matched seeds.

Context, not comparable: TIGER (Rajput et al. 2023) reports Recall@10 / NDCG@10 on Amazon Beauty,
Sports and Toys, items with rich text (title, brand, category, price) embedded by Sentence-T5, an
encoder-decoder transformer; the HSTU repository's ML-1M table (above) trains with sampled softmax
and ranks seen items too. ML-1M was not run here: the machine that made these rows has no access
to GroupLens (`recattn_lessons.data.grouplens` downloads it; `--dataset ml-1m` for the full mode)."""


def load_runs(folder: Path, lesson09: Path | None = None) -> dict[tuple[str, float, int], dict]:
    """``{(method, cold share, seed): row}`` of every ``run-*.json`` in ``folder``; with
    ``lesson09``, its retrained SASRec pick (``topk-sasrec-lr0.001-dropout0.2-seed*.json``, the
    same configuration on the same split) fills ``("sasrec", 0.0, seed)``, and its popularity
    runs ``("popularity", 0.0, seed)`` (a floor, for context)."""
    runs = {}
    if lesson09 is not None:
        for method, pattern in (("sasrec", "topk-sasrec-lr0.001-dropout0.2-seed*.json"),
                                ("popularity", "topk-popularity-seed*.json")):
            for p in sorted(lesson09.glob(pattern)):
                r = json.loads(p.read_text())
                runs[(method, 0.0, r["seed"])] = {**r, "method": method, "cold": 0.0}
    for p in sorted(folder.glob("run-*.json")):
        r = json.loads(p.read_text())
        runs[(r["method"], float(r["cold"]), r["seed"])] = r
    return runs


def _per_user_ndcg(row: dict) -> torch.Tensor:
    return metrics.per_user(torch.tensor(row["test_ranks_full"]), 10)["ndcg@10"]  # (U,)


def seed_ndcgs(runs: dict, method: str, cold: float) -> list[float]:
    """Test NDCG@10 of each seed of ``method`` at this cold share, in seed order."""
    return [float(_per_user_ndcg(runs[k]).mean()) for k in sorted(runs) if k[0] == method and k[1] == cold]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def comparison_rows(runs: dict, cold: float = 0.0, baseline: str = "sasrec", n_boot: int = 1000) -> list[dict]:
    """One row per method at this cold share: NDCG@10 and HR@10 over seeds (mean, std) and,
    against ``baseline`` on the same seeds, the per-user paired bootstrap of the NDCG@10
    difference: one interval per seed and one for the per-user mean over the matched seeds."""
    methods = [m for m in NAMES if any(k[0] == m and k[1] == cold for k in runs)]
    rows = []
    for m in methods:
        seeds = sorted(s for (mm, c, s) in runs if mm == m and c == cold)
        ndcg = seed_ndcgs(runs, m, cold)
        hr = [metrics.summarize(torch.tensor(runs[(m, cold, s)]["test_ranks_full"]), 10)["hr@10"] for s in seeds]
        row = {"method": m, "seeds": seeds, "ndcg@10": _mean_std(ndcg), "hr@10": _mean_std(hr)}
        paired = [s for s in seeds if (baseline, cold, s) in runs]
        if m != baseline and paired:
            per_seed = [metrics.paired_bootstrap_values(_per_user_ndcg(runs[(m, cold, s)]),
                                                        _per_user_ndcg(runs[(baseline, cold, s)]),
                                                        n_boot=n_boot, seed=s) for s in paired]
            a = torch.stack([_per_user_ndcg(runs[(m, cold, s)]) for s in paired]).mean(0)  # (U,)
            b = torch.stack([_per_user_ndcg(runs[(baseline, cold, s)]) for s in paired]).mean(0)
            row["vs_baseline"] = {"per_seed": per_seed, "pooled": metrics.paired_bootstrap_values(
                a, b, n_boot=n_boot, seed=0), "seeds": paired}
        rows.append(row)
    return rows


def _side(ci: dict) -> str:
    return "better" if ci["lo"] > 0 else "worse" if ci["hi"] < 0 else "tied"


def comparison_table(rows: list[dict], baseline: str = "sasrec") -> str:
    head = ("| method | seeds | NDCG@10 | HR@10 | Δ NDCG@10 vs " + NAMES[baseline].split(" (")[0]
            + " (3-seed per-user mean, 95% paired CI) | seeds better / tied / worse |\n"
            "|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        (n, ns), (h, hs) = r["ndcg@10"], r["hr@10"]
        vs = r.get("vs_baseline")
        if vs:
            p = vs["pooled"]
            sides = [_side(c) for c in vs["per_seed"]]
            delta = f"{p['diff']:+.4f} [{p['lo']:+.4f}, {p['hi']:+.4f}]"
            count = f"{sides.count('better')} / {sides.count('tied')} / {sides.count('worse')}"
        else:
            delta, count = "(baseline)" if r["method"] == baseline else "n/a", ""
        lines.append(f"| {NAMES[r['method']]} | {len(r['seeds'])} | {n:.4f} ± {ns:.4f} | {h:.4f} ± {hs:.4f} "
                     f"| {delta} | {count} |")
    return head + "\n".join(lines) + "\n"


def verdicts(rows: list[dict], baseline: str = "sasrec") -> list[str]:
    """One sentence per method, following its pooled interval's sign (never the point estimate)."""
    out = []
    for r in rows:
        vs = r.get("vs_baseline")
        if not vs:
            continue
        p, side = vs["pooled"], _side(vs["pooled"])
        word = {"better": "beats", "worse": "loses to", "tied": "cannot be told apart from"}[side]
        out.append(f"{NAMES[r['method']]} {word} {NAMES[baseline]}: "
                   f"Δ NDCG@10 {p['diff']:+.4f}, 95% CI [{p['lo']:+.4f}, {p['hi']:+.4f}].")
    return out


def cold_rows(runs: dict, cold: float) -> list[dict]:
    """Per method at this cold share: NDCG@10 on users whose test item was held out of
    training and on the others, and how often held-out items are shown at all."""
    rows = []
    for m in NAMES:
        seeds = sorted(s for (mm, c, s) in runs if mm == m and c == cold and "cold_items" in runs[(mm, c, s)])
        if not seeds:
            continue
        st = [runs[(m, cold, s)]["cold_items"] for s in seeds]
        rows.append({"method": m, "seeds": seeds,
                     "n_cold_test_users": _mean_std([x["n_cold_test_users"] for x in st]),
                     "cold_ndcg@10": _mean_std([x["cold_users"]["ndcg@10"] for x in st if "cold_users" in x]),
                     "cold_mrr": _mean_std([x["cold_users"]["mrr"] for x in st if "cold_users" in x]),
                     "warm_ndcg@10": _mean_std([x["warm_users"]["ndcg@10"] for x in st if "warm_users" in x]),
                     "cold_share_of_slots": _mean_std([x["cold_share_of_slots"] for x in st]),
                     "distinct_cold_items_shown": _mean_std([x["distinct_cold_items_shown"] for x in st])})
    return rows


def cold_table(rows: list[dict]) -> str:
    head = ("| method | seeds | users with a cold test item | NDCG@10, those users | MRR, those users "
            "| NDCG@10, the others | share of top-10 slots on cold items | distinct cold items shown |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {NAMES[r['method']]} | {len(r['seeds'])} | {r['n_cold_test_users'][0]:.0f} "
             f"| {r['cold_ndcg@10'][0]:.4f} ± {r['cold_ndcg@10'][1]:.4f} | {r['cold_mrr'][0]:.5f} "
             f"| {r['warm_ndcg@10'][0]:.4f} ± {r['warm_ndcg@10'][1]:.4f} "
             f"| {100 * r['cold_share_of_slots'][0]:.2f}% | {r['distinct_cold_items_shown'][0]:.0f} |"
             for r in rows]
    return head + "\n".join(lines) + "\n"


def ids_table(ids: dict) -> str:
    """The diagnostics of every semantic-ID method (``ids.json``), before disambiguation."""
    head = ("| IDs | text | codebook usage per level | entropy per level (bits of log2 K) "
            "| unique IDs | collision rate | largest group | build (s) |\n|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in ids["methods"]:
        d = r["diagnostics"]
        usage = " / ".join(f"{100 * u:.0f}%" for u in d["usage"])
        ent = " / ".join(f"{e:.2f}" for e in d["entropy_bits"])
        lines.append(f"| {r['method']} | {r['text']} | {usage} | {ent} of {r['log2_k']:.0f} "
                     f"| {100 * d['unique_share']:.1f}% | {100 * d['collision_rate']:.1f}% "
                     f"| {d['largest_group']} | {r['seconds']:.1f} |")
    return head + "\n".join(lines) + "\n"


def decode_table(dec: dict) -> str:
    """Decoding cost per user, as ratios to exact top-k in the same process, and invalid IDs."""
    base = dec["rows"][0]["ms_per_user"]
    head = "| retrieval | ms per user | × exact top-k | invalid IDs in the top 10 |\n|---|---|---|---|\n"
    lines = []
    for r in dec["rows"]:
        invalid = "" if r.get("invalid_share") is None else f"{100 * r['invalid_share']:.1f}%"
        lines.append(f"| {r['name']} | {r['ms_per_user']:.3f} | {r['ms_per_user'] / base:.1f} | {invalid} |")
    return head + "\n".join(lines) + "\n"


def render_section(folder: Path, lesson09: Path | None = None) -> str:
    runs = load_runs(folder, lesson09)
    start, end = markers(SECTION)
    parts = [start, "## Semantic IDs and generative retrieval (lesson 10)\n",
             "Written by `benchmarks/semantic_ids.py render` from `benchmarks/results/lesson10/` "
             "(reproduce with its `ids`, `train`, `decode` commands; lesson 10 reads the same files).\n",
             PROTOCOL + "\n"]
    ids_path = folder / "ids.json"
    if ids_path.exists():
        ids = json.loads(ids_path.read_text())
        parts += ["### The IDs\n", ids.get("note", "") + "\n", ids_table(ids)]
    rows = comparison_rows(runs, 0.0)
    if rows:
        parts += ["### Against SASRec on the benchmark split (full ranking, test)\n", comparison_table(rows),
                  "\n".join(f"- {v}" for v in verdicts(rows)) + "\n"]
    colds = sorted({c for (_, c, _) in runs if c > 0})
    for c in colds:
        parts += [f"### Cold items: {100 * c:g}% of the items held out of training\n",
                  comparison_table(comparison_rows(runs, c)), cold_table(cold_rows(runs, c))]
    dec_path = folder / "decode.json"
    if dec_path.exists():
        dec = json.loads(dec_path.read_text())
        parts += ["### Decoding cost\n", dec.get("note", "") + "\n", decode_table(dec)]
    parts.append(end)
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def write_section(benchmarks_md: Path, folder: Path, lesson09: Path | None = None) -> None:
    text = benchmarks_md.read_text() if benchmarks_md.exists() else ""
    benchmarks_md.write_text(splice(text, render_section(folder, lesson09)))
