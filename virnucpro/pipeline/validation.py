"""The validation pass: each job's whole input read and normalised once more, in a thread, ahead of the GPU.

DataLoader workers meet a bad record only when the batches reach it, so a bad record late
in a sample used to be found after the GPU had embedded everything before it. This pass
starts while the model loads and reads every job's input, job after job, exactly as the
workers read it (the same ``SequenceDataset``, whole and unsharded). Parsing runs at
millions of residues a second (``benchmarks/parse_cost.py``), far ahead of any GPU, and the
batch loop checks the pass before every batch: a bad record anywhere stops the run before
the GPU reaches the records before it. The pass also counts each job's records, which the
exact-once check of assembly needs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from virnucpro.data import SequenceDataset
from virnucpro.text import resume_command

__all__ = ["EMBED", "InputCheck", "InputError", "JobCount", "records_digest"]


#: How an ``InputError`` names ``embed``: its library call and what it does to a record.
EMBED = ("run_embed", "embedded")


class InputError(ValueError):
    """A bad record (or unreadable input) that the validation pass found; the run stops before embedding it.

    Attributes:
        reason: the data layer's one-line message: file, record, character, position and fix.
        output: the output of the job whose input holds it.
        position: its input position in that job: the records before it, all good.
        command: the run's command line, to say how to rerun it ("" when called as a library).
        task: how the message names the task: its library call and what it does to a record
            (("run_embed", "embedded"), ("run_predict", "classified")).
        kept: records the stopped run leaves committed or written; set when the run has stopped.
    """

    def __init__(self, reason: str, output: Path, position: int, command: str = "", task: tuple[str, str] = EMBED):
        super().__init__(reason)
        self.reason, self.output, self.position, self.command = reason, output, position, command
        self.entry, self.done = task
        self.kept = 0

    def __str__(self) -> str:
        if self.kept:
            again = f"resume=True (CLI: {resume_command(self.command)})" if self.command else "resume=True"
            return (
                f"{self.reason}; the run stopped there and keeps the {self.kept:,} records {self.done} before it: "
                f"once the input is fixed, resume: {again}"
            )
        again = f"{self.entry} (CLI: {self.command})" if self.command else self.entry
        return f"{self.reason}; nothing was {self.done}: once the input is fixed, run again: {again}"


class JobCount:
    """One job's share of the pass, read like a ``Background``: ``done()``, and ``result()``, which waits
    for the job's record count and raises its ``InputError`` (or that of an earlier job, which stopped the pass)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._count = 0
        self._error: BaseException | None = None

    def _set(self, count: int = 0, error: BaseException | None = None) -> None:
        self._count, self._error = count, error
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> int:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._count


class InputCheck:
    """Validates the jobs' inputs in job order in one daemon thread, started at construction.

    Args:
        datasets: per job, its output and a function that builds its whole, unsharded dataset.
        command: the run's command line, for the rerun hint of an ``InputError``.
        task: how an ``InputError`` names the task (``InputError``'s ``task``).

    ``ready`` is set once the pass has read its first record (or ended): from then on it
    holds no import lock, so DataLoader workers may be forked. ``failure`` is the first
    ``InputError``, once found; ``seconds`` what the whole pass took, once it has ended.
    """

    def __init__(
        self,
        datasets: Sequence[tuple[Path, Callable[[], SequenceDataset]]],
        command: str = "",
        task: tuple[str, str] = EMBED,
    ):
        self.jobs = [JobCount() for _ in datasets]
        self.command, self.task = command, task
        self.ready = threading.Event()
        self.failure: InputError | None = None
        self.seconds: float | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(list(datasets),), name="virnucpro-validation")
        self._thread.daemon = True  # never waited for at exit: a failed run must not wait for a long input
        self._thread.start()

    def raise_failure(self) -> None:
        """Raise the pass's ``InputError`` if it has found one; returns at once otherwise."""
        if self.failure is not None:
            raise self.failure

    def wait(self) -> InputError | None:
        """Wait for the whole pass; its ``InputError``, or None when every input is good."""
        self._finished.wait()
        return self.failure

    def _run(self, datasets: list[tuple[Path, Callable[[], SequenceDataset]]]) -> None:
        error: BaseException | None = None
        start = time.perf_counter()
        try:
            for (output, dataset), job in zip(datasets, self.jobs):
                job._set(self._count(output, dataset))
        except InputError as err:
            self.failure = error = err
        except BaseException as err:  # a bug, not bad input: whoever waits for a count gets it
            error = err
        finally:
            for job in self.jobs:  # the failed job and every later one, never validated
                if not job.done():
                    job._set(error=error)
            self.seconds = time.perf_counter() - start
            self.ready.set()
            self._finished.set()

    def _count(self, output: Path, dataset: Callable[[], SequenceDataset]) -> int:
        count = 0
        try:
            for record in dataset().records():
                count = record.index + 1  # windows of one protein share its index
                if not self.ready.is_set():
                    self.ready.set()
        except (ValueError, OSError) as err:  # the data layer's one-line errors: bad input
            raise InputError(str(err), output, count, self.command, self.task) from err
        return count


def records_digest(dataset: SequenceDataset, stop: int) -> str:
    """SHA-256 of the records at input positions ``< stop`` as the model is given them.

    Covers what the stored rows depend on: position, id, residues given to the model,
    input length, window start and the input kind's columns. The record at ``stop`` may be
    bad (it is where a run stopped); raises the data layer's ``ValueError`` for a bad record
    before it.
    """
    digest = hashlib.sha256()
    last = -1
    records = dataset.records()
    while last < stop:
        try:
            record = next(records, None)
        except ValueError:
            if last == stop - 1:  # every window of the record before was yielded before the next was read
                break
            raise
        if record is None or record.index >= stop:
            break
        last = record.index
        columns = ",".join(f"{name}={value}" for name, value in sorted(record.columns.items()))
        line = f"{record.index}\t{record.id}\t{record.length}\t{record.window_start}\t{columns}\t{record.sequence}\n"
        digest.update(line.encode())
    digest.update(f"{stop}\n".encode())
    return digest.hexdigest()
