"""GroupLens downloader on fake archives written here; urlopen is mocked (no network)."""

import dataclasses
import hashlib
import io
import zipfile
from urllib.error import URLError

import pytest

from recattn_lessons.data import grouplens
from recattn_lessons.data.grouplens import GroupLensSpec

RATINGS_DAT = "1::20::5::978300760\n1::10::3::978300760\n2::30::4::978302109\n1::30::4::978300001\n"
MOVIES_DAT = "10::Toy Story (1995)::Animation|Children's|Comedy\n20::Misérables, Les (1995)::Drama\n30::Heat (1995)::Action\n"
RATINGS_CSV = "userId,movieId,rating,timestamp\n1,20,5.0,978300760\n2,10,3.5,978300761\n"
MOVIES_CSV = 'movieId,title,genres\n10,"American President, The (1995)",Comedy|Drama\n20,Heat (1995),Action\n'


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def fake_1m(monkeypatch):
    """An ml-1m-shaped zip in the real layout, its MD5 registered, urlopen mocked."""
    payload = make_zip(
        {"ml-1m/ratings.dat": RATINGS_DAT.encode("latin-1"), "ml-1m/movies.dat": MOVIES_DAT.encode("latin-1")}
    )
    spec = GroupLensSpec(
        "ml-1m", "https://example.invalid/ml-1m.zip", hashlib.md5(payload).hexdigest(),
        "ml-1m", "ratings.dat", "movies.dat", "dat",
    )  # fmt: skip
    monkeypatch.setitem(grouplens.DATASETS, "ml-1m", spec)
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return FakeResponse(payload)

    monkeypatch.setattr(grouplens, "urlopen", fake_urlopen)
    return payload, calls


def test_download_verifies_and_caches(tmp_path, fake_1m):
    payload, calls = fake_1m
    path = grouplens.download("ml-1m", tmp_path, progress=False)
    assert path == tmp_path / "ml-1m.zip" and path.read_bytes() == payload
    assert calls == ["https://example.invalid/ml-1m.zip"]
    grouplens.download("ml-1m", tmp_path, progress=False)
    assert len(calls) == 1  # the cached zip is reused, no second download
    assert not list(tmp_path.glob("*.part"))


def test_parse_dat_format(tmp_path, fake_1m):
    frame = grouplens.load_grouplens_frame("ml-1m", tmp_path, progress=False)
    assert list(frame.columns) == ["userId", "movieId", "rating", "timestamp", "title", "genres"]
    assert frame["movieId"].tolist() == [20, 10, 30, 30]  # file order kept
    assert frame["timestamp"].tolist()[:2] == [978300760, 978300760]
    assert frame["title"].iloc[0] == "Misérables, Les (1995)"  # Latin-1 decoded
    assert frame["genres"].iloc[1] == "Animation|Children's|Comedy"
    assert (tmp_path / "ml-1m" / "ratings.dat").exists()


def test_checksum_mismatch_is_refused(tmp_path, fake_1m, monkeypatch):
    bad = dataclasses.replace(grouplens.DATASETS["ml-1m"], md5="0" * 32)
    monkeypatch.setitem(grouplens.DATASETS, "ml-1m", bad)
    with pytest.raises(ValueError, match="MD5 .* but GroupLens publishes 0{32}"):
        grouplens.download("ml-1m", tmp_path, progress=False)
    assert not (tmp_path / "ml-1m.zip").exists()  # a bad download is never cached as good


def test_offline_error_names_url_and_manual_path(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise URLError("Temporary failure in name resolution")

    monkeypatch.setattr(grouplens, "urlopen", offline)
    with pytest.raises(ConnectionError) as info:
        grouplens.download("ml-20m", tmp_path, progress=False)
    msg = str(info.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-20m.zip" in msg
    assert str(tmp_path / "ml-20m.zip") in msg and "cd245b17a1ae2cc31bb14903e1204af3" in msg
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_manually_placed_zip_is_used_without_network(tmp_path, fake_1m, monkeypatch):
    payload, calls = fake_1m
    (tmp_path / "ml-1m.zip").write_bytes(payload)
    frame = grouplens.load_grouplens_frame("ml-1m", tmp_path, progress=False)
    assert calls == [] and len(frame) == 4


def test_parse_csv_format(tmp_path, monkeypatch):
    payload = make_zip({"ml-20m/ratings.csv": RATINGS_CSV.encode(), "ml-20m/movies.csv": MOVIES_CSV.encode()})
    spec = GroupLensSpec(
        "ml-20m", "https://example.invalid/ml-20m.zip", hashlib.md5(payload).hexdigest(),
        "ml-20m", "ratings.csv", "movies.csv", "csv",
    )  # fmt: skip
    monkeypatch.setitem(grouplens.DATASETS, "ml-20m", spec)
    monkeypatch.setattr(grouplens, "urlopen", lambda url, timeout=None: FakeResponse(payload))
    frame = grouplens.load_grouplens_frame("ml-20m", tmp_path, progress=False)
    assert frame["title"].tolist() == ["Heat (1995)", "American President, The (1995)"]
    assert frame["rating"].tolist() == [5.0, 3.5]


def test_unsafe_zip_is_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(make_zip({"../escape.txt": b"x"}))
    with pytest.raises(ValueError, match="unsafe path"):
        grouplens.extract(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_unknown_dataset_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="ml-1m"):
        grouplens.download("ml-2m", tmp_path)
    with pytest.raises(FileNotFoundError, match="extracted ml-1m.zip"):
        grouplens.read_ratings(tmp_path, "ml-1m")


def test_cache_dir_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECATTN_DATA", str(tmp_path))
    assert grouplens.cache_dir() == tmp_path
    assert grouplens.cache_dir(tmp_path / "x") == tmp_path / "x"


def test_load_grouplens_returns_interactions(tmp_path, fake_1m):
    from recattn_lessons.data.movielens import Interactions

    data = grouplens.load_grouplens("ml-1m", tmp_path, progress=False, tie_seed=None)  # file order
    assert isinstance(data, Interactions)
    shuffled = grouplens.load_grouplens("ml-1m", tmp_path, progress=False)  # default: tie_seed=0
    assert shuffled.tie_seed == 0 and shuffled.sequences[0][0] == 3  # only the tie may move
    assert sorted(shuffled.sequences[0].tolist()) == [1, 2, 3]
    assert (data.n_users, data.n_items) == (2, 3)
    # raw movies 10, 20, 30 -> ids 1, 2, 3; user 1 sorted by time, the tie (20, 10) kept in file order
    assert data.sequences[0].tolist() == [3, 2, 1] and data.sequences[1].tolist() == [3]
    assert data.titles == ["<pad>", "Toy Story (1995)", "Misérables, Les (1995)", "Heat (1995)"]
    assert data.genres[3] == "Action" and data.n_tied == 2
