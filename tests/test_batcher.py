"""Micro-batching: concurrent requests, one forward pass, the same answers (lesson 07)."""

import asyncio
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from recattn_lessons.models import SASRec, SASRecConfig
from recattn_lessons.serving import BatchConfig, MicroBatcher, Overloaded, Recommender, create_app

N = 50


@pytest.fixture(scope="module")
def rec():
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=N, maxlen=10, d_model=16, n_heads=2))
    return Recommender(model, popularity=torch.arange(N + 1.0))


def requests(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(0, 15, (1,), generator=g))  # 0: popularity
        history = torch.randint(1, N + 1, (length,), generator=g).tolist()
        out.append((history, 1 + i % 9, i % 4 != 0))
    return out


def assert_same(got, want):
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_concurrent_requests_equal_one_by_one(rec):
    work = requests(120)
    want = [rec.recommend(*w) for w in work]
    batcher = MicroBatcher(rec, BatchConfig(max_batch=16, max_wait_ms=5))
    try:
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(lambda w: batcher.recommend(*w), work))
    finally:
        batcher.close()
    for g, w in zip(got, want):
        assert_same(g, w)
    sizes = list(batcher.batch_sizes)
    assert sum(sizes) == len(work) and max(sizes) <= 16
    assert max(sizes) > 1  # twelve threads at once: some requests shared a pass


def test_requests_that_arrive_together_share_a_batch(rec):
    batcher = MicroBatcher(rec, BatchConfig(max_batch=8, max_wait_ms=500))
    work = requests(20, seed=1)
    with rec.lock:  # the worker takes the first request and waits on the model
        futures = [batcher.submit(*w) for w in work]
    answers = [f.result(timeout=10) for f in futures]
    batcher.close()
    assert list(batcher.batch_sizes) == [8, 8, 4]  # FIFO, up to max_batch per pass
    for a, w in zip(answers, work):
        assert_same(a, rec.recommend(*w))


def test_bad_requests_fail_at_submit_and_do_not_touch_the_batch(rec):
    batcher = MicroBatcher(rec)
    with pytest.raises(ValueError, match=rf"unknown item ids \[0, {N + 1}\]"):
        batcher.submit([1, 0, N + 1])
    with pytest.raises(ValueError, match="k must be an integer"):
        batcher.submit([1], k=N + 1)
    assert batcher.recommend([4, 5], k=3) == rec.recommend([4, 5], k=3)
    batcher.close()


def test_full_queue_and_timeout_are_overloaded(rec):
    batcher = MicroBatcher(rec, BatchConfig(max_batch=1, max_wait_ms=0, max_queue=2))
    with rec.lock:  # the model is busy: nothing leaves the queue
        first = batcher.submit([1])
        deadline = time.monotonic() + 5
        while batcher.queued and time.monotonic() < deadline:  # worker took it
            time.sleep(0.001)
        queued = [batcher.submit([2]), batcher.submit([3])]
        with pytest.raises(Overloaded, match=r"too many requests waiting \(2\)"):
            batcher.submit([4])
        with pytest.raises(Overloaded, match="too many requests waiting"):
            batcher.recommend([5], timeout=0.05)
        assert queued[0].cancel()  # a caller that gave up
    assert first.result(timeout=10) == rec.recommend([1])
    assert queued[1].result(timeout=10) == rec.recommend([3])
    assert list(batcher.batch_sizes) == [1, 1]  # the cancelled request was skipped
    with rec.lock:
        with pytest.raises(Overloaded, match="no answer within 0.05 s"):
            batcher.recommend([6], timeout=0.05)
    batcher.close()
    with pytest.raises(Overloaded, match="shutting down"):
        batcher.submit([1])


def test_config_checks():
    with pytest.raises(ValueError, match="max_batch and max_queue"):
        BatchConfig(max_batch=0)
    with pytest.raises(ValueError, match="timeout_s > 0"):
        BatchConfig(timeout_s=0)


def test_the_app_batches_concurrent_requests(rec):
    """64 concurrent HTTP requests: the same answers as one-by-one recommend."""
    app = create_app(rec, batching=BatchConfig(max_batch=16, max_wait_ms=5))
    work = requests(64, seed=2)

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/recommend", json={
                "history": h, "k": k, "exclude_seen": ex}) for h, k, ex in work))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        responses = asyncio.run(send_all())
    app.state.batcher.close()
    for r, w in zip(responses, work):
        assert r.status_code == 200, r.text
        assert_same([(x["item_id"], x["score"]) for x in r.json()["items"]], rec.recommend(*w))
    assert max(app.state.batcher.batch_sizes) > 1
