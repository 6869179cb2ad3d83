"""``torch.compile`` for the training step, where it is available (lesson 08).

:func:`use_compile` decides (``TrainConfig.compile``); :class:`CompiledLoss`
wraps ``model.loss`` and falls back to eager execution, with one message,
when compiling fails (no Triton, no C++ compiler). Compilation happens at
the first call, so a failure there is caught; inductor compiles the
backward graph lazily, and an error in it would still surface from
``loss.backward()`` (``--compile off`` avoids it).
"""

from __future__ import annotations

import torch
from recattn_lessons.progress import tqdm

from .. import models

__all__ = ["use_compile", "CompiledLoss"]


def use_compile(mode: str, device: torch.device, distributed: bool) -> bool:
    """``compile='auto'``: on CUDA where Triton (inductor's GPU code generator) is
    installed, one process only; ``'on'`` anywhere (on a CPU inductor needs a C++
    compiler). Under DDP the loss goes through DDP's wrapper, which we keep eager."""
    if mode == "off" or distributed:
        return False
    if mode == "on":
        return True
    from torch.utils._triton import has_triton

    return device.type == "cuda" and has_triton()


class CompiledLoss:
    """``model.loss`` through ``torch.compile``, falling back to eager (with one
    message) if compiling fails: a missing compiler must not end a run."""

    def __init__(self, model: models.SequentialRecommender, show: bool) -> None:
        self.eager, self.show = model.loss, show
        self.compiled = torch.compile(model.loss, dynamic=True)  # last batch is smaller

    def __call__(self, batch):
        if self.compiled is None:
            return self.eager(batch)
        try:
            return self.compiled(batch)
        except Exception as e:  # noqa: BLE001  (inductor raises many kinds)
            if self.show:
                tqdm.write(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                           "training eagerly (pass --compile off to skip the attempt)")
            self.compiled = None
            return self.eager(batch)
