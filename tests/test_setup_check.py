"""Tests for recattn_lessons.setup_check (lesson 00)."""

from importlib import metadata

import pandas as pd
import pytest

from recattn_lessons import setup_check as sc


def test_python_check_thresholds():
    assert sc.check_python((3, 10, 0)).ok
    old = sc.check_python((3, 9, 18))
    assert not old.ok and old.found == "3.9.18" and "3.10" in old.advice


def test_packages_present_missing_and_too_old():
    results = {r.name: r for r in sc.check_packages(
        {"numpy": "1.0", "surely-not-a-package-xyz": "1.0", "pandas": "999.0"})}
    assert results["numpy"].ok and results["numpy"].found == metadata.version("numpy")
    missing = results["surely-not-a-package-xyz"]
    assert not missing.ok and missing.found == "missing" and "make venv" in missing.advice
    assert not results["pandas"].ok and "< 999.0" in results["pandas"].advice


def test_course_requirements_are_met_here():
    bad = [r for r in sc.check_packages() if not r.ok]
    assert bad == []


def test_versions_include_python():
    versions = sc.package_versions(["numpy"])
    assert set(versions) == {"python", "numpy"} and versions["numpy"]


def test_device_reports_something_usable():
    import torch

    r = sc.check_device()
    assert r.ok and r.found.split()[0] in {"cpu", "cuda", "mps"}
    assert (r.found == "cpu") == (not torch.cuda.is_available()
                                  and not torch.backends.mps.is_available())


def test_movielens_counts_match_the_table():
    result, df = sc.check_movielens()
    assert result.ok, result
    counts = sc.movielens_counts(df)
    assert counts == {"ratings": len(df), "users": df["userId"].nunique(),
                      "movies": df["movieId"].nunique()}
    assert f"{counts['ratings']:,} ratings" in result.found


def test_movielens_counts_small_table_and_error():
    df = pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 11, 10]})
    assert sc.movielens_counts(df) == {"ratings": 3, "users": 2, "movies": 2}
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['userId'\]"):
        sc.movielens_counts(df.drop(columns="userId"))


def test_run_all_and_frame():
    results = sc.run_all()
    frame = sc.as_frame(results)
    assert list(frame.columns) == ["check", "status", "found", "advice"]
    assert frame["check"].tolist()[0] == "python" and frame["check"].tolist()[-1] == "movielens"
    assert len(frame) == len(sc.REQUIREMENTS) + 3
