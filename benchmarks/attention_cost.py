"""Time and peak memory of attention against sequence length L (issue 9, lesson 07).

Usage::

    python benchmarks/attention_cost.py --threads 1    # CPU, L = 16 .. 4096
    python benchmarks/attention_cost.py --device cuda  # GPU, bfloat16 (flash needs 16-bit)
    python benchmarks/attention_cost.py --quick        # L <= 512, seconds, prints the markdown
    python benchmarks/attention_cost.py --render-only  # rebuild the BENCHMARKS.md section

Every method attends over ``B * H`` independent heads, no mask, on the
same seeded q, k, v: ``reference`` (``attention.scaled_dot_product_attention``,
builds the L x L weights), ``sdpa`` (PyTorch's dispatch) and ``sdpa-<backend>``
(forced with ``torch.nn.attention.sdpa_kernel``; backends the device lacks are
reported unavailable), ``tiled`` (``online_softmax.tiled_attention``, a Python
loop over key blocks), ``linear`` (kernelised: another model) and ``local``
(exact softmax attention over a band of +-window positions).

What is measured. Time: the median block of ``torch.utils.benchmark.Timer
.blocked_autorange`` (warm-up, CUDA synchronisation, at least
``--min-run-time`` seconds, torch's thread count). Peak memory of one call,
beyond what was allocated before it (inputs excluded, output included): on
CUDA ``torch.cuda.max_memory_allocated()``; on CPU the maximum running sum of
the allocations and frees that ``torch.profiler`` (``profile_memory=True``)
records from PyTorch's CPU allocator. Neither counts Python objects or a BLAS
library's private scratch memory; neither is an analytic estimate.

Once a method's peak, extrapolated along the log-log line through its last
two lengths, would pass ``--max-bytes`` (a budget, not the machine's RAM), it
is skipped from that length on and reported; so is a method that runs out of
memory. ``slope``: least-squares fit of log(time) or log(memory) on log(L)
over the upper half of the measured lengths (2 = quadratic). Raw results go
to ``benchmarks/results/attention-cost-<device>.json``, the markdown between
the ``attention-cost`` markers of BENCHMARKS.md (appended when missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_cost_report import (  # noqa: E402  (fits and tables: pure functions, tested)
    END, START, _fmt_bytes, fit_slope, predict_peak, render_section, splice,
)
from recommender import environment  # noqa: E402  (the same record as the other benchmarks)

RESULTS = ROOT / "benchmarks" / "results"
BACKENDS = {"math": "MATH", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
            "cudnn": "CUDNN_ATTENTION"}
__all__ = ["CostConfig", "START", "END", "fit_slope", "predict_peak", "run_cost", "render_section", "splice", "main"]


@dataclass(frozen=True)
class CostConfig:
    lengths: tuple[int, ...] = tuple(2 ** i for i in range(4, 13))  # L = 16, 32, ..., 4096
    batch: int = 1  # B
    heads: int = 4  # H: B * H independent attentions per call
    head_dim: int = 64  # Dh
    device: str = "cpu"
    dtype: str = "float32"  # the script picks bfloat16 on CUDA (its flash backend needs 16-bit)
    min_run_time: float = 0.5  # seconds of timing per (method, L)
    max_bytes: int = 512 * 2 ** 20  # memory budget: a method predicted above it is skipped
    block_size: int = 128  # keys per step of `tiled`, queries per step of `local`
    window: int = 64  # `local` sees positions i - window .. i + window
    methods: tuple[str, ...] | None = None  # None: all of METHOD_NAMES
    seed: int = 0

    @classmethod
    def quick(cls, **changes) -> "CostConfig":
        """L up to 512 and short timings: seconds, for the lesson and the tests."""
        return replace(cls(lengths=(16, 32, 64, 128, 256, 512), min_run_time=0.02), **changes)


METHOD_NAMES = ("reference", "sdpa", *(f"sdpa-{b}" for b in BACKENDS), "tiled", "linear", "local")


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------
def method_fns(cfg: CostConfig) -> dict:
    """name -> fn(q, k, v) returning the output ``(B, H, L, Dh)``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from recattn_lessons.attention import scaled_dot_product_attention
    from recattn_lessons.online_softmax import linear_attention, local_window_attention, tiled_attention

    def forced(backend: str):
        def fn(q, k, v):
            with sdpa_kernel([getattr(SDPBackend, backend)]):
                return F.scaled_dot_product_attention(q, k, v)
        return fn

    fns = {"reference": lambda q, k, v: scaled_dot_product_attention(q, k, v)[0],
           "sdpa": F.scaled_dot_product_attention,
           **{f"sdpa-{b}": forced(name) for b, name in BACKENDS.items()},
           "tiled": lambda q, k, v: tiled_attention(q, k, v, block_size=cfg.block_size),
           "linear": linear_attention,
           "local": lambda q, k, v: local_window_attention(q, k, v, cfg.window, block_size=cfg.block_size)}
    unknown = sorted(set(cfg.methods or ()) - set(fns))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(fns)}")
    return {m: fns[m] for m in (cfg.methods or fns)}


@contextlib.contextmanager
def quiet_native_stderr():
    """Mute C-level stderr for a block: torch.profiler's kineto logs two
    ``USDT ... profiler_start/stop`` lines per call, which no setting silences."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_bytes(fn, q, k, v) -> int:
    """Peak bytes allocated by PyTorch during one call, beyond what was live before it."""
    if q.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(q, k, v)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(q, k, v)
    stack, allocs = list(prof.profiler.kineto_results.experimental_event_tree()), []
    while stack:  # every allocation and free, wherever it sits in the tree of ops
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            allocs.append((node.start_time_ns, node.extra_fields.alloc_size))  # < 0: a free
    live = peak = 0
    for _, size in sorted(allocs):
        live += size
        peak = max(peak, live)
    return peak


def time_call(fn, q, k, v, min_run_time: float) -> dict:
    from torch.utils.benchmark import Timer

    t = Timer("fn(q, k, v)", globals={"fn": fn, "q": q, "k": k, "v": v},
              num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time)
    return {"median_s": t.median, "iqr_s": t.iqr, "calls": t.number_per_run * len(t.times)}


def _reason(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:120]  # 1st sentence


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None  # 1 min


def run_cost(cfg: CostConfig, progress: bool = True) -> dict:
    """Measure every method at every length; the JSON-ready result (writes no file)."""
    from recattn_lessons.progress import tqdm

    env, dtype = {**environment(cfg.device), "loadavg_1m": _load()}, getattr(torch, cfg.dtype)

    def qkv(L):  # the same inputs for every method at one L
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + L)
        x = torch.randn(3, cfg.batch, cfg.heads, L, cfg.head_dim, generator=g)
        return x.to(cfg.device, dtype).unbind(0)  # q, k, v: (B, H, L, Dh) each

    fns, methods = method_fns(cfg), {}
    for name, fn in fns.items():  # a backend the device or dtype lacks raises here
        try:
            fn(*qkv(16))
            methods[name] = {"available": True}
        except RuntimeError as e:
            methods[name] = {"available": False, "reason": _reason(e)}
    results, measured, stopped = [], {m: [] for m in fns}, {}  # measured: [(L, peak bytes)]
    jobs = [(L, m) for L in cfg.lengths for m in fns if methods[m]["available"]]
    for L, m in tqdm(jobs, desc="attention cost", unit="point", disable=not progress):
        pred = predict_peak(measured[m], L)
        if m not in stopped and pred is not None and pred > cfg.max_bytes:
            stopped[m] = ("skipped",
                          f"predicted peak {_fmt_bytes(pred)} > cap {_fmt_bytes(cfg.max_bytes)}")
        if m in stopped:
            results.append({"method": m, "L": L, "status": stopped[m][0], "reason": stopped[m][1]})
            continue
        q, k, v = qkv(L)
        try:
            row = {"method": m, "L": L, "status": "ok", "peak_bytes": peak_bytes(fns[m], q, k, v),
                   **time_call(fns[m], q, k, v, cfg.min_run_time)}
        except (torch.OutOfMemoryError, RuntimeError) as e:  # CPU allocators raise RuntimeError
            if "memory" not in str(e):
                raise
            stopped[m] = ("oom", f"out of memory: {_reason(e)}")
            if q.is_cuda:
                torch.cuda.empty_cache()
            results.append({"method": m, "L": L, "status": "oom", "reason": stopped[m][1]})
            continue
        measured[m].append((L, row["peak_bytes"]))
        results.append(row)
    slopes = {}
    for m in fns:
        ok = [r for r in results if r["method"] == m and r["status"] == "ok"]
        Ls = [r["L"] for r in ok]
        slopes[m] = {"time": fit_slope(Ls, [r["median_s"] for r in ok]), "fit_lengths": Ls[len(Ls) // 2:],
                     "memory": fit_slope(Ls, [r["peak_bytes"] for r in ok])}
    env["loadavg_1m_after"] = _load()
    return {"kind": "attention-cost", "env": env, "config": asdict(cfg),
            "methods": methods, "results": results, "slopes": slopes}


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true",
                   help="L <= 512, short timings; writes files only where --out / --markdown say")
    p.add_argument("--lengths", nargs="+", type=int, help="sequence lengths L")
    p.add_argument("--methods", nargs="+", choices=METHOD_NAMES)
    p.add_argument("--dtype", choices=["float32", "float64", "float16", "bfloat16"])
    p.add_argument("--max-bytes", type=float, help="memory cap in bytes (default 512 MiB)")
    p.add_argument("--min-run-time", type=float, help="seconds of timing per point")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", type=Path, help="JSON file (default results/attention-cost-<device>.json)")
    p.add_argument("--markdown", type=Path, help="markdown file to splice into (default BENCHMARKS.md)")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder --render-only reads")
    p.add_argument("--render-only", action="store_true", help="only rebuild the markdown section")
    args = p.parse_args(argv)
    blob, markdown = None, args.markdown or (None if args.quick else ROOT / "BENCHMARKS.md")
    if args.render_only:
        blobs = [json.loads(f.read_text()) for f in sorted(args.results.glob("attention-cost-*.json"))]
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        dtype = args.dtype or ("bfloat16" if args.device == "cuda" else None)
        changes = dict(device=args.device, lengths=args.lengths and tuple(args.lengths), dtype=dtype,
                       methods=args.methods and tuple(args.methods), min_run_time=args.min_run_time,
                       max_bytes=args.max_bytes and int(args.max_bytes))
        changes = {k: v for k, v in changes.items() if v is not None}
        cfg = CostConfig.quick(**changes) if args.quick else replace(CostConfig(), **changes)
        argv = sys.argv[1:] if argv is None else argv
        blob = {**run_cost(cfg), "command": " ".join(["python benchmarks/attention_cost.py", *argv])}
        out = args.out or (None if args.quick else RESULTS / f"attention-cost-{args.device}.json")
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(blob, indent=1) + "\n")
            print(f"wrote {out}")
        blobs = [blob]
    section = render_section(blobs)
    if markdown is None:
        print(section)
    else:
        markdown.write_text(splice(markdown.read_text() if markdown.exists() else "", section))
        print(f"wrote {markdown}")
    return blob


if __name__ == "__main__":
    main()
