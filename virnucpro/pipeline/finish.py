"""Finishing an output from its parts: by the run that wrote them all, or by ``virnucpro assemble``
after independent ``--shard`` runs.

Everything needed is in the parts themselves (each stores the job's fingerprint, its
inputs, its output layout and attributes), so assembly needs no options repeated.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from virnucpro.data.inputs import kind_from

from .assemble import assemble
from .background import Background, count_records
from .selfcheck import combine_checks
from .claim import Shard
from .config import JobResult
from .digests import identify
from .fingerprint import same_job
from .jobs import Job
from .lock import JobLock
from .parts import DamagedPartsError, NeverCommittedError, Part, part_directories, read_part, verify_rows
from .task import Assembly, assembly_for

__all__ = ["assemble_output", "finish_job"]


#: A job's parts as ``_read_parts`` gives them: sizes and small files checked, and the rows files'
#: CRC-32 check running in a thread (``verify_rows``), which ``result()`` waits for.
PartsRead = tuple[list[Part], Background]


def finish_job(
    job: Job, expected: int | None = None, assembly: Assembly | None = None, *, read: PartsRead | None = None
) -> JobResult:
    """Verify ``job``'s parts, check they are one job covering its inputs exactly once, write its output.

    ``expected``: the number of input records, when the caller counted them; otherwise the
    inputs recorded in the parts are checked to be unchanged (by SHA-256) and counted here.
    ``assembly``: the task's; default the one of the task the parts name. ``read``: the job's
    parts, already read (``_read_parts``).

    The rows files' CRC-32 (the bulk of the parts' bytes) is checked in a thread while the output is
    written (``verify_rows``); the output is installed only once it has passed, and a damaged file is
    the error reported before any other.
    """
    parts, rows_checked = read or _read_parts(job)
    with _damage_first(rows_checked):
        return _finish(job, parts, rows_checked, expected, assembly)


def _finish(
    job: Job, parts: list[Part], rows_checked: Background, expected: int | None, assembly: Assembly | None
) -> JobResult:
    meta = parts[0].meta
    fingerprint = parts[0].fingerprint
    assembly = assembly or assembly_for(meta.get("task", "embed"), parts[0].directory)
    if expected is None:
        inputs = [Path(path) for path in meta["inputs"]]
        _check_unchanged(inputs, fingerprint)
        expected = count_records(inputs, kind_from(fingerprint["input_kind"]))
    layout = meta["output"]
    output = assembly.output(layout)
    output.check(job.output)  # e.g. a format that cannot hold per-token rows, refused before anything is written
    done = assemble(
        job,
        parts,
        expected,
        per_token=layout["per_token"],
        row_shape=tuple(layout["row_shape"]),
        storage=np.dtype(layout["storage"]),
        special_tokens=layout["special_tokens"],
        counted_tokens=layout.get("counted_tokens", False),
        attrs={**meta["attributes"], "shards": fingerprint["shards"], **combine_checks([p.check for p in parts])},
        writer=assembly.writer(job, meta),
        output=output,
        shards=fingerprint["shards"],
        verified=rows_checked.result,
    )
    return JobResult(job.output, done.records, done.truncated, done.duplicate_ids, done.replaced, done.windowed)


@contextlib.contextmanager
def _damage_first(rows_checked: Background) -> Iterator[None]:
    """On any error, a damaged rows file is reported instead: the one fix that must come first."""
    try:
        yield
    except BaseException:
        rows_checked.result()
        raise


def _read_parts(job: Job) -> PartsRead:
    if not job.parts_dir.is_dir() or job.parts_dir.is_symlink():
        done = f"; {job.output} exists (a finished run leaves no parts)" if os.path.lexists(job.output) else ""
        raise FileNotFoundError(f"{job.parts_dir}: no partial results to assemble {job.output} from{done}")
    parts = []
    for directory in part_directories(job.parts_dir):
        try:
            parts.append(read_part(directory, None, None, rows_checksum=False))  # checked by finish_job
        except NeverCommittedError as err:
            raise DamagedPartsError(
                f"{err}; rerun that shard with resume=True (CLI: --resume), then assemble"
            ) from None
    if not parts:
        raise DamagedPartsError(
            f"{job.parts_dir} holds no parts; run the shards first, shard=Shard(I, N) "
            "(CLI: virnucpro embed --shard I/N)"
        )
    rows_checked = Background(lambda: [verify_rows(part) for part in parts], name="virnucpro-verify")
    with _damage_first(rows_checked):
        for part in parts[1:]:
            if not same_job(part.fingerprint, parts[0].fingerprint):
                raise ValueError(
                    f"{part.directory} and {parts[0].directory} come from different jobs; "
                    "rerun the odd shard with the same inputs and options and overwrite=True (CLI: --overwrite), "
                    "then assemble"
                )
        _check_all_shards(job, parts)
    return parts, rows_checked


def _check_all_shards(job: Job, parts: list[Part]) -> None:
    count = parts[0].fingerprint["shards"]
    present = {p.directory.name.split(".rank-")[0] for p in parts}
    missing = [i for i in range(count) if Shard(i, count).prefix not in present]
    if missing:
        raise ValueError(
            f"{job.output}: shards {', '.join(f'{i}/{count}' for i in missing)} have no results in {job.parts_dir}; "
            f"run them, shard=Shard(I, {count}) (CLI: virnucpro embed ... --shard I/{count}), then assemble"
        )


def _check_unchanged(inputs: list[Path], fingerprint: dict) -> None:
    for path, recorded in zip(inputs, fingerprint["inputs"]):
        now = identify(path)
        if (now.sha256, now.size) != (recorded["sha256"], recorded["size"]):
            raise ValueError(
                f"{path} changed since the shards embedded it; rerun every shard with overwrite=True (CLI: --overwrite)"
            )


def assemble_output(output: Path, *, overwrite: bool) -> JobResult:
    """``virnucpro assemble OUT``: the output from the parts of its ``--shard`` runs, once all are done."""
    job = Job((), output)
    locks = []
    try:
        for lock in sorted(job.parts_dir.glob("shard-*.lock")) if job.parts_dir.is_dir() else []:
            locks.append(JobLock(lock, f"{output} ({lock.stem})"))
        read = parts, rows_checked = _read_parts(job)
        with _damage_first(rows_checked):
            assembly = assembly_for(parts[0].meta.get("task", "embed"), parts[0].directory)
            kind = assembly.output(parts[0].meta["output"])
            kind.check(output)
            if kind.exists(output) and not overwrite:
                raise FileExistsError(f"{output} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        return finish_job(job, assembly=assembly, read=read)
    finally:
        for lock in locks:
            lock.release()
