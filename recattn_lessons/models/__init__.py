"""Recommenders with one interface (lessons 04 and 05).

- :mod:`.base`       ``SequentialRecommender``: ``score`` and ``loss``
- :mod:`.sasrec`     SASRec (causal self-attention)
- :mod:`.din`        DIN-style target attention
- :mod:`.hstu`       HSTU (pointwise gated attention, lesson 08)
- :mod:`.baselines`  popularity, mean-pooled history, GRU4Rec
- :mod:`.losses`     sampled softmax (logQ) and gBCE for big catalogues
- :mod:`.item_encoder` genres and title words fused with item ids (lesson 09)
- :mod:`.feedback`   SASRec that reads disliked history items (lesson 09)

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

__all__ = ["SequentialRecommender", "build", "hparam_names", "MODELS",
           "SASRec", "SASRecConfig", "HSTU", "HSTUConfig", "DIN", "DINConfig", "GRU4Rec", "GRU4RecConfig",
           "MeanPool", "MeanPoolConfig", "Popularity", "PopularityConfig",
           "DislikeSASRec", "DislikeSASRecConfig"]

MODELS = {
    "sasrec": (SASRec, SASRecConfig),
    "hstu": (HSTU, HSTUConfig),
    "din": (DIN, DINConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
    "meanpool": (MeanPool, MeanPoolConfig),
    "popularity": (Popularity, PopularityConfig),
    "sasrec-dislike": (DislikeSASRec, DislikeSASRecConfig),  # lesson 09, data.feedback
}


def _lookup(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def hparam_names(name: str) -> list[str]:
    """The hyper-parameters ``build(name, ...)`` accepts (besides n_items)."""
    return [f.name for f in fields(_lookup(name)[1]) if f.name != "n_items"]


def build(name: str, n_items: int, item_tokens=None, **hparams) -> SequentialRecommender:
    """Make the model ``name`` for ``n_items`` items (ids 1..n_items).

    Example: ``build("sasrec", 9066, d_model=64, n_blocks=2)``. ``item_tokens``
    ``(n_items + 1, T)``: item feature tokens (lesson 09, sasrec only), e.g. from
    :func:`recattn_lessons.data.item_features.feature_tokens`.
    """
    cls, config = _lookup(name)
    unknown = sorted(set(hparams) - set(hparam_names(name)))
    if unknown:
        raise TypeError(f"{name} has no hyper-parameter {unknown}; it accepts {hparam_names(name)}")
    if item_tokens is None:
        return cls(config(n_items=n_items, **hparams))
    if not getattr(cls, "uses_item_features", False):
        users = sorted(m for m, (c, _) in MODELS.items() if getattr(c, "uses_item_features", False))
        raise ValueError(f"{name} takes no item features; models that do: {users}")
    return cls(config(n_items=n_items, **hparams), item_tokens=item_tokens)
