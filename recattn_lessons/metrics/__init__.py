"""Ranking metrics for next-item recommendation (lessons 04, 05 and the exercises).

- :mod:`.ranking`   ranks under the full and sampled protocols, HR / NDCG / MRR,
  the streaming :class:`CSRHistory` of seen items
- :mod:`.bootstrap` paired bootstrap confidence intervals over users
- :mod:`.beyond`    beyond accuracy (lesson 09): intra-list diversity, catalogue
  coverage, novelty, Gini index of exposure, genre calibration
"""

from .beyond import (
    catalog_coverage, exposure_counts, genre_calibration, gini_index, intra_list_diversity, novelty,
)
from .bootstrap import bootstrap_ci, paired_bootstrap, paired_bootstrap_values, per_user
from .ranking import (
    CSRHistory,
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    ranks_full,
    ranks_sampled,
    sample_negatives,
    seen_mask,
    summarize,
)
from .ranking import __doc__ as _ranking_doc

__doc__ = __doc__ + "\n" + (_ranking_doc or "")

__all__ = [
    "hit_rate_at_k", "ndcg_at_k", "mrr", "seen_mask", "CSRHistory", "ranks_full",
    "sample_negatives", "ranks_sampled", "summarize", "per_user", "bootstrap_ci", "paired_bootstrap", "paired_bootstrap_values",
    "intra_list_diversity", "catalog_coverage", "novelty", "gini_index", "genre_calibration", "exposure_counts",
]
