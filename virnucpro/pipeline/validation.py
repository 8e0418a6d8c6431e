"""The validation pass: each job's whole input read and normalised once more, in its own process, ahead of the GPU.

DataLoader workers meet a bad record only when the batches reach it, so a bad record late
in a sample used to be found after the GPU had embedded everything before it. This pass
starts while the model loads and reads every job's input, job after job, exactly as the
workers read it (the same ``SequenceDataset``, whole and unsharded). Parsing runs at
millions of residues a second (``benchmarks/parse_cost.py``), far ahead of any GPU, and the
batch loop checks the pass before every batch: a bad record anywhere stops the run before
the GPU reaches the records before it. The pass also counts each job's records, which the
exact-once check of assembly needs.

The pass runs in a forked child process (where ``fork`` exists, else in a thread): parsing is
Python, and in a thread it held the GIL against the run's own set-up and batch loop. On an H100
with 8 DataLoader workers it delayed the workers' start by 0.3-0.8 s, and a pass still running
when the batches began was starved by them until the job's end waited for its count
(``benchmarks/results/device_2026-12-07b.md``). A thread here only waits on the child's pipe.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from virnucpro.data import SequenceDataset
from virnucpro.data.isolation import die_with_parent
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
    """Validates the jobs' inputs in job order, in a child process (a thread where ``fork`` is
    missing), started at construction; a daemon thread of this process follows it.

    Args:
        datasets: per job, its output and a function that builds its whole, unsharded dataset.
        command: the run's command line, for the rerun hint of an ``InputError``.
        task: how an ``InputError`` names the task (``InputError``'s ``task``).

    ``ready`` is set once DataLoader workers may be forked: at once with a child process (the
    following thread holds no lock), else once the pass has read its first record (from then on
    it holds no import lock). ``failure`` is the first ``InputError``, once found; ``seconds``
    what the whole pass took, once it has ended. ``stop()`` ends a pass no longer needed.
    """

    def __init__(
        self,
        datasets: Sequence[tuple[Path, Callable[[], SequenceDataset]]],
        command: str = "",
        task: tuple[str, str] = EMBED,
    ):
        self.jobs = [JobCount() for _ in datasets]
        self.outputs = [output for output, _ in datasets]
        self.command, self.task = command, task
        self.ready = threading.Event()
        self.failure: InputError | None = None
        self.seconds: float | None = None
        self._finished = threading.Event()
        self._start = time.perf_counter()
        self._process = _fork_pass(list(datasets)) if _CAN_FORK else None
        if self._process is not None:
            self.ready.set()
            target, args = self._follow, self._process
        else:
            target, args = self._run_here, list(datasets)
        self._thread = threading.Thread(target=target, args=(args,), name="virnucpro-validation")
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

    def stop(self) -> None:
        """End the child process of a pass whose run has failed: it would read the rest for nothing."""
        if self._process is not None and self._process[0].is_alive():
            self._process[0].terminate()

    def _follow(self, process: tuple[multiprocessing.Process, Any]) -> None:
        """This thread's side of a child pass: its messages (``_pass_messages``) turned into counts and errors."""
        child, pipe = process
        error: BaseException | None = None
        try:
            while (message := _receive(pipe)) is not None:
                kind, job, value, position = message
                if kind == "count":
                    self.jobs[job]._set(value)
                elif kind == "bad":
                    self.failure = error = InputError(value, self.outputs[job], position, self.command, self.task)
                    break
                else:  # a bug in the pass, not bad input: whoever waits for a count gets it
                    description, child_traceback = value
                    error = RuntimeError(
                        f"the validation pass failed: {description} (a bug: --log-level DEBUG shows where; please report it)"
                    )
                    # the child's traceback, for --log-level DEBUG (exception chains print in 3.10 too)
                    error.__cause__ = RuntimeError(f"in the validation pass's process:\n{child_traceback}")
                    break
        finally:
            child.join()
            if error is None and not all(job.done() for job in self.jobs):
                error = RuntimeError(
                    f"the validation pass's process ended before reading every input (exit code {child.exitcode}); "
                    "rerun, and if it recurs, look for a memory limit or a signal that ended it"
                )
            self._end(error)

    def _run_here(self, datasets: list[tuple[Path, Callable[[], SequenceDataset]]]) -> None:
        """The pass in this thread, where ``fork`` is missing."""
        error: BaseException | None = None
        try:
            for (output, dataset), job in zip(datasets, self.jobs):
                count, reason = _count(dataset, self.ready.set)
                if reason is not None:
                    self.failure = error = InputError(reason, output, count, self.command, self.task)
                    break
                job._set(count)
        except BaseException as err:  # a bug, not bad input: whoever waits for a count gets it
            error = err
        finally:
            self._end(error)

    def _end(self, error: BaseException | None) -> None:
        for job in self.jobs:  # the failed job and every later one, never validated
            if not job.done():
                job._set(error=error)
        self.seconds = time.perf_counter() - self._start
        self.ready.set()
        self._finished.set()


#: Whether the pass can run in a forked child (Linux; the DataLoader workers fork there too).
_CAN_FORK = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _count(dataset: Callable[[], SequenceDataset], reading: Callable[[], None]) -> tuple[int, str | None]:
    """(records read, None), or (records before the bad one, the data layer's one-line reason).
    ``reading()`` is called once the first record has been read."""
    count = 0
    try:
        for record in dataset().records():
            if not count:
                reading()
            count = record.index + 1  # windows of one protein share its index
    except (ValueError, OSError) as err:  # the data layer's one-line errors: bad input
        return count, str(err)
    return count, None


def _fork_pass(datasets: list[tuple[Path, Callable[[], SequenceDataset]]]) -> tuple[multiprocessing.Process, Any]:
    """Fork the child that runs the pass (``_pass_messages``); (the child, the pipe's reading end)."""
    context = multiprocessing.get_context("fork")
    reading, writing = context.Pipe(duplex=False)
    child = context.Process(target=_pass_messages, args=([d for _, d in datasets], writing), daemon=True)
    child.start()
    writing.close()  # the child holds the only writing end: its exit is this end's EOF
    return child, reading


def _pass_messages(datasets: list[Callable[[], SequenceDataset]], pipe: Any) -> None:
    """In the child: each job's ``("count", job, count, 0)``, or ``("bad", job, reason, position)`` and stop;
    ``("bug", job, (description, traceback), 0)`` for anything else."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; this child ends with it
    die_with_parent()
    for job, dataset in enumerate(datasets):
        try:
            count, reason = _count(dataset, lambda: None)
        except BaseException as err:
            pipe.send(("bug", job, (f"{type(err).__name__}: {err}", traceback.format_exc()), 0))
            return
        if reason is not None:
            pipe.send(("bad", job, reason, count))
            return
        pipe.send(("count", job, count, 0))


def _receive(pipe: Any) -> tuple[str, int, Any, int] | None:
    """The child's next message; None once it has ended."""
    try:
        return pipe.recv()
    except (EOFError, OSError):
        return None


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
