"""Multi-process data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

``torchrun --nproc-per-node 2 -m hyperim train --out runs/ddp`` starts two processes; each
reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment that torchrun sets, joins
the process group (gloo on CPU, NCCL on CUDA, one GPU per process) and trains on its share of
every batch. The scheme keeps a multi-process run equal to a one-process run up to the order of
floating-point sums:

* every rank draws the same global batch and the same negatives (same seed, same generator),
  then keeps its own contiguous rows;
* each rank's loss is rescaled so that DDP's gradient average equals the gradient of the
  global batch's loss (Eq. 7 averaged over the batch's documents);
* a step is skipped on every rank or on none (the finite-loss flag is reduced with MIN);
* rank 0 alone evaluates, writes checkpoints, logs and the best model, and broadcasts the
  epoch's record so that early stopping is decided identically everywhere.

With one process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) every method here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from hyperim.errors import HyperIMError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's contiguous rows of a global batch of ``n`` documents."""
        base, extra = divmod(n, self.world_size)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (1 if self.rank < extra else 0))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_true(self, flag: bool, device: torch.device) -> bool:
        """``flag`` on every rank (a MIN all-reduce); ``flag`` itself in one process."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum of ``value`` over ranks (a copy; ``value`` itself in one process)."""
        if not self.enabled:
            return value
        t = value.detach().clone()
        dist.all_reduce(t)
        return t

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(device_name: str) -> tuple[DistContext, str]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns the context and the device name this process should use: with CUDA, each process
    takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device_name
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() <= local:
            raise HyperIMError(
                f"process {rank} needs GPU {local} but {torch.cuda.device_count()} are visible"
            )
        device_name = f"cuda:{local}"
        torch.cuda.set_device(local)
    elif device_name == "auto":
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistContext(world, rank, local), device_name


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (after a final barrier)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
