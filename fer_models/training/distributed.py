"""torch.distributed for training under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1).

Each rank takes its share of every batch order; rank 0 evaluates and writes. One process (``WORLD_SIZE``
unset) is a world of one, and every helper here is then a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # this run started the process group, so it ends it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.owned:
            dist.destroy_process_group()


def init_distributed(device_type: str) -> Dist:
    """Join (or start) the process group that ``torchrun`` describes; a world of one without it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owned)


def agree(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank when any rank says so (e.g. a time budget: rank clocks differ slightly)."""
    if d.world_size == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_over_ranks(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """``values`` summed over all ranks (unchanged in a world of one)."""
    if d.world_size > 1:
        dist.all_reduce(values)
    return values


def barrier(d: Dist) -> None:
    """Wait until every rank gets here (nothing to wait for in a world of one)."""
    if d.world_size > 1:
        dist.barrier()


def broadcast_from_main(tensors: Iterable[torch.Tensor], d: Dist) -> None:
    """Overwrite ``tensors`` on every rank with rank 0's (e.g. BN statistics, which drift apart per rank)."""
    if d.world_size > 1:
        for t in tensors:
            dist.broadcast(t, 0)
