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
    assert frame["check"].tolist()[0] == "python"
    assert frame["check"].tolist()[-2:] == ["movielens", "CJK font"]
    assert len(frame) == len(sc.REQUIREMENTS) + 4


def test_device_advice_fits_the_machine():
    cpu_laptop = sc.device_advice(None, False, None, nvidia_smi=False, torch_version="2.13.0+cpu")
    assert cpu_laptop.ok and cpu_laptop.found == "cpu" and cpu_laptop.advice == sc.CPU_OK
    assert "CUDA" not in cpu_laptop.advice  # no GPU: never suggest a CUDA build
    gpu_cpu_torch = sc.device_advice(None, False, None, nvidia_smi=True, torch_version="2.13.0+cpu")
    assert "CPU-only build" in gpu_cpu_torch.advice and "TORCH_PIN" in gpu_cpu_torch.advice
    assert "make clean" in gpu_cpu_torch.advice  # the stamp file would skip a reinstall
    broken = sc.device_advice(None, False, "12.6", nvidia_smi=True, torch_version="2.13.0")
    assert "sees no GPU" in broken.advice and "TORCH_PIN" not in broken.advice
    gpu = sc.device_advice("NVIDIA H200", False, "12.6", nvidia_smi=True)
    assert gpu.found == "cuda (NVIDIA H200)"
    assert sc.device_advice(None, True, None, nvidia_smi=False).found.startswith("mps")


def test_fonts_found_only_when_a_font_really_draws_chinese(tmp_path):
    from matplotlib import font_manager

    dejavu = font_manager.findfont("DejaVu Sans")
    # a font named like a CJK family but without the glyphs does not count
    fake = sc.check_fonts([("Noto Sans CJK JP", dejavu)], system="Linux")
    assert not fake.ok and fake.found == "none"
    assert "apt-get install fonts-noto-cjk" in fake.advice
    assert "brew" in sc.font_advice("Darwin") and "Windows" in sc.font_advice("Windows")
    cjk = [f for f in font_manager.fontManager.ttflist
           if any(h.lower() in f.name.lower() for h in sc.CJK_FONT_HINTS)]
    real = sc.check_fonts([(f.name, f.fname) for f in cjk])
    if cjk and sc._covers(cjk[0].fname, sc.CJK_SAMPLE):
        assert real.ok and cjk[0].name in real.found
    else:
        assert not real.ok
