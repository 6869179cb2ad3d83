"""Font fallback for figures: Chinese titles draw as text, not boxes, when a CJK font exists.

matplotlib (3.6+) falls back glyph by glyph along ``font.sans-serif``.
:func:`use_cjk_fallback` appends the CJK families installed on this machine
(found by :func:`recattn_lessons.setup_check.check_fonts`'s rules) after the
default font, so Latin text looks the same and Chinese finds a font. It runs
once when ``recattn_lessons.viz`` is imported; with no CJK font installed it
changes nothing (lesson 00 says how to install one).
"""

from __future__ import annotations

import matplotlib as mpl
from matplotlib import font_manager

__all__ = ["cjk_families", "use_cjk_fallback"]


def cjk_families() -> list[str]:
    """Installed font families that cover Chinese (sorted, de-duplicated)."""
    from recattn_lessons.setup_check import CJK_FONT_HINTS, CJK_SAMPLE, _covers

    found = set()
    for f in font_manager.fontManager.ttflist:
        if f.name not in found and any(h.lower() in f.name.lower() for h in CJK_FONT_HINTS) \
                and _covers(f.fname, CJK_SAMPLE):
            found.add(f.name)
    return sorted(found)


def use_cjk_fallback() -> list[str]:
    """Append installed CJK families to ``font.sans-serif``; return what was added."""
    current = list(mpl.rcParams["font.sans-serif"])
    added = [name for name in cjk_families() if name not in current]
    if added:
        mpl.rcParams["font.sans-serif"] = current[:1] + added + current[1:]
    return added
