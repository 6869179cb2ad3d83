"""benchmarks/serving_load.py: the BENCHMARKS.md section built from its result files."""

import importlib.util
import json
from pathlib import Path

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "serving_load.py"
spec = importlib.util.spec_from_file_location("bench_serving_load", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def result(batching, client, p99):
    phase = {"concurrency": 32, "requests": 2000, "errors": 0, "p50_ms": 20.0, "p95_ms": 30.0,
             "p99_ms": p99, "throughput_rps": 1300.0}
    return {"kind": "serving-load", "settings": {"batching": batching, "client": client},
            "phases": [phase], "load_average": {"before": [1.2, 1.0, 1.0]}}


def test_one_row_per_file_and_phase_naming_server_and_client(tmp_path):
    (tmp_path / "serving-cpu.json").write_text(json.dumps(result("on", "raw", 36.7)))
    (tmp_path / "serving-cpu-unbatched.json").write_text(json.dumps(result("off", "raw", 133.4)))
    (tmp_path / "serving-cost-cpu.json").write_text(json.dumps({"kind": "serving-cost"}))  # not ours
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n")
    bench.write_section(tmp_path, md)
    text = md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| micro") or line.startswith("| one")]
    assert rows == ["| one request at a time | raw | 32 | 2,000 | 0 | 20.0 | 30.0 | 133.4 | 1300.0 | 1.2 |",
                    "| micro-batching | raw | 32 | 2,000 | 0 | 20.0 | 30.0 | 36.7 | 1300.0 | 1.2 |"]
    bench.write_section(tmp_path, md)  # idempotent: one section
    assert md.read_text() == text and text.startswith("# Benchmarks\n") and text.count(bench.START) == 1
