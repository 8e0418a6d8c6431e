"""The batch loop: batches in, the task's rows handed to the writer thread, nothing waited on.

    DataLoader (workers: parse, normalise, budget, tokenise)  -->  pinned batch
    --non_blocking copy-->  the task's computation on the GPU (e.g. packed forward + pooling)
    --non_blocking copy-->  pinned rows  --> Sink (writer thread: waits on the batch's CUDA event,
    appends to the job's part)

The thread that drives the GPU never waits on it: the only host-device synchronisation
per batch is the writer thread's wait on that batch's event. The GPU's idle time between
batches, measured with CUDA events, is the time it waited for input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .progress import Progress
from .sink import JobDone, Pending, Sink
from .task import Batch, Compute

__all__ = ["LoopStats", "run_batches"]


@dataclass
class LoopStats:
    records: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    input_wait: float = 0.0
    startup_s: float = 0.0


def run_batches(
    batches: Iterator[tuple[int, Batch]],
    jobs: int,
    compute: Compute,
    device: torch.device,
    sink: Sink,
    progress: Progress,
    stop: Callable[[], None] | None = None,
) -> LoopStats:
    """Compute every ``(job, batch)``, jobs in order; tell the sink when each of the ``jobs`` jobs is complete.

    ``compute(batch on the device) -> (rows, check)``: ``rows`` are copied to the host as they
    are (dtype and shape), for the job's ``RowStore``. ``stop()`` is called before each batch and
    raises to end the run (the validation pass found a bad record): a host-side check, nothing
    waits on the GPU."""
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
        computed, check = compute(on_device)
        rows = torch.empty(computed.shape, dtype=computed.dtype, pin_memory=on_gpu)
        rows.copy_(computed, non_blocking=on_gpu)
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
