"""Checkpoints that resume a run exactly (lesson 05).

A checkpoint holds the model, the optimizer, the epoch, the early-stopping
state, the history so far and every random state the run uses (torch's
default generator for initialisation and dropout, CUDA's, and the explicit
generator that shuffles batches and draws negatives). It contains only
tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)``, which cannot run code hidden in a
downloaded file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "capture_rng", "restore_rng"]


def capture_rng(generator: torch.Generator) -> dict:
    """Every random state of a run."""
    state = {"torch": torch.get_rng_state(), "batches": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write atomically: a crash while saving never leaves a broken file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: run once without --resume first")
    return torch.load(path, map_location="cpu", weights_only=True)
