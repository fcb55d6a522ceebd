"""Data-parallel training under ``torchrun``: one process per GPU (nccl) or per CPU share (gloo).

``torchrun --nproc_per_node K -m icm_lib.train ...`` sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; without them everything runs in one process.
The network's parameters are averaged by ``DistributedDataParallel``; the
entropy bottleneck's quantiles, which only the auxiliary loss trains (outside
DDP's forward), are kept out of DDP and their gradients averaged here.
Only rank 0 writes files and prints.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the number of processes and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> Context:
    """Join the process group when started by torchrun; pick CUDA when present, the CPU otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        # Long timeout: rank 0 alone runs validation while the others wait at the next collective.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Context(rank=rank, world=world, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Context, aux_names: list[str]) -> nn.Module:
    """The model as trained: DDP over the network's parameters when several processes run."""
    if ctx.world == 1:
        return model
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, aux_names)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # Buffers (the entropy models' CDF tables) are synced once at start; the training forward does not use them.
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def average_gradients(params: list[torch.Tensor], ctx: Context) -> None:
    """Average the gradients of parameters kept out of DDP (the quantiles) over processes."""
    if ctx.world == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= ctx.world


def average(values: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The mean of a tensor of statistics over processes (NaN anywhere stays NaN everywhere)."""
    if ctx.world > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= ctx.world
    return values


def gather(obj, ctx: Context) -> list:
    """One picklable object from every process, in rank order (on every process)."""
    if ctx.world == 1:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()
