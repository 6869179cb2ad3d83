"""Data for the recommender lessons (04-06).

- :mod:`.movielens`  offline MovieLens as per-user sequences (``load_movielens``)
- :mod:`.splits`     leave-one-out split and evaluation histories
- :mod:`.batching`   training windows, batches, negative sampling
- :mod:`.grouplens`  ML-1M / ML-20M downloader (optional, online)
- :mod:`.synthetic`  planted cause -> effect sequences (lesson 06)
- :mod:`.item_features` genres and title words as tensors, item popularity (lesson 09)
"""

from .item_features import cold_items, feature_tokens, genre_multi_hot, item_popularity, title_tokens
from .batching import Batch, SeenIndex, Windows, iterate_batches, sample_negatives, sliding_windows
from .movielens import Interactions, interactions_from_frame, load_movielens
from .splits import Split, cold_targets, histories, leave_one_out, left_pad

__all__ = [
    "Interactions", "load_movielens", "interactions_from_frame",
    "Split", "leave_one_out", "histories", "left_pad", "cold_targets",
    "genre_multi_hot", "title_tokens", "item_popularity", "feature_tokens", "cold_items",
    "Windows", "Batch", "sliding_windows", "SeenIndex", "sample_negatives", "iterate_batches",
]
