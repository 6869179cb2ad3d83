"""recattn_lessons.viz.fonts: CJK families join matplotlib's fallback list."""

import matplotlib as mpl
from matplotlib import font_manager

from recattn_lessons.viz import fonts


def test_installed_cjk_families_are_appended_after_the_default(monkeypatch):
    dejavu = font_manager.findfont("DejaVu Sans")
    monkeypatch.setattr(fonts, "cjk_families", lambda: ["Noto Sans CJK JP"])
    monkeypatch.setitem(mpl.rcParams, "font.sans-serif", ["DejaVu Sans", "Arial"])
    assert fonts.use_cjk_fallback() == ["Noto Sans CJK JP"]
    assert mpl.rcParams["font.sans-serif"] == ["DejaVu Sans", "Noto Sans CJK JP", "Arial"]
    assert fonts.use_cjk_fallback() == []  # idempotent
    assert dejavu  # the default font is untouched


def test_cjk_families_only_lists_fonts_with_chinese_glyphs():
    for name in fonts.cjk_families():
        path = font_manager.findfont(name, fallback_to_default=False)
        from recattn_lessons.setup_check import CJK_SAMPLE, _covers
        assert _covers(path, CJK_SAMPLE), name
