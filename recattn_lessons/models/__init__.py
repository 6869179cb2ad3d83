"""Recommenders with one interface (lessons 04 and 05).

- :mod:`.base`       ``SequentialRecommender``: ``score`` and ``loss``
- :mod:`.sasrec`     SASRec (causal self-attention)
- :mod:`.din`        DIN-style target attention
- :mod:`.hstu`       HSTU (pointwise gated attention, lesson 08)
- :mod:`.baselines`  popularity, mean-pooled history, GRU4Rec
- :mod:`.losses`     sampled softmax (logQ) and gBCE for big catalogues
- :mod:`.item_encoder` genres and title words fused with item ids (lesson 09)
- :mod:`.feedback`   SASRec that reads disliked history items (lesson 09)
- :mod:`.generative_retrieval` a transformer that writes the next item's semantic ID (lesson 10)

``build(name, n_items, **hparams)`` makes any of them by name; unknown
names or hyper-parameters raise an error that lists the valid ones.
"""

from __future__ import annotations

from dataclasses import fields

from .base import SequentialRecommender
from .baselines import GRU4Rec, GRU4RecConfig, MeanPool, MeanPoolConfig, Popularity, PopularityConfig
from .din import DIN, DINConfig
from .hstu import HSTU, HSTUConfig
from .sasrec import SASRec, SASRecConfig
from .feedback import DislikeSASRec, DislikeSASRecConfig
from .generative_retrieval import GenerativeRetriever, GenerativeRetrieverConfig

__all__ = ["SequentialRecommender", "build", "hparam_names", "MODELS",
           "SASRec", "SASRecConfig", "HSTU", "HSTUConfig", "DIN", "DINConfig", "GRU4Rec", "GRU4RecConfig",
           "MeanPool", "MeanPoolConfig", "Popularity", "PopularityConfig",
           "DislikeSASRec", "DislikeSASRecConfig", "GenerativeRetriever", "GenerativeRetrieverConfig"]

MODELS = {
    "sasrec": (SASRec, SASRecConfig),
    "hstu": (HSTU, HSTUConfig),
    "din": (DIN, DINConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
    "meanpool": (MeanPool, MeanPoolConfig),
    "popularity": (Popularity, PopularityConfig),
    "sasrec-dislike": (DislikeSASRec, DislikeSASRecConfig),  # lesson 09, data.feedback
    "genret": (GenerativeRetriever, GenerativeRetrieverConfig),  # lesson 10, needs semantic_ids
}


def _lookup(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def hparam_names(name: str) -> list[str]:
    """The hyper-parameters ``build(name, ...)`` accepts (besides n_items)."""
    return [f.name for f in fields(_lookup(name)[1]) if f.name not in ("n_items", "sizes")]  # sizes: from the semantic IDs


def build(name: str, n_items: int, item_tokens=None, item_vectors=None, semantic_ids=None,
          **hparams) -> SequentialRecommender:
    """Make the model ``name`` for ``n_items`` items (ids 1..n_items).

    Example: ``build("sasrec", 9066, d_model=64, n_blocks=2)``. Data the model reads
    besides ids: ``item_tokens`` ``(n_items + 1, T)``, item feature tokens (lesson 09),
    e.g. from :func:`recattn_lessons.data.item_features.feature_tokens`; ``item_vectors``
    ``(n_items + 1, E)``, text embeddings (lesson 10,
    :func:`recattn_lessons.items.text.item_text_embeddings`); both sasrec only.
    ``semantic_ids`` (genret only, lesson 10): the items' codes, an object with ``codes``
    ``(n_items + 1, C)`` and ``sizes`` (:func:`recattn_lessons.items.semantic_ids.build_semantic_ids`).
    """
    cls, config = _lookup(name)
    unknown = sorted(set(hparams) - set(hparam_names(name)))
    if unknown:
        raise TypeError(f"{name} has no hyper-parameter {unknown}; it accepts {hparam_names(name)}")
    if name == "genret":
        if semantic_ids is None:
            raise ValueError("genret writes items as semantic IDs: pass semantic_ids= "
                             "(recattn_lessons.items.semantic_ids.build_semantic_ids)")
        return cls(config(n_items=n_items, sizes=tuple(semantic_ids.sizes), **hparams),
                   semantic_ids.codes)
    if semantic_ids is not None:
        raise ValueError(f"{name} reads item ids, not semantic IDs; only genret takes semantic_ids")
    features = {k: v for k, v in (("item_tokens", item_tokens), ("item_vectors", item_vectors))
                if v is not None}
    if not features:
        return cls(config(n_items=n_items, **hparams))
    if not getattr(cls, "uses_item_features", False):
        users = sorted(m for m, (c, _) in MODELS.items() if getattr(c, "uses_item_features", False))
        raise ValueError(f"{name} takes no item features; models that do: {users}")
    return cls(config(n_items=n_items, **hparams), **features)
