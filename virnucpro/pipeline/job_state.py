"""Each output's state during a run: its part (new, resumed or complete), its budget and what a resume skips."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .background import Background
from .claim import Claim, part_name
from .config import JobResult
from .distributed import Ranks
from .fingerprint import differences
from .fixed_input import adopt, stop_marker
from .jobs import Job
from .parts import (
    STOPPED,
    NeverCommittedError,
    Part,
    PartLayout,
    PartWriter,
    cut_tail,
    part_directories,
    part_state,
    read_part,
    restate,
)
from .validation import JobCount

if TYPE_CHECKING:
    from .config import JobConfig

__all__ = ["JobState", "check_existing", "kept_records", "note_stop", "prepare_part", "remaining", "warn_empty"]

log = logging.getLogger("virnucpro")


@dataclass
class JobState:
    """One output's state during a run."""

    job: Job
    claim: Claim
    meta: Background | None = None
    max_tokens: int = 0
    skip: np.ndarray | None = None
    part: PartWriter | None = None
    others: list[Part] = field(default_factory=list)  # this shard's parts of another rank count (no one appends)
    expected: JobCount | None = None
    result: JobResult | None = None
    failed: bool = False


def prepare_part(
    state: JobState,
    config: JobConfig,
    meta: Callable[[int], dict[str, Any]],
    default_tokens: int,
    layout: PartLayout,
    ranks: Ranks,
    digest_of: Callable[[int], str],
) -> None:
    """The job's token budget, its description for the parts (``meta(max_tokens)``: fingerprint,
    inputs, output layout, attributes), what a resume skips, and this rank's part writer.

    ``digest_of(b)``: the digest of the job's records before position b, asked only when a
    resume finds the input changed since a bad record stopped its run (``fixed_input``)."""
    job = state.job
    committed = _committed_states(job, config) if config.resume else {}
    stored_tokens = next(iter(committed.values()))["fingerprint"]["max_tokens"] if committed else None
    state.max_tokens = config.max_tokens or stored_tokens or default_tokens
    state.meta = Background(lambda: meta(state.max_tokens), start=False)
    directory = job.parts_dir / part_name(config.shard, ranks.rank, ranks.world_size)
    if not config.resume:
        state.part = PartWriter.create(directory, layout, state.meta.result)
        return
    wanted = state.meta.result()
    parts = adopt([read_part(d, layout, None, allow_tail=True) for d in committed], wanted, digest_of)
    state.skip = _done_mask(parts)
    mine = [part for part in parts if part.directory == directory]
    for part in parts:
        if part.directory != directory:  # an interrupted run with another rank count: its tail is void
            cut_tail(part)
    running = {part_name(config.shard, rank, ranks.world_size) for rank in range(ranks.world_size)}
    state.others = [part for part in parts if part.directory.name not in running]
    state.part = PartWriter.resume(mine[0]) if mine else PartWriter.create(directory, layout, wanted)


def check_existing(
    state: JobState,
    meta: Callable[[int], dict[str, Any]],
    default_tokens: int,
    attributes: Callable[[Path], dict[str, Any]],
) -> None:
    """--resume found the output complete: skip it if it holds this job's results, else refuse.

    ``attributes``: the task's reader of a finished output's attributes (its fingerprint among them)."""
    stored = attributes(state.job.output).get("fingerprint", "{}")
    stored = json.loads(stored) if isinstance(stored, str) else stored  # HDF5 attributes hold it as JSON text
    wanted = meta(stored.get("max_tokens", default_tokens))["fingerprint"]
    differing = differences(stored, wanted, across_shards=True)
    if differing:
        raise FileExistsError(
            f"{state.job.output} exists and holds the results of another job (differing: {', '.join(differing)}); "
            "pass overwrite=True (CLI: --overwrite) to replace it"
        )
    state.claim.done = True
    state.result = JobResult(state.job.output, 0, skipped=True)


def _committed_states(job: Job, config: JobConfig) -> dict[Path, dict[str, Any]]:
    """This shard's parts (of any rank count) and their last commits; a part that never
    committed holds nothing and is removed, so that it cannot block the rerun."""
    states = {}
    for directory in part_directories(job.parts_dir):
        if directory.name.startswith(config.shard.prefix + "."):
            try:
                states[directory] = part_state(directory)
            except NeverCommittedError:
                shutil.rmtree(directory)
    return states


def remaining(todo: Sequence[JobState], lanes: int) -> int | None:
    """Records this process has left to embed, once every job's count is known (a share, with lanes)."""
    if not all(state.expected is not None and state.expected.done() for state in todo):
        return None
    left = sum(state.expected.result() - (0 if state.skip is None else int(state.skip.sum())) for state in todo)
    return -(-left // lanes)


def _done_mask(parts: Sequence) -> np.ndarray:
    """(M,) bool: True at every input position some part has committed."""
    indices = [part.indices() for part in parts]
    mask = np.zeros(max((int(i.max()) + 1 for i in indices if i.size), default=0), dtype=bool)
    for i in indices:
        mask[i] = True
    return mask


def warn_empty(todo: Sequence[JobState]) -> None:
    """Warn of each job whose input holds no record: almost surely a mistake (a wrong file, a failed step)."""
    for state in todo:
        if state.expected is not None and state.expected.result() == 0:
            names = ", ".join(str(path) for path in state.job.inputs)
            warnings.warn(f"{names}: no records; {state.job.output} holds none", stacklevel=2)


def kept_records(state: JobState) -> int:
    """Records of the job that a stopped run leaves written or committed."""
    if state.result is not None:
        return state.result.records
    return (state.part.records if state.part is not None else 0) + sum(part.records for part in state.others)


def note_stop(state: JobState, position: int, digest_of: Callable[[int], str], *, others: bool) -> None:
    """Note in the job's parts that a bad record at input ``position`` stopped the run (``fixed_input``),
    if they hold anything to keep; ``others``: also in this shard's parts of another rank count (one rank
    does, as no run appends to them)."""
    if kept_records(state) == 0:
        return
    try:
        marker = stop_marker(position, digest_of(position))
    except (ValueError, OSError) as err:  # e.g. the input changed meanwhile: its resume is refused, nothing lost
        log.warning("%s: could not note where the run stopped: %s", state.job.parts_dir, err)
        return
    if state.part is not None:
        state.part.notes[STOPPED] = marker
    if others:
        state.others = [restate(part, {STOPPED: marker}) for part in state.others]
