"""Attention visualisation: static heatmaps (lessons 01-03) and ``live`` figures.

Re-exports the heatmap helpers and :func:`live` (an ``interact`` whose saved
notebook still shows a figure); the recommender-specific views and the
interactive explorer live in their own modules of this subpackage.
"""

from recattn_lessons.viz.fonts import use_cjk_fallback
from recattn_lessons.viz.heatmaps import attention_heatmap, show_heatmaps
from recattn_lessons.viz.livefig import LIVE_NOTE, Live, live

use_cjk_fallback()  # Chinese in figure text finds an installed CJK font (none: no change)

__all__ = ["attention_heatmap", "show_heatmaps", "live", "Live", "LIVE_NOTE"]
