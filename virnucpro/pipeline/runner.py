"""``run_jobs``: a task's inputs to its outputs on disk, asynchronously, exactly once.

One process per GPU (torchrun for several, ``--shard`` for independent scheduler tasks):

    claim the outputs (locks; start, resume, replace or skip)  -> the task loads its models
    while the file digests and CUDA start in the background -> DataLoader workers start ->
    the task's models are copied to the device and warmed up -> batches (``loop.py``) -> each
    job's part is closed and, when this process holds all of it, assembled into its output.

What a job computes, stores and writes is the task's (``task.py``); this module knows none of it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from .background import Background, count_records
from .claim import Claim, claim_output, release
from .config import JobResult, RunResult
from .dataset import JobCollator, JobsDataset, flatten
from .distributed import Ranks, all_reduce, barrier, choose_device, process_group
from .digests import FileIdentity
from .finish import finish_job
from .fingerprint import input_identities, job_fingerprint
from .job_state import JobState, check_existing, prepare_part, remaining
from .jobs import Job, check_paths, plan_jobs
from .loop import run_batches
from .progress import Progress
from .sink import Sink
from .task import Compute, JobOptions, Plan, Task

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


def run_jobs(options: JobOptions, task: Task, stage: Stages | None = None) -> RunResult:
    """Run ``task`` over ``options``' inputs into its outputs; returns what it did (rank 0's is global).

    Raises on bad input or options, leaving no output; committed partial results stay, for ``resume``.
    """
    stage = stage or Stages()
    jobs = plan_jobs(options.inputs, options.output, options.output_dir, task.output.suffix)
    check_paths(jobs, parents=options.parents, output=task.output)
    with process_group() as ranks:
        device = choose_device(options.device, ranks)
        task.check_device(device)  # refuse what cannot run here, now
        stage("device ready")
        states = _claim(jobs, options, ranks, task)
        stage("outputs claimed")
        try:
            return _run(options, task, ranks, device, states, stage)
        except BaseException:
            _fail(states)
            raise


def _claim(jobs: Sequence[Job], options: JobOptions, ranks: Ranks, task: Task) -> list[JobState]:
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


def _run(
    options: JobOptions, task: Task, ranks: Ranks, device: torch.device, states: list[JobState], stage: Stages
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
    for state, identity in zip(todo, identities):
        meta = functools.partial(_meta, task, plan, options, state.job, identity)
        if state.claim.existing:
            check_existing(state, meta, plan.max_tokens, plan.assembly.attributes)
        else:
            prepare_part(state, options, meta, plan.max_tokens, plan.layout, ranks)
    todo = [state for state in todo if not state.claim.done]
    if not todo:
        return _nothing_to_do(states, options, ranks)
    barrier(ranks)  # every rank has read the committed state before anyone adds to it
    stage("parts ready")
    # the workers fork now, and read while the models are copied
    batches = flatten(iter(_loader(options, (task, plan), ranks, device, todo)))
    stage("workers started")
    for state in todo:
        state.meta.start()  # after the forks: a fork must not copy a thread's held locks
    if ranks.rank == 0:
        for state in todo:
            state.expected = Background(lambda s=state: count_records(s.job.inputs, task.kind))
    compute = plan.compute()
    setup_s = time.perf_counter() - started
    return _execute(options, ranks, device, (todo, states), plan, compute, batches, setup_s)


def _meta(
    task: Task,
    plan: Plan,
    options: JobOptions,
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


def _loader(
    options: JobOptions, task_plan: tuple[Task, Plan], ranks: Ranks, device: torch.device, todo: Sequence[JobState]
) -> DataLoader:
    task, plan = task_plan
    lanes = options.shard.count * ranks.world_size
    lane = options.shard.index * ranks.world_size + ranks.rank
    return DataLoader(
        JobsDataset([task.dataset(state, lane, lanes) for state in todo]),
        batch_size=None,
        collate_fn=JobCollator(plan.collate),
        num_workers=options.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if options.workers else None,
    )


def _execute(
    options: JobOptions,
    ranks: Ranks,
    device: torch.device,
    todo_states: tuple[list[JobState], list[JobState]],
    plan: Plan,
    compute: Compute,
    batches: Any,
    setup_s: float,
) -> RunResult:
    todo, states = todo_states
    alone = ranks.world_size == 1 and options.shard.count == 1  # this process holds every part

    def finish(job_index: int) -> None:
        if alone:
            _finish(todo[job_index], plan)

    parts = [state.part for state in todo]
    sink = Sink(parts, [plan.store(part) for part in parts], on_done=finish, verify=getattr(compute, "verify", None))
    sink.start()
    lanes = options.shard.count * ranks.world_size
    progress = Progress(options.progress and ranks.rank == 0, total=lambda: remaining(todo, lanes))
    try:
        stats = run_batches(batches, len(todo), compute, device, sink, progress)
        sink.put(None)
        sink.join()
    except BaseException:
        sink.stop()
        for state in todo:  # a writer that failed mid-append leaves parts its last commit must describe
            state.failed = sink.error is not None
        raise
    finally:
        progress.close()
    finishing = time.perf_counter()
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
        checks=None if checked is None else (float(checked.min()), float(checked.mean())),
    )


def _nothing_to_do(states: list[JobState], options: JobOptions, ranks: Ranks) -> RunResult:
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


def _fail(states: list[JobState]) -> None:
    """After a failure: keep what was committed (unless the writer itself failed), drop the locks."""
    for state in states:
        if state.part is not None:
            try:
                state.part.close(commit=not state.failed)
            except OSError as err:  # the run's own error is what the user must see; this one is logged
                log.warning("%s: could not commit partial results: %s", state.part.directory, err)
        release(state.claim, failed=True)
