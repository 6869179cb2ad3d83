"""The HTTP API and the serve command line (issue 9)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import warnings

import httpx
import pytest

with warnings.catch_warnings():  # starlette >= 1.x prefers httpx2; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from recattn_lessons.serve import main
from recattn_lessons.serving import BatchConfig, Recommender, create_app
from recattn_lessons.train import TrainConfig, run
from ring_data import N_ITEMS, ring

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rec():
    """A 2-epoch SASRec on 30 users walking a ring of 40 items."""
    data = ring()
    config = TrainConfig(maxlen=8, d_model=16, batch_size=8, epochs=2, min_epochs=2,
                         progress=False, device="cpu", eval_batch_size=16, n_sampled=10)
    return Recommender.from_result(run(config, data=data))


@pytest.fixture(scope="module", params=["batched", "unbatched"])
def client(rec, request):
    batching = BatchConfig() if request.param == "batched" else None
    app = create_app(rec, max_history=20, batching=batching)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_overload_is_a_503_json_not_a_500(rec):
    """Model busy: a request that waits too long, then one that finds the queue full."""
    app = create_app(rec, batching=BatchConfig(max_batch=1, max_wait_ms=0, max_queue=1,
                                               timeout_s=0.2))
    with TestClient(app, raise_server_exceptions=False) as c:
        with rec.lock:
            waits = c.post("/recommend", json={"history": [1]})  # taken by the worker
            queued = c.post("/recommend", json={"history": [2]})  # stays queued
            refused = c.post("/recommend", json={"history": [3]})  # the queue is full
        for r in (waits, queued, refused):
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert waits.json() == queued.json() == {"error": "no answer within 0.2 s; retry shortly",
                                                 "detail": []}
        assert refused.json()["error"].startswith("too many requests waiting (1)")
        deadline = time.monotonic() + 10
        while app.state.batcher.queued and time.monotonic() < deadline:  # the backlog drains
            time.sleep(0.01)
        r = c.post("/recommend", json={"history": [3], "k": 2})  # the model is free again
        assert r.status_code == 200
        assert [x["item_id"] for x in r.json()["items"]] == [i for i, _ in rec.recommend([3], 2)]


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model": "sasrec", "n_items": N_ITEMS, "maxlen": 8}


def test_recommend_matches_the_recommender(client, rec):
    r = client.post("/recommend", json={"history": [3, 4, 6], "k": 5})
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(x["item_id"], x["score"]) for x in items] == rec.recommend([3, 4, 6], k=5)
    assert [x["title"] for x in items] == [rec.titles[x["item_id"]] for x in items]
    assert items[0]["title"].startswith("item ")
    assert not {3, 4, 6} & {x["item_id"] for x in items}


def test_recommend_defaults_and_options(client, rec):
    r = client.post("/recommend", json={"history": [5]})
    assert [x["item_id"] for x in r.json()["items"]] == [i for i, _ in rec.recommend([5], k=10)]
    r = client.post("/recommend", json={"history": [5], "k": 40, "exclude_seen": False})
    assert 5 in {x["item_id"] for x in r.json()["items"]} and len(r.json()["items"]) == 40
    r = client.post("/recommend", json={"history": [], "k": 3})  # popularity
    assert [(x["item_id"], x["score"]) for x in r.json()["items"]] == rec.recommend([], k=3)


BAD = [
    ({"history": [0, 41], "k": 3}, "unknown item ids [0, 41]: valid ids are integers 1..40"),
    ({"history": [-2]}, "unknown item ids [-2]"),
    ({"history": [1], "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"history": [1], "k": 41}, "k: Input should be less than or equal to 40"),
    ({"history": [1], "k": "5"}, "k: Input should be a valid integer"),
    ({"history": [1], "k": 2.5}, "k: Input should be a valid integer"),
    ({"history": [1, 2.5]}, "history.1: Input should be a valid integer"),
    ({"history": [1.0]}, "history.0: Input should be a valid integer"),
    ({"history": ["3"]}, "history.0: Input should be a valid integer"),
    ({"history": [True]}, "history.0: Input should be a valid integer"),
    ({"history": [None]}, "history.0: Input should be a valid integer"),
    ({"history": "1,2"}, "history: Input should be a valid list"),
    ({"history": list(range(1, 22))}, "history: List should have at most 20 items"),
    ({"k": 3}, "history: Field required"),
    ({"history": [1], "hist": [2]}, "hist: Extra inputs are not permitted"),
    ({"history": [1], "exclude_seen": "no"}, "exclude_seen: Input should be a valid boolean"),
    ([1, 2], "body: Input should be a valid dictionary"),
]


@pytest.mark.parametrize("body, message", BAD, ids=[m.split(":")[0] + str(i)
                                                    for i, (_, m) in enumerate(BAD)])
def test_bad_input_is_a_422_naming_it(client, body, message):
    r = client.post("/recommend", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]


@pytest.mark.parametrize("content, message", [
    ('{"history": [1', "body is not valid JSON"),
    ("", "body: Field required"),
    ("null", "body: Input should be a valid dictionary"),
    ('{"history": [1e999]}', "history.0: Input should be a valid integer"),
])
def test_broken_json_is_a_422(client, content, message):
    r = client.post("/recommend", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]


def test_wrong_method_and_path_are_4xx(client):
    assert client.get("/recommend").status_code == 405
    assert client.post("/nothing", json={}).status_code == 404


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--run", str(tmp_path / "missing")])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "cannot load" in message and "no metrics.json" in message
    assert len(message.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path), "--port", "70000"])
    assert "--port must be in 0..65535" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path), "--max-batch", "0"])
    assert "max_batch and max_queue must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path), "--batching", "maybe"])
    assert "invalid choice: 'maybe'" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_over_http(tmp_path):
    """The real command on 127.0.0.1: poll /health, ask once, stop it."""
    run(TrainConfig(model="popularity", progress=False, device="cpu", out=str(tmp_path)))
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "recattn_lessons.serve", "--run",
                                 str(tmp_path), "--port", str(port)], cwd=ROOT, env=env,
                                stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, health = time.monotonic() + 60, None
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert health == {"status": "ok", "model": "popularity", "n_items": 9066,
                          "maxlen": 50}, log.read_text()
        r = httpx.post(f"{url}/recommend", json={"history": [], "k": 2}, timeout=10)
        assert [x["title"] for x in r.json()["items"]] == ["Forrest Gump (1994)",
                                                          "Pulp Fiction (1994)"]
        bad = httpx.post(f"{url}/recommend", json={"history": [9067]}, timeout=10)
        assert bad.status_code == 422 and "9067" in bad.json()["error"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert f"at http://127.0.0.1:{port}" in log.read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == "popularity"


def test_cli_freezes_startup_objects_out_of_the_garbage_collector(tmp_path, monkeypatch):
    """A full GC pass over torch's and the model's objects stalled every in-flight
    request by ~100 ms (the load test's p99); the server freezes them before serving."""
    import gc

    import uvicorn

    run(TrainConfig(model="popularity", progress=False, device="cpu", out=str(tmp_path)))
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(("run", kw["host"])))
    main(["--run", str(tmp_path)])
    assert calls == ["freeze", ("run", "127.0.0.1")]  # frozen before serving, on loopback
