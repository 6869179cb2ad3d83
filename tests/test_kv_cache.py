"""KV-cached sessions equal a fresh ``recommend`` after every append (lesson 07)."""

import pandas as pd
import pytest
import torch

from recattn_lessons import models
from recattn_lessons.data import interactions_from_frame
from recattn_lessons.models import SASRec, SASRecConfig
from recattn_lessons.serving import Recommender
from recattn_lessons.serving.session import KVCache, extend
from recattn_lessons.train import TrainConfig, run
from recattn_lessons.train.cli import parser

N = 60


def sasrec(seed=0, **kw) -> SASRec:
    """A random SASRec whose LayerNorms and biases are moved off their init."""
    cfg = {"n_items": N, "maxlen": 8, "d_model": 16, "n_heads": 2, "n_blocks": 2, "d_ff": 24,
           "dropout": 0.3, "positions": "left", **kw}
    torch.manual_seed(seed)
    m = SASRec(SASRecConfig(**cfg))
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def events(n, seed=0):
    return torch.randint(1, N + 1, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def assert_same(got, want, atol=1e-4):
    assert [i for i, _ in got] == [i for i, _ in want]
    assert max(abs(a - b) for (_, a), (_, b) in zip(got, want)) < atol


@pytest.mark.parametrize("kw", [
    {}, {"n_heads": 1, "n_blocks": 1}, {"n_heads": 4, "n_blocks": 3, "attention": "reference"},
    {"maxlen": 5, "d_model": 8, "n_heads": 2}])
@pytest.mark.parametrize("start", [0, 1, 3])
def test_session_equals_recommend_after_every_append(kw, start):
    rec = Recommender(sasrec(**kw), popularity=torch.arange(N + 1.0))
    history = events(20, seed=start)
    session = rec.session(history[:start])
    assert session.cached and session.reason is None
    assert_same(session.top(10), rec.recommend(history[:start], 10))  # popularity if empty
    for t in range(start, len(history)):
        session.append(history[t])
        seen = history[:t + 1]
        assert session.history == seen
        assert_same(session.top(N - len(set(seen))), rec.recommend(seen, N - len(set(seen))))
        assert_same(session.top(7, exclude_seen=False), rec.recommend(seen, 7, exclude_seen=False))
    maxlen = rec.model.cfg.maxlen
    assert session.rebuilds == len(history) - max(maxlen, start)  # one per slide past maxlen


def test_extend_is_the_forward_pass_in_float64():
    m = sasrec(n_heads=4, n_blocks=3).double()
    items = torch.tensor(events(8, seed=3))
    want = m.forward(items[None])[0]  # (8, D) every position, no padding
    cache = KVCache(m)
    assert torch.allclose(extend(m, cache, items[:5]), want[4], atol=1e-12)  # prefill
    for t in range(5, 8):  # then one step at a time
        assert torch.allclose(extend(m, cache, items[t:t + 1]), want[t], atol=1e-12)
    assert cache.length == 8
    with pytest.raises(ValueError, match="maxlen=8; rebuild"):
        extend(m, cache, items[:1])
    with pytest.raises(ValueError, match="model.eval"):
        extend(m.train(), KVCache(m), items)


@pytest.mark.parametrize("positions, moves", [("left", False), ("right", True)])
def test_why_right_positions_cannot_be_cached(positions, moves):
    """An append changes the earlier states exactly when positions move."""
    m = sasrec(positions=positions).double()
    x = torch.tensor([events(6, seed=1)])  # (1, 6)
    with torch.no_grad():
        before = m.forward(x[:, :5])[0]  # (5, D) states of the first five
        after = m.forward(x)[0, :5]  # the same five after one append
    assert torch.allclose(before, after, atol=1e-12) != moves


def test_left_positions_do_not_depend_on_padding():
    m = sasrec().double()
    x = torch.tensor([events(5, seed=2)])  # (1, 5)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)  # (1, 8)
    with torch.no_grad():
        assert torch.allclose(m.score(x), m.score(padded), atol=1e-12)
        assert torch.equal(m.positions(padded != 0), torch.tensor([[0, 0, 0, 0, 1, 2, 3, 4]]))


@pytest.mark.parametrize("model", [sasrec(positions="right"),
                                   models.build("din", N, maxlen=8, d_model=16).eval()])
def test_uncacheable_models_recompute_and_say_why(model):
    rec = Recommender(model)
    history = events(12, seed=4)
    session = rec.session(history[:2])
    assert not session.cached
    assert ("positions move" in session.reason) == isinstance(model, SASRec)
    for item in history[2:]:
        session.append(item)
        assert session.top(10) == rec.recommend(session.history, 10)  # the same computation
    assert session.rebuilds == 0


def test_bad_input():
    rec = Recommender(sasrec())
    with pytest.raises(ValueError, match=rf"unknown item ids \[0\].*1..{N}"):
        rec.session([0])
    session = rec.session([1, 2])
    with pytest.raises(ValueError, match=rf"unknown item ids \[{N + 1}\]"):
        session.append(N + 1)
    with pytest.raises(ValueError, match="k must be an integer"):
        session.top(0)
    assert session.history == [1, 2]
    with pytest.raises(ValueError, match="positions must be 'right' or 'left'"):
        SASRecConfig(n_items=3, positions="relative")


def test_positions_left_through_the_cli_and_a_checkpoint(tmp_path):
    args = parser().parse_args(["--model", "sasrec", "--model-arg", "positions=left"])
    assert args.model_args == [("positions", "left")]
    g = torch.Generator().manual_seed(0)
    rows = [(u, int(torch.randint(1, 31, (1,), generator=g)), t)
            for u in range(20) for t in range(10)]
    data = interactions_from_frame(pd.DataFrame(rows, columns=["userId", "movieId", "timestamp"]))
    cfg = TrainConfig(maxlen=6, d_model=8, batch_size=16, epochs=1, min_epochs=1, progress=False,
                      device="cpu", eval_batch_size=32, n_sampled=5, out=str(tmp_path),
                      model_args=dict(args.model_args))
    run(cfg, data=data)
    rec = Recommender.from_run(tmp_path, data=data)
    assert rec.model.cfg.positions == "left"
    session = rec.session([3, 4, 5])
    session.append(6)
    assert session.cached
    assert_same(session.top(10), rec.recommend([3, 4, 5, 6], 10))
