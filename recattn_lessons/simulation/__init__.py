"""Simulated users for questions logged data cannot answer (lesson 09).

- :mod:`.feedback_loop`  retrain on what the model itself recommended; watch coverage drift
"""

from .feedback_loop import LoopConfig, acceptance, compare, simulate

__all__ = ["LoopConfig", "acceptance", "compare", "simulate"]
