"""The writer thread: waits for each batch's rows to reach the host, hands them to its job's
``RowStore`` (the task's: it appends them to the part), commits about once a second, and finishes
a job once its last batch is stored.

It is the one place that waits on the GPU: the thread that drives the GPU only enqueues.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .parts import PartWriter
from .task import Batch, RowStore

__all__ = ["JobDone", "Pending", "Sink"]

_COMMIT_EVERY_S = 1.0
_QUEUE_DEPTH = 4


@dataclass
class Pending:
    """One batch in flight from the GPU to the writer thread."""

    job: int  # which output it belongs to
    rows: torch.Tensor  # host tensor (pinned on the GPU path) of the task's rows, filled asynchronously
    batch: Batch  # on the host: the records' ids, positions, lengths, columns (and windows)
    started: torch.cuda.Event | None
    done: torch.cuda.Event | None
    check: torch.Tensor | None = None  # (rows x layers,) FP8-vs-bf16 cosines of a self-checked batch


@dataclass(frozen=True)
class JobDone:
    """Every batch of job ``job`` has been enqueued."""

    job: int


@dataclass
class Sink:
    """Runs in its own thread (``start``); the main thread ``put``s items and finally None.

    ``stores[job]`` appends job ``job``'s batches to ``parts[job]``; ``on_done(job)`` runs in this
    thread after the part is closed.
    """

    parts: Sequence[PartWriter]
    stores: Sequence[RowStore]
    on_done: Callable[[int], None] = lambda job: None
    verify: Callable[[np.ndarray, int], None] | None = None  # raises when a self-check fails
    checks: list[np.ndarray] = field(default_factory=list)
    inbox: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=_QUEUE_DEPTH))
    error: BaseException | None = None
    gpu_idle_s: float = 0.0  # between one batch's end and the next one's start: waiting for input
    gpu_busy_s: float = 0.0  # from each batch's start to its end: its computation and copies
    _last_done: Any = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="virnucpro-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            open_jobs = set(range(len(self.parts)))
            last_commit = time.perf_counter()
            while (item := self.inbox.get()) is not None:
                if isinstance(item, JobDone):
                    self.stores[item.job].finish()
                    self.parts[item.job].close()
                    open_jobs.discard(item.job)
                    self.on_done(item.job)
                    continue
                self._store(item)
                if time.perf_counter() - last_commit > _COMMIT_EVERY_S:
                    for job in open_jobs:
                        self.parts[job].commit()
                    last_commit = time.perf_counter()
        except BaseException as err:  # handed to the main thread, which re-raises it
            self.error = err

    def _store(self, item: Pending) -> None:
        if item.done is not None:
            item.done.synchronize()
            self.gpu_busy_s += item.started.elapsed_time(item.done) / 1000
            if self._last_done is not None:
                self.gpu_idle_s += self._last_done.elapsed_time(item.started) / 1000
            self._last_done = item.done
        self.stores[item.job].add(item.batch, item.rows.numpy())
        if item.check is not None:
            cosines = item.check.numpy().copy()
            self.parts[item.job].record_check(cosines)
            self.checks.append(cosines)
            if self.verify is not None:
                self.verify(cosines, len(self.checks) - 1)

    def put(self, item: Pending | JobDone | None) -> None:
        while True:
            self._raise_if_failed()
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def join(self) -> None:
        """Wait for the thread after ``put(None)``; re-raise its error."""
        if self._thread is not None:
            self._thread.join()
        self._raise_if_failed()

    def stop(self) -> None:
        """After a failure in the main thread: let the thread drain and end, whatever it holds."""
        if self._thread is not None and self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self.inbox.put(None, timeout=0.5)
                    break
                except queue.Full:
                    continue
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"writing results failed: {self.error}") from self.error
