"""Sharding a run over processes started by ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK in the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Sequence, TypeVar

Item = TypeVar("Item")

# Rank 0 waits at the barrier until the slowest rank has predicted its shard.
BARRIER_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def shard_from_env() -> Shard:
    """This process's rank from torchrun's variables; a plain process is rank 0 of 1."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid RANK={rank} for WORLD_SIZE={world_size}")
    return Shard(rank, world_size, local_rank)


def take_shard(items: Sequence[Item], shard: Shard) -> List[Item]:
    """Every world_size-th item from the rank's index: the shards are disjoint and cover the list."""
    return list(items[shard.rank :: shard.world_size])


def start(shard: Shard, use_cuda: bool) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU); nothing to do for a single process."""
    if not shard.distributed:
        return
    import torch.distributed as dist

    if use_cuda:
        import torch

        torch.cuda.set_device(shard.local_rank)  # nccl's barrier runs on the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=BARRIER_TIMEOUT)


def wait_for_all(shard: Shard) -> None:
    if shard.distributed:
        import torch.distributed as dist

        dist.barrier()


def finish(shard: Shard) -> None:
    if shard.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
