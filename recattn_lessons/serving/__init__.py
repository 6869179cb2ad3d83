"""Serving a trained recommender (issue 9, lesson 07).

- :mod:`.recommender`  ``Recommender``: ``recommend(history, k)`` from a
  model, a ``train`` run folder or a ``run(...)`` result;
  ``recommend_many`` (one batched pass), ``session`` (KV cache)
- :mod:`.ranking`      id checks and the exact top-k every path shares
- :mod:`.session`      ``Session``: ``append(item)`` / ``top(k)`` with a
  key/value cache per block (exact for SASRec with ``positions="left"``)
- :mod:`.batcher`      ``MicroBatcher``: dynamic batching for the server
- :mod:`.app`          ``create_app(recommender)``: the FastAPI app
- :mod:`.rerank`       MMR and calibrated re-ranking of a model's candidates (lesson 09)

The command line ``python -m recattn_lessons.serve --run DIR`` starts
the app with uvicorn on 127.0.0.1.

Example::

    from recattn_lessons.serving import Recommender
    rec = Recommender.from_run("runs/sasrec")
    rec.recommend([12, 7, 431], k=5)  # [(item_id, score), ...] best first
    s = rec.session([12, 7])          # s.cached: is the KV cache exact?
    s.append(431)
    s.top(5)                          # == rec.recommend([12, 7, 431], k=5)
"""

from .batcher import BatchConfig, MicroBatcher, Overloaded
from .recommender import Recommender, popularity_counts
from .rerank import calibrated_rerank, mmr_rerank
from .session import Session

__all__ = ["Recommender", "popularity_counts", "Session", "BatchConfig", "MicroBatcher",
           "Overloaded", "create_app",
           "mmr_rerank", "calibrated_rerank"]


def create_app(recommender: Recommender, **kwargs):
    """See :func:`recattn_lessons.serving.app.create_app` (imports FastAPI)."""
    from .app import create_app as _create_app
    return _create_app(recommender, **kwargs)
