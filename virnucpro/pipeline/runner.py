"""``run_jobs``: a task's inputs to its outputs on disk, asynchronously, exactly once.

One process per GPU (torchrun for several, ``--shard`` for independent scheduler tasks):

    claim the outputs (locks; start, resume, replace or skip)  -> the task loads its models
    while the file digests, the validation pass over every input (``validation.py``) and CUDA
    start in the background -> DataLoader workers start -> the task's models are copied to the
    device and warmed up -> batches (``loop.py``), each checked against the validation pass ->
    each job's part is closed and, when this process holds all of it, assembled into its output.

A bad record stops the run as soon as the validation pass reaches it; the parts of its job
then note where it stopped (``fixed_input.py``), so that a resume on the fixed input keeps
what was computed. What a job computes, stores and writes is the task's (``task.py``); this
module knows none of it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from .background import Background
from .claim import Claim, claim_output, release
from .config import JobConfig, JobResult, RunResult
from .dataset import JobCollator, JobsDataset, flatten
from .distributed import Ranks, all_reduce, barrier, choose_device, process_group
from .digests import FileIdentity
from .finish import finish_job
from .fingerprint import input_identities, job_fingerprint
from .job_state import JobState, check_existing, kept_records, note_stop, prepare_part, remaining, warn_empty
from .jobs import Job, check_paths, plan_jobs
from .loop import run_batches
from .progress import Progress
from .sink import Sink
from .task import Compute, Plan, Task
from .validation import InputCheck, InputError, records_digest

__all__ = ["RunResult", "Stages", "run_jobs"]

log = logging.getLogger("virnucpro")
T = TypeVar("T")


class Stages:
    """Logs each set-up stage at DEBUG with the seconds since the run began: where start-up goes."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, name: str) -> None:
        log.debug("set-up: %s at %.2f s", name, time.perf_counter() - self.start)

    def after(self, value: T, name: str) -> T:
        """``value``, once ``name`` is logged: the stage of a background computation."""
        self(name)
        return value


def run_jobs(options: JobConfig, task: Task, stage: Stages | None = None) -> RunResult:
    """Run ``task`` over ``options``' inputs into its outputs; returns what it did (rank 0's is global).

    Raises on bad input or options, leaving no output; committed partial results stay, for ``resume``.
    A bad record raises ``InputError`` as soon as the validation pass reaches it, before the GPU
    reaches the records before it.
    """
    stage = stage or Stages()
    jobs = plan_jobs(options.inputs, options.output, options.output_dir, task.output.suffix)
    check_paths(jobs, parents=options.parents, output=task.output)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    with process_group() as ranks:
        device = choose_device(options.device, ranks)
        task.check_device(device)  # refuse what cannot run here, now
        stage("device ready")
        states = _claim(jobs, options, ranks, task)
        stage("outputs claimed")
        check = _validate(states, options, task)
        try:
            return _run(options, task, ranks, device, states, stage, check)
        except BaseException as err:
            if check is not None:
                check.stop()
            stop = err if isinstance(err, InputError) else None
            _fail(states, ranks, stop, functools.partial(_digest, task))
            raise


def _claim(jobs: Sequence[Job], options: JobConfig, ranks: Ranks, task: Task) -> list[JobState]:
    """Rank 0 claims every output; the other ranks learn which outputs need no work."""
    states = []
    for job in jobs:  # a failure on rank 0 ends the run; torchrun then stops the ranks waiting below
        if ranks.rank == 0:
            claim = claim_output(
                job, options.shard, overwrite=options.overwrite, resume=options.resume, output=task.output
            )
            states.append(JobState(job, claim))
        else:
            states.append(JobState(job, Claim(job)))
    barrier(ranks)
    done = all_reduce(ranks, *(int(state.claim.done) for state in states))
    for state, is_done in zip(states, done):
        state.claim.done = bool(is_done)
        if is_done:
            state.result = JobResult(state.job.output, 0, skipped=True)
    return states


def _validate(states: list[JobState], options: JobConfig, task: Task) -> InputCheck | None:
    """Start the validation pass over the inputs of every job that has work to do; None if none has.
    Its per-job counts are what the exact-once check expects."""
    todo = [state for state in states if not (state.claim.done or state.claim.existing)]
    if not todo:
        return None
    datasets = [(s.job.output, functools.partial(task.dataset, s, 0, 1, whole=True)) for s in todo]
    check = InputCheck(datasets, options.command, task.entry)
    for state, count in zip(todo, check.jobs):
        state.expected = count
    return check


def _checked(batches: Iterator[Any], check: InputCheck | None) -> Iterator[Any]:
    """The loader's batches; a bad record that a worker meets first is raised as the validation pass's
    ``InputError`` (the pass meets it too, or an earlier one), which says how to rerun."""
    try:
        yield from batches
    except ValueError:
        if check is not None and (stop := check.wait()) is not None:
            raise stop from None
        raise


def _digest(task: Task, state: JobState, position: int) -> str:
    """The digest of ``state``'s job's records before ``position`` (``validation.records_digest``)."""
    return records_digest(task.dataset(state, 0, 1, whole=True), position)


def _raise_failure(check: InputCheck | None) -> None:
    """Stop the run if the validation pass has found a bad record."""
    if check is not None:
        check.raise_failure()


def _run(
    options: JobConfig,
    task: Task,
    ranks: Ranks,
    device: torch.device,
    states: list[JobState],
    stage: Stages,
    check: InputCheck | None,
) -> RunResult:
    started = time.perf_counter()
    todo = [state for state in states if not state.claim.done]
    if not todo:
        return _nothing_to_do(states, options, ranks)
    # SHA-256 of the inputs, for the fingerprint and provenance, hashed from now on while the
    # models load. These threads may run across the DataLoader's fork: they only read and
    # digest files, holding no lock that a forked worker could inherit held (the fork's hazard).
    identities = [Background(lambda s=s: stage.after(input_identities(s.job.inputs), "inputs hashed")) for s in todo]
    plan = task.plan(device, stage)
    if not options.resume:  # a resume first verifies its parts, to note in them where the run stopped
        _raise_failure(check)
    for state, identity in zip(todo, identities):
        meta = functools.partial(_meta, task, plan, options, state.job, identity)
        if state.claim.existing:
            check_existing(state, meta, plan.max_tokens, plan.assembly.attributes)
        else:
            digest = functools.partial(_digest, task, state)
            prepare_part(state, options, meta, plan.max_tokens, plan.layout, ranks, digest)
    todo = [state for state in todo if not state.claim.done]
    if not todo:
        return _nothing_to_do(states, options, ranks)
    barrier(ranks)  # every rank has read the committed state before anyone adds to it
    stage("parts ready")
    if check is not None:
        check.ready.wait()  # the pass holds no lock the workers' fork could inherit (InputCheck.ready)
    _raise_failure(check)
    # the workers fork now, and read while the models are copied
    batches = _checked(flatten(iter(_loader(options, task, ranks, device, todo))), check)
    stage("workers started")
    for state in todo:
        state.meta.start()  # after the forks: a fork must not copy a thread's held locks
    compute = plan.compute()
    _raise_failure(check)
    if check is not None and check.seconds is not None:  # logged here: the pass's thread never logs (forks)
        log.debug("set-up: the validation pass had read every input in %.2f s", check.seconds)
    setup_s = time.perf_counter() - started
    result = _execute(options, ranks, device, (todo, states), (plan, compute, check), batches, (setup_s, stage))
    return dataclasses.replace(result, workers=_workers(options, task))


def _meta(
    task: Task,
    plan: Plan,
    options: JobConfig,
    job: Job,
    identity: Background[list[FileIdentity]],
    max_tokens: int,
) -> dict[str, Any]:
    """What a job's parts record of it: its task, fingerprint, inputs, output description and attributes."""
    fingerprint = job_fingerprint(
        task.name, identity.result(), task.kind, max_tokens, options.shard.count, plan.fingerprint()
    )
    return {
        "task": task.name,
        "fingerprint": fingerprint,
        "inputs": [str(path.resolve()) for path in job.inputs],
        "output": plan.output,
        "attributes": plan.attributes(job, fingerprint),
    }


def _workers(options: JobConfig, task: Task) -> int:
    return task.workers if options.workers is None else options.workers


def _loader(options: JobConfig, task: Task, ranks: Ranks, device: torch.device, todo: Sequence[JobState]) -> DataLoader:
    lanes = options.shard.count * ranks.world_size
    lane = options.shard.index * ranks.world_size + ranks.rank
    workers = _workers(options, task)
    return DataLoader(
        JobsDataset([task.dataset(state, lane, lanes) for state in todo]),
        batch_size=None,
        collate_fn=JobCollator(task.collate),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


def _execute(
    options: JobConfig,
    ranks: Ranks,
    device: torch.device,
    todo_states: tuple[list[JobState], list[JobState]],
    computing: tuple[Plan, Compute, InputCheck | None],
    batches: Any,
    setup: tuple[float, Stages],
) -> RunResult:
    todo, states = todo_states
    setup_s, stage = setup
    plan, compute, check = computing
    alone = ranks.world_size == 1 and options.shard.count == 1  # this process holds every part

    def finish(job_index: int) -> None:  # in the writer thread, once the job's last batch is stored
        if alone:
            stage(f"job {job_index}: last batch stored")
            _finish(todo[job_index], plan)
            stage(f"job {job_index}: assembled")

    parts = [state.part for state in todo]
    sink = Sink(parts, [plan.store(part) for part in parts], on_done=finish, verify=getattr(compute, "verify", None))
    sink.start()
    lanes = options.shard.count * ranks.world_size
    progress = Progress(options.progress and ranks.rank == 0, total=lambda: remaining(todo, lanes))
    try:
        stop = check.raise_failure if check is not None else None
        stats = run_batches(batches, len(todo), compute, device, sink, progress, stop)
        stage("last batch queued")
        sink.put(None)
        sink.join()
        stage("writer done")
    except BaseException:
        sink.stop()
        for state in todo:  # a writer that failed mid-append leaves parts its last commit must describe
            state.failed = sink.error is not None
        raise
    finally:
        progress.close()
    finishing = time.perf_counter()
    if ranks.rank == 0:
        warn_empty(todo)
    totals = all_reduce(ranks, stats.records, stats.tokens)
    barrier(ranks)
    if ranks.rank == 0 and not alone and options.shard.count == 1:
        for state in todo:
            _finish(state, plan)
    barrier(ranks)
    for state in states:
        release(state.claim, failed=False)
    gpu_wait = sink.gpu_idle_s if device.type == "cuda" else stats.input_wait
    checked = np.concatenate(sink.checks) if sink.checks else None
    return RunResult(
        jobs=tuple(state.result or JobResult(state.job.output, 0, assembled=False) for state in states),
        records=totals[0],
        tokens=totals[1],
        wall_s=stats.wall_s,
        input_wait=gpu_wait / max(stats.wall_s, 1e-9),
        startup_s=stats.startup_s,
        setup_s=setup_s,
        finish_s=time.perf_counter() - finishing,
        max_tokens=todo[0].max_tokens if todo else 0,
        peak_gpu_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0,
        world_size=ranks.world_size,
        gpu_busy_s=sink.gpu_busy_s,
        checks=None if checked is None else (float(checked.min()), float(checked.mean())),
    )


def _nothing_to_do(states: list[JobState], options: JobConfig, ranks: Ranks) -> RunResult:
    for state in states:
        release(state.claim, failed=False)
    return RunResult(
        jobs=tuple(state.result for state in states), records=0, tokens=0, wall_s=0.0, input_wait=0.0,
        startup_s=0.0, setup_s=0.0, finish_s=0.0, max_tokens=options.max_tokens or 0, peak_gpu_bytes=0,
        world_size=ranks.world_size,
    )  # fmt: skip


def _finish(state: JobState, plan: Plan) -> None:
    """Check the job's parts cover its input exactly once and write its output."""
    state.result = finish_job(state.job, state.expected.result(), plan.assembly)


def _fail(
    states: list[JobState], ranks: Ranks, stop: InputError | None, digest: Callable[[JobState, int], str]
) -> None:
    """After a failure: keep what was committed (unless the writer itself failed), drop the locks.

    ``stop``: the bad record that stopped the run, noted in its job's parts (``fixed_input``) and
    told how many records the run keeps; ``digest(state, position)`` as ``_digest``.
    """
    for state in states:
        if stop is not None and state.job.output == stop.output and not state.failed:
            note_stop(state, stop.position, functools.partial(digest, state), others=ranks.rank == 0)
        if state.part is not None:
            try:  # a part that never received a record is not committed: its folder then goes (release)
                state.part.close(commit=not state.failed and state.part.records > 0)
            except OSError as err:  # the run's own error is what the user must see; this one is logged
                log.warning("%s: could not commit partial results: %s", state.part.directory, err)
        release(state.claim, failed=True)
    if stop is not None:
        stop.kept = sum(kept_records(state) for state in states)
