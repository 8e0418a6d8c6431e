"""The batch loop: packed batches in, pooled rows handed to the writer thread, nothing waited on.

    DataLoader (workers: parse, normalise, budget, tokenise)  -->  pinned batch
    --non_blocking copy-->  packed forward + pooling on the GPU  --non_blocking copy-->  pinned rows
    --> Sink (writer thread: waits on the batch's CUDA event, appends to the job's part)

The thread that drives the GPU never waits on it: the only host-device synchronisation
per batch is the writer thread's wait on that batch's event. The GPU's idle time between
batches, measured with CUDA events, is the time it waited for input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from virnucpro.data import PackedBatch
from virnucpro.models import Pooling
from virnucpro.models.common.windows import window_partials

from .progress import Progress
from .sink import JobDone, Pending, Sink

__all__ = ["Embedder", "LoopStats", "run_batches"]


@dataclass
class LoopStats:
    records: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    input_wait: float = 0.0
    startup_s: float = 0.0


class Embedder:
    """A batch on the device -> ``(rows, None)``: its pooled rows (N or R, L, E), ``pooling`` of each of
    ``layers``. (A self-checking embedder returns per-row cosines in place of None.)"""

    def __init__(self, packed: nn.Module, layers: Sequence[int], pooling: Pooling):
        self.packed, self.layers, self.pooling = packed, tuple(layers), pooling

    def __call__(self, batch: PackedBatch) -> tuple[Tensor, Tensor | None]:
        reps = self.packed(batch, repr_layers=self.layers)["representations"]
        # A window's rows are its share of its protein's merged rows (the writer thread sums them);
        # everything else is exactly ``pooling.pool``.
        rows = [window_partials(self.pooling, reps[layer], batch) for layer in self.layers]
        return torch.stack(rows, dim=1), None


def run_batches(
    batches: Iterator[tuple[int, PackedBatch]],
    jobs: int,
    embed: Callable[[PackedBatch], tuple[Tensor, Tensor | None]],
    device: torch.device,
    storage: torch.dtype,
    sink: Sink,
    progress: Progress,
    stop: Callable[[], None] | None = None,
) -> LoopStats:
    """Embed every ``(job, batch)``, jobs in order; tell the sink when each of the ``jobs`` jobs is complete.

    ``stop()`` is called before each batch and raises to end the run (the validation pass found a bad
    record): a host-side check, nothing waits on the GPU."""
    on_gpu = device.type == "cuda"
    stats = LoopStats()
    host_wait, finished = 0.0, 0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        item = next(batches, None)
        if stats.records == 0:  # the first wait is start-up (workers starting), reported apart
            stats.startup_s = time.perf_counter() - start
        else:
            host_wait += time.perf_counter() - t0
        job = jobs if item is None else item[0]
        for done_job in range(finished, job):  # jobs before this one, with or without batches
            sink.put(JobDone(done_job))
        finished = job
        if item is None:
            break
        if stop is not None:
            stop()
        batch = item[1]
        started = torch.cuda.Event(enable_timing=True) if on_gpu else None
        done = torch.cuda.Event(enable_timing=True) if on_gpu else None
        on_device = batch.to(device, non_blocking=True)
        if started is not None:
            started.record()
        pooled, check = embed(on_device)
        # window partials travel in float32 and are rounded to the storage dtype once merged
        rows = torch.empty(pooled.shape, dtype=torch.float32 if batch.num_windows else storage, pin_memory=on_gpu)
        rows.copy_(pooled.to(storage), non_blocking=on_gpu)
        if check is not None:
            check = torch.empty(check.shape, dtype=torch.float32, pin_memory=on_gpu).copy_(check, non_blocking=on_gpu)
        if done is not None:
            done.record()
        sink.put(Pending(job, rows, batch, started, done, check))
        stats.records += batch.num_completed
        stats.tokens += batch.num_tokens
        progress.update(batch.num_completed, batch.num_tokens)
    stats.wall_s = time.perf_counter() - start
    # On the GPU: its idle time between batches, from CUDA events (read after the sink is done).
    # On the CPU, compute is synchronous, so the time spent waiting for the next batch is the same.
    stats.input_wait = host_wait
    return stats
