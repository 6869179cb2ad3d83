"""Training and evaluation of the recommenders (lesson 05).

- :mod:`.config`      ``TrainConfig`` (every setting, with defaults)
- :mod:`.loop`        ``run(config, data=None) -> Result``
- :mod:`.evaluate`    full-ranking and sampled-100 evaluation
- :mod:`.checkpoint`  save/load with ``weights_only=True``
- :mod:`.cli`         ``python -m recattn_lessons.train ...``

Example::

    from recattn_lessons.train import TrainConfig, run
    result = run(TrainConfig.quick(model="sasrec"))
    result.metrics["test"]["full"]["ndcg@10"]
"""

from .config import TrainConfig
from .evaluate import eval_negatives, evaluate, evaluate_ranks
from .loop import Result, TrainingDiverged, run

__all__ = ["TrainConfig", "run", "Result", "TrainingDiverged", "evaluate", "evaluate_ranks",
           "eval_negatives"]
