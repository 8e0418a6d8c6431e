"""``run_embed``: FASTA on disk to embeddings on disk, asynchronously, exactly once.

One process per GPU (torchrun for several, ``--shard`` for independent scheduler tasks):

    claim the outputs (locks; start, resume, replace or skip)  -> load the model while the
    file digests, the validation pass over every input (``validation.py``) and CUDA start in
    the background -> DataLoader workers start -> the packed model is copied to the device and
    warmed up -> batches (``loop.py``), each checked against the validation pass -> each job's
    part is closed and, when this process holds all of it, assembled into its output
    (``assemble.py``).

A bad record stops the run as soon as the validation pass reaches it; the parts of its job
then note where it stopped (``fixed_input.py``), so that a resume on the fixed input keeps
what was embedded.
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
from torch import nn
from torch.utils.data import DataLoader

from virnucpro.data import SequenceDataset, Tokenizer, VarlenCollator
from virnucpro.data.tokenizer import is_per_character
from virnucpro.models import ForwardOptions, ModelFamily, family_for, get_pooling

from .background import Background
from .claim import Claim, claim_output, release
from .config import DTYPES, STORAGE, EmbedConfig, EmbedSummary, JobResult
from .dataset import JobCollator, JobsDataset, flatten
from .job_state import JobState, check_existing, kept_records, note_stop, prepare_part, remaining, warn_empty
from .finish import finish_job
from .distributed import Ranks, all_reduce, barrier, choose_device, process_group
from .fingerprint import input_identities, job_fingerprint, model_identities
from .jobs import Job, check_paths, plan_jobs
from .loop import Embedder, run_batches
from .parts import PartLayout
from .progress import Progress
from .provenance import job_attributes
from .selfcheck import SelfCheckedEmbedder
from .sink import Sink
from .validation import InputCheck, InputError, records_digest

__all__ = ["run_embed"]

log = logging.getLogger("virnucpro")

_COLUMNS = ("lengths", "input_lengths")
T = TypeVar("T")


def run_embed(config: EmbedConfig, model: nn.Module | None = None) -> EmbedSummary:
    """Embed ``config``'s inputs into its output(s); returns the summary (rank 0's is global).

    Args:
        config: the run.
        model: an already-loaded model of ``config.model``'s family to use instead of
            loading ``config.model`` (which then only names it in the output); it is not
            modified. Resuming needs the model named by ``config.model`` itself.

    Raises on bad input or options, leaving no output file; committed partial results
    stay, for ``resume``. A bad record raises ``InputError`` as soon as the validation pass
    reaches it, before the GPU reaches the records before it.
    """
    stage = _Stages()
    family = family_for(config.model)
    tokenizer = family.tokenizer(config.model)
    config = config.for_tokenizer(tokenizer)  # max_length filled in; windows and per-token checked
    jobs = plan_jobs(config.inputs, config.output, config.output_dir, ".h5")
    check_paths(jobs, parents=config.parents, per_token=config.per_token)
    if config.resume and model is not None:
        raise ValueError("resume needs the model named by config.model, not an in-memory model it cannot verify")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    with process_group() as ranks:
        device = choose_device(config.device, ranks)
        config.forward_options.resolve(device, _compute_dtype(config, device))  # refuse what cannot run here, now
        stage("device ready")
        states = _claim(jobs, config, ranks)
        stage("outputs claimed")
        check = _validate(states, config, tokenizer, ranks)
        try:
            return _run(config, (family, tokenizer), ranks, device, states, model, stage, check)
        except BaseException as err:
            stop = err if isinstance(err, InputError) else None
            _fail(states, ranks, stop, functools.partial(_digest, config=config, tokenizer=tokenizer, ranks=ranks))
            raise


def _claim(jobs: Sequence[Job], config: EmbedConfig, ranks: Ranks) -> list[JobState]:
    """Rank 0 claims every output; the other ranks learn which outputs need no work."""
    states = []
    for job in jobs:  # a failure on rank 0 ends the run; torchrun then stops the ranks waiting below
        if ranks.rank == 0:
            states.append(
                JobState(job, claim_output(job, config.shard, overwrite=config.overwrite, resume=config.resume))
            )
        else:
            states.append(JobState(job, Claim(job)))
    barrier(ranks)
    done = all_reduce(ranks, *(int(state.claim.done) for state in states))
    for state, is_done in zip(states, done):
        state.claim.done = bool(is_done)
        if is_done:
            state.result = JobResult(state.job.output, 0, skipped=True)
    return states


def _validate(states: list[JobState], config: EmbedConfig, tokenizer: Tokenizer, ranks: Ranks) -> InputCheck | None:
    """Start the validation pass over the inputs of every job that has work to do; None if none has."""
    todo = [state for state in states if not (state.claim.done or state.claim.existing)]
    if not todo:
        return None
    datasets = [(s.job.output, functools.partial(_dataset, s, config, tokenizer, ranks, whole=True)) for s in todo]
    check = InputCheck(datasets, config.command)
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


def _digest(state: JobState, position: int, *, config: EmbedConfig, tokenizer: Tokenizer, ranks: Ranks) -> str:
    """The digest of ``state``'s job's records before ``position`` (``validation.records_digest``)."""
    return records_digest(_dataset(state, config, tokenizer, ranks, whole=True), position)


def _run(
    config: EmbedConfig,
    family_tokenizer: tuple[ModelFamily, Tokenizer],
    ranks: Ranks,
    device: torch.device,
    states: list[JobState],
    model: nn.Module | None,
    stage: _Stages,
    check: InputCheck | None,
) -> EmbedSummary:
    started = time.perf_counter()
    family, tokenizer = family_tokenizer
    todo = [state for state in states if not state.claim.done]
    if not todo:
        return _nothing_to_do(states, config, ranks)
    # SHA-256 of the checkpoint and inputs, for the fingerprint and provenance, hashed from now on
    # while the model is loaded and copied: the first run after a checkpoint is written hashes
    # gigabytes. These threads may run across the DataLoader's fork: they only read and digest
    # files, holding no lock that a forked worker could inherit held (the fork's hazard).
    model_file = Background(lambda: stage.after(model_identities(family, config.model), "checkpoint hashed"))
    identities = [Background(lambda s=s: stage.after(input_identities(s.job.inputs), "inputs hashed")) for s in todo]
    dtype = _compute_dtype(config, device)
    if model is None:  # as stored (e.g. fp16, memory-mapped): the packed copy converts once, on the device
        model, _ = family.load(config.model, dtype=None)
        stage("checkpoint mapped")
    if not config.resume:  # a resume first verifies its parts, to note in them where the run stopped
        _raise_failure(check)
    layers = family.layers(config.layers, model)
    options = config.forward_options.resolve(device, dtype)
    layout = PartLayout((len(layers), model.embed_dim), np.dtype(config.storage), _COLUMNS + config.kind.columns)
    default_tokens = config.max_tokens or family.max_tokens(model, dtype, device, len(layers), matmul=options.matmul)
    meta = functools.partial(
        _meta, config, (family, tokenizer), device, (model.embed_dim, layers, dtype, options), model_file=model_file
    )
    digest = functools.partial(_digest, config=config, tokenizer=tokenizer, ranks=ranks)
    for state, identity in zip(todo, identities):
        if state.claim.existing:
            check_existing(state, functools.partial(meta, state.job, identity), default_tokens)
        else:
            describe = functools.partial(meta, state.job, identity)
            prepare_part(state, config, describe, default_tokens, layout, ranks, functools.partial(digest, state))
    todo = [state for state in todo if not state.claim.done]
    if not todo:
        return _nothing_to_do(states, config, ranks)
    barrier(ranks)  # every rank has read the committed state before anyone adds to it
    stage("parts ready")
    if check is not None:
        check.ready.wait()  # the pass holds no import lock once reading: the workers' fork cannot inherit one
    _raise_failure(check)
    # workers fork now and read while the model is copied
    batches = _checked(flatten(iter(_loader(config, tokenizer, ranks, device, todo))), check)
    stage("workers started")
    for state in todo:
        state.meta.start()  # after the forks: a fork must not copy a thread's held locks
    embed = _embedder(config, family, model, dtype, device, options, layers, stage)
    _raise_failure(check)
    if check is not None and check.seconds is not None:  # logged here: the pass's thread never logs (forks)
        log.debug("set-up: the validation pass had read every input in %.2f s", check.seconds)
    setup_s = time.perf_counter() - started
    count_tokens = not is_per_character(tokenizer)
    return _embed(
        config, ranks, device, todo, states, embed, options, batches, setup_s, check, count_tokens=count_tokens
    )


def _raise_failure(check: InputCheck | None) -> None:
    """Stop the run if the validation pass has found a bad record."""
    if check is not None:
        check.raise_failure()


class _Stages:
    """Logs each set-up stage at DEBUG with the seconds since ``run_embed`` began: where start-up goes."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, name: str) -> None:
        log.debug("set-up: %s at %.2f s", name, time.perf_counter() - self.start)

    def after(self, value: T, name: str) -> T:
        """``value``, once ``name`` is logged: the stage of a background computation."""
        self(name)
        return value


def _compute_dtype(config: EmbedConfig, device: torch.device) -> torch.dtype:
    return DTYPES[config.dtype or ("bf16" if device.type == "cuda" else "fp32")]


def _embedder(
    config: EmbedConfig,
    family: ModelFamily,
    model: nn.Module,
    dtype: torch.dtype,
    device: torch.device,
    options: ForwardOptions,
    layers: tuple[int, ...],
    stage: _Stages,
) -> Embedder | SelfCheckedEmbedder:
    """The packed model on the device, warmed up, with pooling; with FP8, a bf16 copy to check it against."""
    pooling = get_pooling(config.pooling, include_special_tokens=family.mean_includes_special_tokens)
    packed = family.packed(model, dtype=dtype, device=device, options=options)
    stage("model on the device")
    packed.warm_up()
    stage("warmed up")
    embed = Embedder(packed, layers, pooling)
    if options.matmul != "fp8":
        return embed
    native = dataclasses.replace(options, matmul="native")
    reference = family.packed(model, dtype=dtype, device=device, options=native)
    reference.warm_up()
    stage("bf16 reference for the FP8 self-check on the device, warmed up")
    return SelfCheckedEmbedder(embed, Embedder(reference, layers, pooling), config.fp8_check)


def _meta(
    config: EmbedConfig,
    family_tokenizer: tuple[ModelFamily, Tokenizer],
    device: torch.device,
    computed: tuple[int, tuple[int, ...], torch.dtype, Any],
    job: Job,
    identity: Background,
    max_tokens: int,
    *,
    model_file: Background,
) -> dict[str, Any]:
    """What a job's parts record of it: fingerprint, inputs, output layout and attributes."""
    embed_dim, layers, dtype, options = computed
    family, tokenizer = family_tokenizer
    fingerprint = job_fingerprint(
        config, family, identity.result(), model_file.result(), layers, dtype, max_tokens, options
    )
    row_shape = (embed_dim,) if len(layers) == 1 else (len(layers), embed_dim)
    return {
        "fingerprint": fingerprint,
        "inputs": [str(path.resolve()) for path in job.inputs],
        "output": {
            "per_token": config.per_token,
            "row_shape": list(row_shape),
            "storage": config.storage,
            "special_tokens": tokenizer.special_tokens_per_sequence,
            "counted_tokens": not is_per_character(tokenizer),
        },
        "attributes": job_attributes(config, job.inputs, fingerprint, device, model_file.result()),
    }


def _loader(
    config: EmbedConfig, tokenizer: Tokenizer, ranks: Ranks, device: torch.device, todo: Sequence[JobState]
) -> DataLoader:
    # One tokenizer object for the datasets and the collator: batches whose budgeting encoded
    # their tokens carry them (``Encoded``), and the collator takes them from its own tokenizer.
    return DataLoader(
        JobsDataset([_dataset(state, config, tokenizer, ranks) for state in todo]),
        batch_size=None,
        collate_fn=JobCollator(VarlenCollator(tokenizer)),
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if config.workers else None,
    )


def _dataset(
    state: JobState, config: EmbedConfig, tokenizer: Tokenizer, ranks: Ranks, *, whole: bool = False
) -> SequenceDataset:
    """This rank's share of the job's records, batched; ``whole``: every record, unbatched (validation)."""
    lanes = config.shard.count * ranks.world_size
    return SequenceDataset(
        state.job.inputs,
        max_length=config.max_length,
        max_tokens=None if whole else state.max_tokens,
        invalid=config.invalid,
        on_overlength=config.on_overlength,
        window_stride=config.window_stride,
        allow_nucleotide_like=config.allow_nucleotide_like,
        skip=None if whole else state.skip,
        rank=0 if whole else config.shard.index * ranks.world_size + ranks.rank,
        world_size=1 if whole else lanes,
        report=False,
        tokenizer=tokenizer,
        kind=config.kind,
    )


def _embed(
    config: EmbedConfig,
    ranks: Ranks,
    device: torch.device,
    todo: list[JobState],
    states: list[JobState],
    embed: Embedder | SelfCheckedEmbedder,
    options: ForwardOptions,
    batches: Any,
    setup_s: float,
    check: InputCheck | None,
    *,
    count_tokens: bool,
) -> EmbedSummary:
    alone = ranks.world_size == 1 and config.shard.count == 1  # this process holds every part

    def finish(job_index: int) -> None:
        if alone:
            _finish(todo[job_index])

    verify = embed.verify if isinstance(embed, SelfCheckedEmbedder) else None
    sink = Sink(
        [state.part for state in todo], on_done=finish, per_token=config.per_token, count_tokens=count_tokens, verify=verify
    )
    sink.start()
    lanes = config.shard.count * ranks.world_size
    progress = Progress(config.progress and ranks.rank == 0, total=lambda: remaining(todo, lanes))
    try:
        stop = check.raise_failure if check is not None else None
        stats = run_batches(batches, len(todo), embed, device, STORAGE[config.storage], sink, progress, stop)
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
    if ranks.rank == 0:
        warn_empty(todo)
    totals = all_reduce(ranks, stats.records, stats.tokens)
    barrier(ranks)
    if ranks.rank == 0 and not alone and config.shard.count == 1:
        for state in todo:
            _finish(state)
    barrier(ranks)
    for state in states:
        release(state.claim, failed=False)
    gpu_wait = sink.gpu_idle_s if device.type == "cuda" else stats.input_wait
    checked = np.concatenate(sink.checks) if sink.checks else None
    return EmbedSummary(
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
        options=options,
        world_size=ranks.world_size,
        fp8_check=None if checked is None else (float(checked.min()), float(checked.mean())),
    )


def _nothing_to_do(states: list[JobState], config: EmbedConfig, ranks: Ranks) -> EmbedSummary:
    for state in states:
        release(state.claim, failed=False)
    return EmbedSummary(
        jobs=tuple(state.result for state in states), records=0, tokens=0, wall_s=0.0, input_wait=0.0,
        startup_s=0.0, setup_s=0.0, finish_s=0.0, max_tokens=config.max_tokens or 0, peak_gpu_bytes=0,
        options=config.forward, world_size=ranks.world_size,
    )  # fmt: skip


def _finish(state: JobState) -> None:
    """Check the job's parts cover its input exactly once and write its output."""
    state.result = finish_job(state.job, state.expected.result())


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
