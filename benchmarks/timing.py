"""The benchmarks' clocks, so that "seconds" means the same in every results file.

``wall_seconds`` (host clock, the device drained before both reads) for what includes
host work: input pipelines, files, fair-esm's loop. ``cuda_seconds`` (CUDA events on the
current stream) for GPU work alone. ``timed_runs`` repeats either after a warm-up;
``median_seconds`` and ``best_seconds`` reduce the repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["Clock", "best_seconds", "cuda_seconds", "median_seconds", "synchronize", "timed_runs", "wall_seconds"]

T = TypeVar("T")
#: A clock runs ``fn`` once and returns its result and the seconds it took.
Clock = Callable[[Callable[[], Any]], tuple[Any, float]]


def synchronize(device: torch.device | str | None) -> None:
    """Wait until ``device`` has run all work queued on it; nothing for the CPU or None."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def wall_seconds(fn: Callable[[], T], device: torch.device | str | None = None) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds, ``device`` drained before both clock reads.

    Draining first keeps earlier queued work out of the figure; draining last puts all of
    ``fn``'s work in it.
    """
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def cuda_seconds(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the GPU time between CUDA events recorded around it on the current stream.

    The GPU is drained first, so the figure is ``fn``'s work alone, its launch gaps included.
    """
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    result = fn()
    end.record()
    end.synchronize()
    return result, start.elapsed_time(end) / 1000


def timed_runs(fn: Callable[[], T], repeats: int, clock: Clock, warmup: int = 1) -> tuple[T, list[float]]:
    """``warmup`` untimed calls of ``fn`` (first calls load, compile, allocate), then ``repeats``
    calls timed by ``clock``: the last call's result, and the seconds of each timed call."""
    result = None
    for _ in range(warmup):
        result = fn()
    seconds = []
    for _ in range(repeats):
        result, elapsed = clock(fn)
        seconds.append(elapsed)
    return result, seconds


def median_seconds(fn: Callable[[], Any], repeats: int, clock: Clock = cuda_seconds, warmup: int = 1) -> float:
    """The median seconds of ``repeats`` timed calls of ``fn`` after ``warmup`` untimed ones."""
    return statistics.median(timed_runs(fn, repeats, clock, warmup)[1])


def best_seconds(fn: Callable[[], T], rounds: int) -> tuple[T, float]:
    """The last result and the shortest wall time of ``rounds`` calls, no warm-up: for host work, where
    the shortest is the run least disturbed by other load."""
    result, seconds = timed_runs(fn, rounds, wall_seconds, warmup=0)
    return result, min(seconds)
