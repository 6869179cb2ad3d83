"""Attention visualisation: static heatmaps (lessons 01-03).

Re-exports only the heatmap helpers; the recommender-specific views and the
interactive explorer live in their own modules of this subpackage.
"""

from recattn_lessons.viz.heatmaps import attention_heatmap, show_heatmaps

__all__ = ["attention_heatmap", "show_heatmaps"]
