"""Ranks and devices: torchrun's process group, the few collectives the job needs, the device to use.

Ranks only need barriers and sums, so the group is gloo (on the CPU) even on GPUs:
embeddings never travel between ranks, they meet on disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["Ranks", "all_reduce", "barrier", "choose_device", "process_group"]


@dataclass(frozen=True)
class Ranks:
    rank: int
    world_size: int
    local_rank: int


@contextlib.contextmanager
def process_group() -> Iterator[Ranks]:
    """This process's place among torchrun's ranks; joins their group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        yield Ranks(0, 1, 0)
        return
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=timedelta(hours=2))
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    finally:
        if created:
            dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.world_size > 1:
        dist.barrier()


def all_reduce(ranks: Ranks, *values: int) -> list[int]:
    """The sum of each value over the ranks."""
    if ranks.world_size == 1:
        return list(values)
    totals = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(totals)
    return totals.tolist()


def choose_device(requested: str | None, ranks: Ranks) -> torch.device:
    """``requested`` (default: cuda when available); under torchrun each rank takes ``cuda:LOCAL_RANK``."""
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {requested!r} asked for, but CUDA is not available here; pass device='cpu' (CLI: --device cpu)"
            )
        if ranks.world_size > 1:
            device = torch.device("cuda", ranks.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device
