"""The seam between the job machinery and a task (``embed``, ``predict``).

The machinery (claims, locks, parts, fingerprints, resume, shards, assembly: ``runner.py``)
knows nothing of what a job computes. A task hands it:

* ``Task``: its name, the shape of its outputs (``OutputKind``: a file or a folder), its input
  kind, records and batches (``kind``, ``dataset``, ``collate``: known before any model loads,
  so that the validation pass reads the inputs while the models load), a check of the device,
  and ``plan``: its models loaded on the host, as a ``Plan``;
* ``Plan``: the per-batch computation
  (``compute``: a batch on the device -> rows), how a batch's rows are appended to a part
  (``store``), the part layout, the token budget, and what the parts record of the job
  (fingerprint fields, output description, attributes);
* ``Assembly``: how the parts become the output, rebuilt from the parts alone (so that
  ``virnucpro assemble`` needs no options), found by the task's name (``assembly_for``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor

from virnucpro.data import InputKind

from .outputs import OutputKind
from .parts import PartLayout, PartWriter
from .writers import OutputWriter

if TYPE_CHECKING:
    from virnucpro.data import Record, SequenceDataset

    from .job_state import JobState
    from .jobs import Job

__all__ = ["Assembly", "Batch", "Compute", "Plan", "RowStore", "Task", "assembly_for"]


class Batch(Protocol):
    """What the machinery reads of a collated batch (``PackedBatch``, ``PairedBatch``)."""

    @property
    def num_completed(self) -> int:
        """Input records this batch completes (for progress and the record count)."""
        ...

    @property
    def num_tokens(self) -> int: ...

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch: ...

    def pin_memory(self) -> Batch: ...


class Compute(Protocol):
    """The per-batch computation: a batch on the device -> ``(rows, check)``.

    ``rows``: a device tensor of the dtype and shape to copy to the host (one row per
    batch record, or what the task's ``RowStore`` reads); ``check``: per-row cosines of a
    self-checked batch (FP8 against bf16), else None. It may also have
    ``verify(cosines: np.ndarray, batch: int)``, run by the writer thread, which raises to
    stop the run.
    """

    def __call__(self, batch: Any) -> tuple[Tensor, Tensor | None]: ...


class RowStore(Protocol):
    """Appends one job's batches to its part, in order; runs in the writer thread."""

    def add(self, batch: Any, rows: np.ndarray) -> None:
        """Append what ``batch`` (on the host) completes, with its ``rows`` (the host copy of ``Compute``'s)."""
        ...

    def finish(self) -> None:
        """Every batch of the job was added (raise if something is still incomplete)."""
        ...


@dataclass(frozen=True)
class Plan:
    """What a task hands the machinery once its models are loaded on the host.

    Attributes:
        layout: what each record of a part holds.
        max_tokens: the default token budget per batch (the config's, and a resumed run's, win).
        fingerprint: the task's fields of the resume fingerprint (the machinery adds the format,
            the task, the inputs' digests, ``max_tokens``, the shard count); may wait on
            background digests of model files.
        output: what assembly needs of the job besides the records, stored in the parts:
            ``per_token``, ``row_shape``, ``storage``, ``special_tokens`` and the task's own keys.
        attributes: ``(job, fingerprint) -> attributes`` stored with the output (provenance).
        compute: builds the ``Compute`` (models to the device, warmed up); called once the
            DataLoader workers have forked.
        store: ``part -> RowStore`` for one job.
        assembly: how the parts become the output.
    """

    layout: PartLayout
    max_tokens: int
    fingerprint: Callable[[], dict[str, Any]]
    output: dict[str, Any]
    attributes: Callable[[Job, dict[str, Any]], dict[str, Any]]
    compute: Callable[[], Compute]
    store: Callable[[PartWriter], RowStore]
    assembly: Assembly


class Task(Protocol):
    """A task as the runner drives it.

    Attributes:
        name: recorded in the parts; picks the ``Assembly`` (``assembly_for``).
        output: the shape of its outputs.
        kind: the input kind the inputs are read as.
        collate: records -> a ``Batch``; picklable (runs in the DataLoader workers).
        entry: how messages name it: its library call and what it does to a record
            (``validation.InputError``), e.g. ("run_embed", "embedded").
        workers: the DataLoader workers when the config names none (``config.default_workers``).
    """

    name: str
    workers: int
    output: OutputKind
    kind: InputKind
    collate: Callable[[list[Record]], Batch]
    entry: tuple[str, str]

    def dataset(self, state: JobState, lane: int, lanes: int, *, whole: bool = False) -> SequenceDataset:
        """A job's records for this lane (``index % lanes == lane``), batched with ``state.max_tokens``,
        without ``state.skip``; ``whole``: every record, unbatched (the validation pass, digests). It
        needs no model, so it can be built before any loads."""
        ...

    def check_device(self, device: torch.device) -> None:
        """Refuse, before any output is claimed, options that cannot run on ``device``."""
        ...

    def plan(self, device: torch.device, stage: Callable[[str], None]) -> Plan:
        """Load the models on the host (not yet on the device); ``stage(name)`` logs set-up times."""
        ...


@dataclass(frozen=True)
class Assembly:
    """How a task's parts become its output; everything it reads comes from the parts.

    Attributes:
        output: ``meta["output"] -> OutputKind``, the shape of the output.
        writer: ``(job, meta) -> OutputWriter`` (``meta``: the job's description in its parts:
            ``task``, ``inputs``, ``fingerprint``, ``output``, ``attributes``).
        attributes: a finished output's stored attributes (its ``"fingerprint"`` among them),
            to recognise it on ``--resume``.
    """

    output: Callable[[dict[str, Any]], OutputKind]
    writer: Callable[[Job, dict[str, Any]], OutputWriter]
    attributes: Callable[[Path], dict[str, Any]]


#: Every task's ``Assembly``, by the name its parts record: (module, attribute), imported when needed.
_ASSEMBLIES = {
    "embed": ("virnucpro.tasks.embed.run", "ASSEMBLY"),
    "predict": ("virnucpro.tasks.predict.assembly", "ASSEMBLY"),
}


def assembly_for(name: str, where: Path | str = "the parts") -> Assembly:
    """The ``Assembly`` of the task ``name``; ``ValueError`` naming ``where`` for an unknown one."""
    if name not in _ASSEMBLIES:
        raise ValueError(f"{where}: written by an unknown task {name!r} (known: {', '.join(_ASSEMBLIES)})")
    module, attribute = _ASSEMBLIES[name]
    return getattr(importlib.import_module(module), attribute)
