"""What a recommendation costs at serving time, measured (lesson 07, issue 9).

Usage::

    python benchmarks/serving_cost.py                     # full: 1M-item catalogue, 10 epochs
    python benchmarks/serving_cost.py --quick             # < 60 s: 50k items, 1 epoch, few repeats
    python benchmarks/serving_cost.py --catalogue 200000  # a smaller synthetic catalogue
    python benchmarks/serving_cost.py --run runs/sasrec   # use a trained run's model
    python benchmarks/serving_cost.py --render-only       # BENCHMARKS.md section from the JSON

Four measurements, each as a ratio to a baseline timed in the same
process (one thread, the minimum over ``--repeats`` of each timing):

1. **Candidates**: one request scoring C = 10, 100, 1,000 and all items.
   DIN's target attention runs once per candidate (O(C L)); SASRec
   encodes the history once, then one dot product per candidate (O(C d)).
2. **KV cache**: ``session.append`` + ``top(10)`` against a fresh
   forward pass over the whole history, at L = 50, 200 and 1,000
   (random-weight SASRec, ``positions="left"``, ``maxlen`` = the longest
   L), and a check that both give the same top-10.
3. **Exact vs approximate top-10** over item embeddings: torch matmul +
   topk and FAISS ``IndexFlatIP`` (exact), ``IndexHNSWFlat`` (efSearch)
   and ``IndexIVFFlat`` (nprobe); recall@10 against exact, one query at a
   time. Two catalogues: the trained SASRec's 9,066 MovieLens items
   (queries: the test users' final hidden states) and a synthetic one
   (``--catalogue`` items, d = 64, a mixture of 1,000 Gaussian clusters).
4. **bf16 and int8**: the trained SASRec cast to bf16, and with dynamic
   int8 quantization of its ``nn.Linear`` layers (``quantize_dynamic``);
   full-ranking test NDCG@10 and per-request latency against fp32.

Writes ``benchmarks/results/serving-cost-cpu.json`` and the section
between ``<!-- serving-cost:start -->`` and ``<!-- serving-cost:end -->``
of ``BENCHMARKS.md`` (replaced, or appended if missing); ``--quick``
only prints the tables and returns the result (lesson 07), unless
``--out``/``--markdown`` are given.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "serving-cost-cpu.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_cost_report import END, NOTE, START, markdown, recall_at_k, splice  # noqa: E402

__all__ = ["START", "END", "best_of", "candidate_cost", "kv_cache_cost", "ann_cost", "quantization_cost",
           "synthetic_catalogue", "trained_model", "main", "recall_at_k", "markdown", "splice"]


def best_of(fn, repeats: int, number: int = 1) -> float:
    """Seconds per call: the minimum over ``repeats`` of the mean of ``number`` calls."""
    fn()  # warm-up (allocations, lazy init)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def candidate_cost(n_items: int, maxlen: int, d_model: int, sizes, repeats: int, seed: int) -> dict:
    """Per-request ms of SASRec and DIN (dot, MLP) scoring C candidates."""
    import torch

    from recattn_lessons import models

    torch.manual_seed(seed)
    hp = dict(maxlen=maxlen, d_model=d_model)
    sas = models.build("sasrec", n_items, **hp).eval()
    din = {a: models.build("din", n_items, attention=a, **hp).eval() for a in ("dot", "mlp")}
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(1, n_items + 1, (1, maxlen), generator=g)  # (1, L) a full window
    rows = []
    with torch.no_grad():
        encoder = best_of(lambda: sas.forward(hist), repeats) * 1e3
        for C in sizes:
            cand = None if C >= n_items else (torch.randperm(n_items, generator=g)[:C] + 1)[None]
            ms = {name: best_of(lambda m=m: m.score(hist, cand), repeats) * 1e3
                  for name, m in (("sasrec", sas), ("din_dot", din["dot"]),
                                  ("din_mlp", din["mlp"]))}
            rows.append({"candidates": min(C, n_items), **{f"{k}_ms": v for k, v in ms.items()},
                         "din_dot_over_sasrec": ms["din_dot"] / ms["sasrec"],
                         "din_mlp_over_sasrec": ms["din_mlp"] / ms["sasrec"]})
    return {"encoder_ms": encoder, "history_length": maxlen, "rows": rows}


def kv_cache_cost(n_items: int, lengths, d_model: int, appends: int, repeats: int,
                  seed: int) -> list[dict]:
    """append + top(10) of a KV-cached session vs a fresh forward pass."""
    import torch

    from recattn_lessons import models
    from recattn_lessons.serving import Recommender
    from recattn_lessons.serving.ranking import top_items

    torch.manual_seed(seed)
    model = models.build("sasrec", n_items, maxlen=max(lengths), d_model=d_model,
                         positions="left").eval()
    rec = Recommender(model)
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, n_items + 1, (max(lengths),), generator=g).tolist()
    rows = []
    for L in lengths:
        h, x, r = history[:L], torch.tensor([history[:L]]), min(appends, L - 1)

        def recompute():  # no cache: the whole history again (unpadded: same scores)
            with torch.no_grad():
                return top_items(model.score(x)[0], h, 10)

        def cached(with_top: bool) -> float:
            session = rec.session(h[:L - r])  # prefill, not timed
            t0 = time.perf_counter()
            for item in h[L - r:]:
                session.append(item)
                if with_top:
                    session.top(10)
            return (time.perf_counter() - t0) / r

        full = best_of(recompute, repeats)
        with torch.no_grad():
            fwd = best_of(lambda: model.forward(x), repeats)
        step_top = min(cached(True) for _ in range(repeats))
        step = min(cached(False) for _ in range(repeats))
        session = rec.session(h[:L - r])
        session.extend(h[L - r:])
        got, want = session.top(10), recompute()
        rows.append({"length": L, "appends_timed": r, "recompute_ms": full * 1e3,
                     "append_top_ms": step_top * 1e3, "speedup": full / step_top,
                     "forward_ms": fwd * 1e3, "append_ms": step * 1e3,
                     "forward_speedup": fwd / step,
                     "same_top10": [i for i, _ in got] == [i for i, _ in want],
                     "max_score_diff": max(abs(a - b) for (_, a), (_, b) in zip(got, want)),
                     "cached": session.cached})
    return rows


def synthetic_catalogue(n: int, d: int, n_queries: int, seed: int, clusters: int = 1000,
                        spread: float = 1.0):
    """``(n, d)`` items and ``(Q, d)`` queries from one mixture of Gaussian clusters.

    Centres and within-cluster noise both have per-coordinate sd
    ``1/sqrt(d)`` times 1 and ``spread``: at spread 0.5 every method finds
    the top-10 (too easy), at 2 IVF with nprobe=16 finds a third of it
    (measured on 50k items); 1 sits between, near the MovieLens items.
    """
    rng = np.random.default_rng(seed)
    scale = np.float32(1 / np.sqrt(d))  # float32 scalars keep float32 arrays (NumPy 2)
    centres = rng.standard_normal((clusters, d), dtype=np.float32) * scale
    noise = np.float32(spread) * scale
    items = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 100_000):  # bounded temporaries
        m = min(n, lo + 100_000) - lo
        items[lo:lo + m] = centres[rng.integers(0, clusters, m)]
        items[lo:lo + m] += rng.standard_normal((m, d), dtype=np.float32) * noise
    q = centres[rng.integers(0, clusters, n_queries)]
    return items, q + rng.standard_normal((n_queries, d), dtype=np.float32) * noise


def ann_cost(items: np.ndarray, queries: np.ndarray, repeats: int, k: int = 10,
             hnsw_m: int = 32, ef_search=(16, 64, 256), nprobe=(1, 4, 16, 64)) -> dict:
    """recall@k and ms/query of exact and approximate inner-product top-k."""
    import faiss
    import torch

    n, d = items.shape
    E, Q = torch.from_numpy(items), torch.from_numpy(queries)
    truth = torch.cat([(q @ E.T).topk(k).indices for q in Q.split(16)]).numpy()  # (Q, k)

    def per_query(search) -> float:  # ms, one query at a time (what a request sees)
        run_all = lambda: [search(queries[i:i + 1]) for i in range(len(queries))]  # noqa: E731
        return best_of(run_all, max(1, repeats // 5)) / len(queries) * 1e3

    methods = [{"method": "torch matmul + topk", "setting": "exact", "build_s": 0.0,
                "ms": per_query(lambda q: (torch.from_numpy(q) @ E.T).topk(k).indices),
                "recall@10": 1.0}]

    def add(method, setting, index, build_s):
        found = index.search(queries, k)[1]
        methods.append({"method": method, "setting": setting, "build_s": build_s,
                        "ms": per_query(lambda q: index.search(q, k)),
                        "recall@10": recall_at_k(found, truth)})

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(items)
    add("faiss IndexFlatIP", "exact", flat, time.perf_counter() - t0)
    del flat
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(items)
    built = time.perf_counter() - t0
    for ef in ef_search:
        hnsw.hnsw.efSearch = ef
        add("faiss IndexHNSWFlat", f"M={hnsw_m}, efSearch={ef}", hnsw, built)
    del hnsw
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 points per list
    t0 = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
    ivf.train(items[np.sort(sample)])
    ivf.add(items)
    built = time.perf_counter() - t0
    for p in (p for p in nprobe if p <= nlist):
        ivf.nprobe = p
        add("faiss IndexIVFFlat", f"nlist={nlist}, nprobe={p}", ivf, built)
    del ivf
    for m in methods:
        m["speedup"] = methods[0]["ms"] / m["ms"]
    return {"n_items": n, "dim": d, "queries": len(queries), "methods": methods}


def quantization_cost(model, split, maxlen: int, repeats: int, seed: int,
                      n_sampled: int = 100) -> list[dict]:
    """NDCG@10 (full ranking, test) and latency of bf16 and int8-dynamic vs fp32."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    from recattn_lessons import metrics
    from recattn_lessons.data import histories
    from recattn_lessons.train import eval_negatives, evaluate_ranks

    model = copy.deepcopy(model).float().eval()
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        int8 = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    variants = [("fp32", model), ("bf16", copy.deepcopy(model).to(torch.bfloat16)),
                ("int8 dynamic (nn.Linear)", int8)]
    negs = eval_negatives(split, "test", seed, n_sampled)  # evaluate_ranks wants them; unused
    one = histories(split, "test", maxlen)[:1]  # (1, L) one request
    rows, ranks = [], {}
    for name, m in variants:
        t0 = time.perf_counter()
        ranks[name] = evaluate_ranks(m, split, "test", maxlen, negs)["full"]  # (U,)
        eval_s = time.perf_counter() - t0
        with torch.no_grad():
            ms = best_of(lambda m=m: m.score(one), repeats) * 1e3
        full = metrics.summarize(ranks[name], 10)
        rows.append({"variant": name, "ndcg@10": full["ndcg@10"], "hr@10": full["hr@10"],
                     "rank_moved": float((ranks[name] != ranks["fp32"]).float().mean()),
                     "request_ms": ms, "eval_s": eval_s})
    for x in rows:
        x["ndcg_change"] = x["ndcg@10"] - rows[0]["ndcg@10"]
        x["request_ratio"] = x["request_ms"] / rows[0]["request_ms"]
    return rows


def trained_model(run_dir: str | None, epochs: int, seed: int):
    """(model, split, maxlen): a run folder's best weights, or a fresh short training."""
    from recattn_lessons.data import leave_one_out
    from recattn_lessons.serving import Recommender
    from recattn_lessons.train import TrainConfig, run

    if run_dir is not None:
        from recattn_lessons.train.loop import load_dataset
        rec = Recommender.from_run(run_dir)
        cfg = json.loads((Path(run_dir) / "metrics.json").read_text())["config"]
        return rec.model, leave_one_out(load_dataset(cfg["dataset"], cfg["tie_seed"])), rec.maxlen
    cfg = TrainConfig(model="sasrec", epochs=epochs, min_epochs=epochs, device="cpu", seed=seed,
                      progress=False)
    result = run(cfg)
    return result.model.eval(), result.split, cfg.maxlen  # run() leaves it in train mode


def environment(threads: int) -> dict:
    """benchmarks/recommender.py's environment, plus faiss and the load average."""
    import faiss

    from recommender import environment as base

    return {**base("cpu"), "threads": threads, "faiss": faiss.__version__,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="< 60 s: --catalogue 50000 --epochs 1 --repeats 3 --queries 50")
    p.add_argument("--catalogue", type=int, default=None,
                   help="synthetic items (default 1,000,000)")
    p.add_argument("--queries", type=int, default=None, help="ANN queries (default 200)")
    p.add_argument("--epochs", type=int, default=None, help="SASRec training epochs (default 10)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (default 20)")
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 1000], help="KV-cache L")
    p.add_argument("--run", default=None, help="a trained run folder instead of training")
    p.add_argument("--threads", type=int, default=1, help="torch and faiss threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON results (default {OUT.relative_to(ROOT)}; --quick: none)")
    p.add_argument("--markdown", type=Path, default=None,
                   help="document to splice the section into (default BENCHMARKS.md; --quick: none)")
    p.add_argument("--render-only", action="store_true", help="only rebuild the markdown section")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if not args.quick:  # a quick run never overwrites the measured numbers unless asked to
        args.out = OUT if args.out is None else args.out
        args.markdown = ROOT / "BENCHMARKS.md" if args.markdown is None else args.markdown
    if args.render_only:
        if args.out is None:
            raise SystemExit("--render-only needs the JSON: give --out (or drop --quick)")
        result = json.loads(args.out.read_text())
    else:
        quick = dict(catalogue=50_000, queries=50, epochs=1, repeats=3)
        full = dict(catalogue=1_000_000, queries=200, epochs=10, repeats=20)
        for key, value in (quick if args.quick else full).items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
        t0 = time.perf_counter()
        model, split, maxlen = trained_model(args.run, args.epochs, args.seed)
        n = split.n_items
        with torch.no_grad():
            from recattn_lessons.data import histories
            users = model.forward(histories(split, "test", maxlen))[:, -1]  # (U, D) test queries
        items = model.item_emb.weight[1:].detach().numpy().copy()  # (N, D): row r = item r + 1
        result = {  # "kind": recommender_report.load_results skips it (not recommender runs)
            "kind": "serving-cost", "dataset": "movielens",
            "command": "python benchmarks/serving_cost.py " + " ".join(argv),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "env": environment(args.threads), "note": NOTE,
            "candidates": candidate_cost(n, maxlen, 64, [10, 100, 1000, n], args.repeats,
                                         args.seed),
            "kv_cache": kv_cache_cost(n, args.lengths, 64, 10, args.repeats, args.seed),
            "ann": {"MovieLens SASRec items": ann_cost(items, users.numpy()[:args.queries],
                                                       args.repeats)}}
        synth = synthetic_catalogue(args.catalogue, 64, args.queries, args.seed)  # 256 MB at 1M
        result["ann"]["synthetic (1,000 Gaussian clusters, spread 1)"] = ann_cost(
            *synth, args.repeats)
        del synth
        result["quantization"] = quantization_cost(model, split, maxlen, args.repeats, args.seed)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    section = markdown(result)
    print(section)
    if args.markdown is not None:
        text = args.markdown.read_text() if args.markdown.exists() else ""
        args.markdown.write_text(splice(text, section))
    print(f"wrote {args.out or 'no JSON'} and "
          f"{'the serving-cost section of ' + str(args.markdown) if args.markdown else 'no markdown'}")
    return result


if __name__ == "__main__":
    main()
