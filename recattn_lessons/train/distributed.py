"""Training on several processes with DistributedDataParallel (lesson 08).

``torchrun --standalone --nproc_per_node 2 -m recattn_lessons.train ...``
starts two copies of the program and tells each one who it is through
environment variables: ``WORLD_SIZE`` (how many), ``RANK`` (which one,
``0 .. WORLD_SIZE-1``) and ``LOCAL_RANK`` (which one on this machine: the
GPU it should use). :func:`launch` reads them, joins the process group
(``gloo`` on the CPU, ``nccl`` on CUDA) and hands the loop a :class:`Dist`.
Without torchrun (``WORLD_SIZE`` unset or 1) it hands out a one-process
:class:`Dist` whose helpers do nothing, and the loop runs as before.

**Global batch.** ``batch_size`` stays the *global* batch: every rank draws
the same global batch from the same seeded generator and keeps its rows
``rank::world_size`` (:meth:`Dist.shard`). DDP averages the gradients of
the ranks, ``g = (1/W) sum_r g_r``. Every loss we ship is a mean over the
target positions of its batch, so rank ``r`` with ``n_r`` of the batch's
``n`` targets scales its loss by ``W n_r / n`` (:meth:`Dist.shard_weight`):

    (1/W) sum_r (W n_r / n) grad mean_r = grad (1/n) sum_all = grad mean_global

which is the single-process gradient, also when ``n`` does not split evenly.

**Rank 0** evaluates (on all users, with the unwrapped model), writes
``last.pt``, ``metrics.json`` and ``history.json`` and prints; it sends the
validation numbers and its clock to the others (:meth:`Dist.broadcast`), so
every rank takes the same early-stopping decision. Those broadcasts also
keep the ranks in step, so no extra barrier is needed.

**Failures.** When one rank raises, its process exits non-zero and
torchrun stops the others (they would otherwise wait in a collective for
the process group's ``timeout``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from ..data.batching import Batch

__all__ = ["Dist", "LossOf", "launch", "wrap"]

TIMEOUT = datetime.timedelta(minutes=30)  # longest wait in a collective (rank 0 evaluating)


@dataclass(frozen=True)
class Dist:
    """Who this process is; with ``world_size == 1`` every helper is a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, evaluates and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def sum(self, value: float) -> float:
        """All-reduce (sum) one float over the ranks."""
        if not self.active:
            return value
        t = torch.tensor(value, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return t.item()

    def broadcast(self, obj, src: int = 0):
        """Rank ``src``'s python object, on every rank (others pass anything)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src, device=self._comm_device)
        return box[0]

    def shard(self, batch: Batch) -> Batch:
        """This rank's rows ``rank::world_size`` of a global batch."""
        if not self.active:
            return batch
        r, w = self.rank, self.world_size
        neg = None if batch.negatives is None else batch.negatives[r::w]
        return Batch(batch.inputs[r::w], batch.targets[r::w], batch.users[r::w], neg)

    def shard_weight(self, shard: Batch, batch: Batch) -> float:
        """``n_r / n``: this rank's share of the global batch's targets."""
        return float((shard.targets > 0).sum()) / max(float((batch.targets > 0).sum()), 1.0)

    # dropout: the ranks start from the same seed (same initial weights), then
    # each takes its own stream, or rank r's rows would share rank 0's masks

    def seed_dropout(self, seed: int) -> None:
        if self.active:
            torch.manual_seed(seed + 1_000_003 * self.rank)  # also seeds CUDA

    def dropout_rngs(self) -> list | None:
        """Every rank's dropout state (for rank 0's checkpoint); None on one process."""
        if not self.active:
            return None
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        states = [None] * self.world_size
        dist.all_gather_object(states, state)
        return states

    def restore_dropout_rng(self, states: list | None) -> None:
        """This rank's state from :meth:`dropout_rngs`, when the world size matches."""
        if not self.active:
            return
        if states is None or len(states) != self.world_size:  # saved by another world size:
            # all ranks now hold the checkpoint's one state; split it into one stream per rank
            self.seed_dropout(int(torch.randint(2**62, (1,))))
            return
        torch.set_rng_state(states[self.rank]["torch"])
        if "cuda" in states[self.rank] and self.device.type == "cuda":
            torch.cuda.set_rng_state(states[self.rank]["cuda"], self.device)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


class LossOf(torch.nn.Module):
    """``forward(batch) = model.loss(batch)``.

    DDP synchronises gradients only for calls that go through its
    ``forward``; our models train through ``loss``, so DDP wraps this.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model.loss(batch)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """``DDP(LossOf(model))``; parameters stay shared with ``model``."""
    ids = [d.device.index] if d.device.type == "cuda" else None
    # every loss we ship gives every parameter a gradient (checked for all
    # models and losses), so DDP's default find_unused_parameters=False holds
    return torch.nn.parallel.DistributedDataParallel(LossOf(model), device_ids=ids)


@contextlib.contextmanager
def launch(device: torch.device, timeout: datetime.timedelta = TIMEOUT) -> Iterator[Dist]:
    """Join torchrun's process group for the duration of a run (see module docstring).

    A group that the caller already set up is used and left open: a script
    that calls :func:`~recattn_lessons.train.run` several times should set
    one up itself, because re-creating a group in the same process after
    ``destroy_process_group`` is unreliable (we saw gloo connect to a stale
    address on the third run).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun
    if world <= 1:
        yield Dist(device=device)
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch has no torch.distributed")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    try:
        yield Dist(rank, world, local, device)
    except BaseException:
        if owned:  # no barrier: the other ranks may never arrive (torchrun stops them)
            dist.destroy_process_group()
        raise
    if owned:
        # every rank done before any tears gloo down: a rank that left first once made the
        # other abort at exit ("terminate called without an active exception", SIGABRT)
        dist.barrier()
        dist.destroy_process_group()
