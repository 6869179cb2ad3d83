"""Item side information fused with ids in SASRec (issue 11, part 5; lesson 09).

The fixture :func:`two_genres` has two groups of 40 items: group A ("Action",
titles "Alpha k") and group B ("Drama", "Beta k"). Every user draws items from one
group only, and the last 2 items of each group (39, 40 and 79, 80) occur in no
sequence at all: cold items whose ids were never a training target. Only their
features say which group they belong to.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from recattn_lessons import models
from recattn_lessons.data import Interactions
from recattn_lessons.data.item_features import cold_items, feature_tokens
from recattn_lessons.data.splits import histories
from recattn_lessons.models.item_encoder import FUSIONS, ItemEncoder, cross_attention_fusion
from recattn_lessons.models.sasrec import SASRec, SASRecConfig
from recattn_lessons.train import TrainConfig, run
from recattn_lessons.train.checkpoint import load_checkpoint, save_checkpoint
from recattn_lessons.train.cli import main as cli_main
from recattn_lessons.train.cli import parser

N_PER, N_COLD = 40, 2
COLD_A, COLD_B = [39, 40], [79, 80]


def two_genres(n_users: int = 80, length: int = 16, seed: int = 0) -> Interactions:
    g = torch.Generator().manual_seed(seed)
    N = 2 * N_PER
    titles = ["<pad>"] + [f"{'Alpha' if i < N_PER else 'Beta'} {i % N_PER} (2001)" for i in range(N)]
    genres = [""] + ["Action" if i < N_PER else "Drama" for i in range(N)]
    seqs = []
    for u in range(n_users):
        warm = torch.arange(1, N_PER - N_COLD + 1) + (u % 2) * N_PER  # (38,) this user's group
        seqs.append(warm[torch.randperm(len(warm), generator=g)[:length]])
    return Interactions(sequences=seqs, n_users=n_users, n_items=N, titles=titles, genres=genres,
                        raw_item_ids=[-1] + list(range(N)), raw_user_ids=list(range(n_users)),
                        n_tied=0, n_tie_groups=0)


def quick(**changes) -> TrainConfig:
    base = dict(maxlen=8, d_model=16, lr=1e-2, epochs=10, min_epochs=10, dropout=0.1,
                n_sampled=20, progress=False)
    return TrainConfig.quick(**{**base, **changes})


@pytest.fixture(scope="module")
def data() -> Interactions:
    return two_genres()


@pytest.fixture(scope="module")
def tokens(data) -> torch.Tensor:
    return feature_tokens(data)[0]


# -- features as data ----------------------------------------------------------------

def test_feature_tokens_one_per_genre_then_title_words(data):
    tok, vocab = feature_tokens(data)
    assert tok.shape == (data.n_items + 1, 3) and tok.dtype == torch.long  # genre, alpha/beta, k
    assert vocab[0] == "<pad>" and (tok[0] == 0).all()
    assert [vocab[t] for t in tok[1]] == ["genre:Action", "title:alpha", "title:0"]
    assert [vocab[t] for t in tok[80]] == ["genre:Drama", "title:beta", "title:39"]
    only_genres, names = feature_tokens(data, ("genres",))
    assert only_genres.shape == (81, 1) and names == ["<pad>", "genre:Action", "genre:Drama"]
    with pytest.raises(ValueError, match="kinds"):
        feature_tokens(data, ("colour",))


def test_feature_tokens_left_aligned_and_unknown_words_dropped(data):
    import dataclasses
    titles = list(data.titles)
    titles[5] = "Zyzzyva (1999)"  # a word of one title only: <unk>, dropped
    tok, _ = feature_tokens(dataclasses.replace(data, titles=titles))
    assert tok[5].tolist() == [tok[1, 0].item(), 0, 0]  # the genre alone, left-aligned


def test_cold_items_are_at_most_three_training_interactions():
    seqs = [torch.tensor([1, 1, 2, 2, 2, 2]), torch.tensor([1, 3])]
    cold = cold_items(seqs, n_items=4)  # counts: 1 -> 3, 2 -> 4, 3 -> 1, 4 -> 0
    assert cold.tolist() == [False, True, False, True, True]  # the padding item is never cold


# -- the default path is lesson 05's model ----------------------------------------------

def test_default_sasrec_has_no_feature_parameters_and_features_do_not_change_its_init(tokens):
    cfg = SASRecConfig(n_items=80, maxlen=8, d_model=16)
    torch.manual_seed(0)
    plain = SASRec(cfg)
    torch.manual_seed(0)
    fused = SASRec(cfg, item_tokens=tokens)
    assert plain.features is None and not any("features" in k for k in plain.state_dict())
    for name, value in plain.state_dict().items():  # created first, initialised alike
        assert torch.equal(value, fused.state_dict()[name]), name
    assert torch.equal(plain.item_table(), plain.item_emb.weight)
    h = torch.randint(0, 81, (3, 8))
    plain.eval()
    assert torch.allclose(plain.score(h), plain(h)[:, -1] @ plain.item_emb.weight.T)


# -- each fusion -----------------------------------------------------------------------

@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_shapes_padding_row_and_gradients(tokens, fusion):
    torch.manual_seed(0)
    m = models.build("sasrec", 80, item_tokens=tokens, maxlen=8, d_model=16, fusion=fusion).eval()
    table = m.item_table()
    assert table.shape == (81, 16) and (table[0] == 0).all()
    assert m.state_dict()["features.tokens"].shape == tokens.shape  # data travel as a buffer
    h = torch.randint(0, 81, (4, 8))
    full = m.score(h)  # (4, 81)
    c = torch.randint(1, 81, (4, 5))
    assert full.shape == (4, 81) and torch.allclose(m.score(h, c), full.gather(1, c))
    assert torch.allclose(full, m(h)[:, -1] @ table.T)  # the same table on both sides
    batch = type("Batch", (), {"inputs": h, "targets": torch.randint(1, 81, (4, 8)), "negatives": None})
    m.train().loss(batch).backward()
    assert m.features.feature_emb.weight.grad.abs().sum() > 0


def test_bce_loss_uses_the_fused_table(tokens):
    torch.manual_seed(0)
    m = models.build("sasrec", 80, item_tokens=tokens, maxlen=8, d_model=16, loss="bce", n_negatives=2)
    batch = type("Batch", (), {"inputs": torch.randint(0, 81, (4, 8)), "targets": torch.randint(1, 81, (4, 8)),
                               "negatives": torch.randint(1, 81, (4, 8, 2))})
    m.loss(batch).backward()
    assert m.features.feature_emb.weight.grad.abs().sum() > 0


def test_fused_item_embeds_the_history_too(tokens):
    torch.manual_seed(0)
    m = models.build("sasrec", 80, item_tokens=tokens, maxlen=8, d_model=16, dropout=0.0).eval()
    h = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3]])
    before = m(h)
    with torch.no_grad():
        m.features.feature_emb.weight[tokens[3, 0]] += 1.0  # item 3's genre (shared by 1 and 2)
    assert not torch.allclose(m(h), before)


def test_cross_attention_masks_padding_and_equals_brute_force():
    torch.manual_seed(0)
    N, D, V = 6, 8, 10
    tok = torch.tensor([[0, 0, 0], [1, 2, 0], [3, 0, 0], [4, 5, 6], [0, 0, 0], [7, 0, 0]])
    enc = ItemEncoder(tok, V, D, "cross").double()
    ids = torch.randn(N, D, dtype=torch.float64)
    out, w = enc(ids, return_weights=True)  # (N, D), (N, T)
    real = tok != 0
    assert (w[~real] == 0).all() and torch.allclose(w[real.any(1)].sum(1), torch.ones(4, dtype=w.dtype))
    assert torch.equal(out[4], ids[4])  # no tokens: the id alone
    for i in range(1, N):  # brute force: the course's MultiHeadAttention on the real tokens only
        feats = enc.feature_emb(tok[i][real[i]])[None]  # (1, n_i, D)
        if feats.shape[1] == 0:
            continue
        att, wi = enc.attn(ids[i].view(1, 1, D), feats, feats)  # (1, 1, D), (1, 1, 1, n_i)
        assert torch.allclose(out[i], ids[i] + att[0, 0])
        assert torch.allclose(w[i][real[i]], wi.flatten())
    with torch.no_grad():  # the reference function is the encoder without W_o
        enc.attn.W_o.weight.copy_(torch.eye(D, dtype=torch.float64))
    a = enc.attn
    ref, ref_w = cross_attention_fusion(ids, enc.feature_emb(tok), real, a.W_q.weight.T,
                                        a.W_k.weight.T, a.W_v.weight.T)
    out, w = enc(ids, return_weights=True)
    assert torch.allclose(ref[1:], out[1:]) and torch.allclose(ref_w, w)


@pytest.mark.parametrize("fusion", ["sum", "concat"])
def test_sum_and_concat_use_the_mean_of_the_real_tokens(fusion):
    torch.manual_seed(0)
    tok = torch.tensor([[0, 0, 0], [1, 2, 0], [3, 0, 0], [4, 5, 6], [0, 0, 0]])
    enc = ItemEncoder(tok, 10, 8, fusion).double()
    ids = torch.randn(5, 8, dtype=torch.float64)
    out = enc(ids)
    for i in range(1, 5):  # brute force, item by item
        t = tok[i][tok[i] != 0]
        mean = enc.feature_emb(t).mean(0) if len(t) else torch.zeros(8, dtype=torch.float64)
        want = ids[i] + mean if fusion == "sum" else enc.proj(torch.cat([ids[i], mean]))
        assert torch.allclose(out[i], want)
    assert (out[0] == 0).all()


def test_cross_attention_fusion_rejects_bad_input():
    x, f, mask, W = torch.randn(4, 8), torch.randn(4, 3, 8), torch.ones(4, 3, dtype=torch.bool), torch.eye(8)
    with pytest.raises(ValueError, match="boolean"):
        cross_attention_fusion(x, f, mask.float(), W, W, W)
    with pytest.raises(ValueError, match="id_emb must be"):
        cross_attention_fusion(x[:3], f, mask, W, W, W)
    with pytest.raises(ValueError, match="W_k"):
        cross_attention_fusion(x, f, mask, W, torch.eye(4), W)


def test_bad_features_get_clear_errors(tokens):
    with pytest.raises(ValueError, match="fusion"):
        ItemEncoder(tokens, 100, 8, "product")
    with pytest.raises(ValueError, match="token ids must lie"):
        ItemEncoder(tokens, 2, 8)
    with pytest.raises(ValueError, match="LongTensor"):
        ItemEncoder(tokens.float(), 100, 8)
    with pytest.raises(ValueError, match="row 0"):
        ItemEncoder(torch.ones(5, 2, dtype=torch.long), 3, 8)
    with pytest.raises(ValueError, match="left-aligned"):
        ItemEncoder(torch.tensor([[0, 0], [0, 2]]), 3, 8)
    with pytest.raises(ValueError, match="n_items \\+ 1"):
        SASRec(SASRecConfig(n_items=50), item_tokens=tokens)
    with pytest.raises(ValueError, match="takes no item features"):
        models.build("din", 80, item_tokens=tokens)
    with pytest.raises(ValueError, match="fusion"):
        SASRecConfig(n_items=5, fusion="product")


# -- the command line and the config ---------------------------------------------------

def test_cli_parses_item_features_and_fusion():
    args = vars(parser().parse_args(["--item-features", "genres,title", "--fusion", "cross"]))
    args.pop("threads")
    cfg = TrainConfig(**{**args, "model_args": {}})
    assert cfg.item_features == ("genres", "title") and cfg.fusion == "cross"
    assert TrainConfig().item_features == ()
    assert TrainConfig(item_features=["title"]).item_features == ("title",)  # JSON gives lists
    with pytest.raises(ValueError, match="item_features must be"):
        TrainConfig(item_features="genres,colour")
    with pytest.raises(ValueError, match="needs item_features with tokens"):
        TrainConfig(fusion="concat")
    with pytest.raises(ValueError, match="sasrec only"):
        TrainConfig(model="din", item_features=("genres",))
    with pytest.raises(SystemExit) as err:
        cli_main(["--item-features", "colour", "--epochs", "1"])
    assert err.value.code == 2


# -- training: cold items scored by their features -------------------------------------

def _cold_items_in_the_right_group(result) -> float:
    """Share of test users whose group's cold items outscore the other group's."""
    scores = result.model.eval().score(histories(result.split, "test", result.config.maxlen))
    a, b = scores[:, COLD_A].mean(1), scores[:, COLD_B].mean(1)
    group_a = torch.arange(len(scores)) % 2 == 0
    return float(torch.where(group_a, a > b, b > a).float().mean())


@pytest.mark.parametrize("fusion", FUSIONS)
def test_training_with_features_beats_chance_and_places_cold_items_by_genre(data, fusion):
    result = run(quick(item_features=("genres", "title"), fusion=fusion), data)
    never_trained = cold_items(result.split.train, data.n_items, 0).nonzero().flatten().tolist()
    assert set(never_trained) == set(COLD_A + COLD_B)
    history = max(len(s) for s in result.split.seen("test"))
    chance = 10 / (data.n_items - history)  # HR@10 of a random ranking, at best
    assert result.metrics["test"]["full"]["hr@10"] > 2 * chance
    assert result.metrics["config"]["item_features"] == ["genres", "title"]
    assert _cold_items_in_the_right_group(result) >= 0.9  # ids never trained: features decide


def test_checkpoints_with_features_resume_and_old_checkpoints_still_resume(data, tmp_path):
    cfg = quick(epochs=1, min_epochs=1, item_features=("genres",), out=str(tmp_path / "f"))
    run(cfg, data)
    ck = load_checkpoint(tmp_path / "f" / "last.pt")
    assert "features.tokens" in ck["model"] and ck["config"]["item_features"] == ["genres"]
    assert run(cfg.replace(epochs=2, resume=True), data).metrics["epochs"] == 2
    old = quick(epochs=1, min_epochs=1, out=str(tmp_path / "old"))
    run(old, data)
    ck = load_checkpoint(tmp_path / "old" / "last.pt")
    for key in ("item_features", "fusion"):  # written before lesson 09
        del ck["config"][key]
    save_checkpoint(tmp_path / "old" / "last.pt", ck)
    assert run(old.replace(epochs=2, resume=True), data).metrics["epochs"] == 2


def test_a_featured_run_is_served_with_its_features(data, tmp_path):
    from recattn_lessons.serving import Recommender
    from recattn_lessons.serving.session import why_not_cached

    cfg = quick(epochs=1, min_epochs=1, item_features=("genres",), fusion="cross",
                out=str(tmp_path / "f"), model_args={"positions": "left"})
    result = run(cfg, data)
    rec = Recommender.from_run(tmp_path / "f", data=data)
    assert rec.model.features is not None  # rebuilt with the run's tokens, weights loaded
    history = data.sequences[0][:5].tolist()
    with torch.no_grad():
        want = result.model.eval().score(torch.tensor([history]))[0]
    got = dict(rec.recommend(history, k=5))
    assert all(abs(got[i] - float(want[i])) < 1e-5 for i in got)
    assert "item features" in why_not_cached(rec.model)  # the id-only KV cache would ignore them
    session = rec.session(history)
    assert [i for i, _ in session.top(5)] == [i for i, _ in rec.recommend(history, k=5)]


# -- the benchmark's table --------------------------------------------------------------

def test_benchmark_table_reports_mean_and_std_over_seeds():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "item_features.py"
    spec = importlib.util.spec_from_file_location("bench_item_features", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = lambda v, s, x: {"variant": v, "seed": s, "n_users": 671, "n_cold_users": 93,  # noqa: E731
                           "best_epoch": 30, "test_all": {"ndcg@10": x, "hr@10": 2 * x},
                           "test_cold": {"ndcg@10": x / 10, "hr@10": x / 5}}
    table = bench.render_table([row("id", 0, 0.05), row("id", 1, 0.07), row("cross", 0, 0.06)])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| id | 0,1 | 0.0600 ± 0.0141 | 0.1200 ± 0.0283 ")
    assert "| 0.0060 ± 0.0014 |" in lines[2] and "| n/a | 93 of 671 |" in lines[2]
    assert lines[3].startswith("| cross | 0 | 0.0600 | 0.1200 | 0.0060 | 0.0120 |")
    ranked = {**row("sum", 0, 0.05), "test_ranks": [0, 9, 99, 4], "cold_users": [1, 2, 3]}
    assert bench.cold_median_rank(ranked) == 10  # ranks 10, 100, 5 (1-based)
    assert bench.config_for("cross", 1).fusion == "cross" and bench.config_for("id", 0).item_features == ()
