"""Each output's state during a run: its part (new, resumed or complete), its budget and what a resume skips."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .background import Background
from .claim import Claim, part_name
from .config import JobResult
from .distributed import Ranks
from .fingerprint import differences
from .jobs import Job
from .parts import NeverCommittedError, PartLayout, PartWriter, cut_tail, part_directories, part_state, read_part

if TYPE_CHECKING:
    from .task import JobOptions

__all__ = ["JobState", "check_existing", "prepare_part", "remaining"]


@dataclass
class JobState:
    """One output's state during a run."""

    job: Job
    claim: Claim
    meta: Background | None = None
    max_tokens: int = 0
    skip: np.ndarray | None = None
    part: PartWriter | None = None
    expected: Background | None = None
    result: JobResult | None = None
    failed: bool = False


def prepare_part(
    state: JobState,
    config: JobOptions,
    meta: Callable[[int], dict[str, Any]],
    default_tokens: int,
    layout: PartLayout,
    ranks: Ranks,
) -> None:
    """The job's token budget, its description for the parts (``meta(max_tokens)``: fingerprint,
    inputs, output layout, attributes), what a resume skips, and this rank's part writer."""
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
    parts = [read_part(d, layout, wanted["fingerprint"], allow_tail=True) for d in committed]
    state.skip = _done_mask(parts)
    mine = [part for part in parts if part.directory == directory]
    for part in parts:
        if part.directory != directory:  # an interrupted run with another rank count: its tail is void
            cut_tail(part)
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
            "pass --overwrite to replace it"
        )
    state.claim.done = True
    state.result = JobResult(state.job.output, 0, skipped=True)


def _committed_states(job: Job, config: JobOptions) -> dict[Path, dict[str, Any]]:
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
