"""Data-parallel training under torchrun: PyTorch's own DDP, gloo on CPU, nccl on GPU.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE for each process it starts.
Without them `World()` is a single process and every helper here is a no-op, so plain
`lstmcast train` runs exactly the code it always did. torch is imported inside the functions:
the CLI reads the rank (to keep other ranks quiet) without paying for torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files, logs and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """The world torchrun describes in the environment, or a single process."""
    env = os.environ
    size = int(env.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(
        rank=int(env.get("RANK", "0")),
        size=size,
        local_rank=int(env.get("LOCAL_RANK", "0")),
        local_size=int(env.get("LOCAL_WORLD_SIZE", str(size))),
    )


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (once) and return this rank's device: its own GPU, or the CPU."""
    import torch
    import torch.distributed as dist

    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def finish() -> None:
    """Leave the job together: a rank that tears down gloo while a peer is still busy can abort."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The module to call for training: DDP averages gradients across ranks during backward."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shard(count: int, begin: int, end: int, world: World) -> torch.Tensor:
    """Where this rank's windows begin…end−1 of an epoch sit in the epoch's order of `count`.

    As DistributedSampler makes it: the order is padded by repeating its head to a multiple of
    the world size, so every rank takes the same number of steps (a rank with one step fewer
    would leave the others waiting in an all-reduce); ranks take every `size`-th window from
    their own offset.
    """
    import torch

    return (world.rank + torch.arange(begin, end, dtype=torch.int64) * world.size) % max(count, 1)


def per_rank(count: int, world: World) -> int:
    """Windows each rank sees per epoch (after padding)."""
    return -(-count // world.size)


def rank_batch(batch_size: int, batch_size_per_rank: bool, world: World) -> int:
    """Windows per step on each rank: `batch_size` itself (effective batch × ranks), or its share."""
    return batch_size if batch_size_per_rank else max(1, -(-batch_size // world.size))


def all_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sum across ranks (one small all-reduce)."""
    if not world.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def decide(flag: bool, world: World, device: torch.device) -> bool:
    """Rank 0's decision, broadcast so every rank acts on the same one (early stopping)."""
    if not world.distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
