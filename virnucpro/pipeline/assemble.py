"""Assembly: verified parts -> exact-once check -> one output in input order, appearing atomically.

The output (a file or a folder: ``outputs.py``) is written by the task's writer under a new,
uniquely named temporary in the output's folder (never a name that could have been planted;
readable by its owner only while written), flushed to disk, given the mode the umask gives a
new file (or folder), recorded in the parts folder as assembled, then renamed onto the output:
whatever carries the output's name is complete. Only then are the parts removed (and an output
it replaces).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from virnucpro.data import DuplicateIds

from .claim import mark_assembled
from .coverage import Coverage, cover
from .jobs import Job
from .outputs import OutputKind
from .parts import DamagedPartsError, Part
from .writers import OutputLayout, OutputWriter, Span

__all__ = ["Assembled", "assemble", "count_truncated"]

_BLOCK_BYTES = 64 << 20


@dataclass(frozen=True)
class Assembled:
    """What the assembled output holds."""

    records: int
    tokens: int
    truncated: int
    replaced: int
    duplicate_ids: int
    windowed: int = 0


def count_truncated(lengths: np.ndarray, input_lengths: np.ndarray) -> int:
    """Records embedded with fewer residues than they have: the one definition of "truncated"."""
    return int((lengths < input_lengths).sum())


def assemble(
    job: Job,
    parts: Sequence[Part],
    expected: int,
    *,
    per_token: bool,
    row_shape: tuple[int, ...],
    storage: np.dtype,
    special_tokens: int,
    counted_tokens: bool = False,
    attrs: dict[str, Any],
    writer: OutputWriter,
    output: OutputKind,
    shards: int = 1,
    verified: Callable[[], object] = lambda: None,
) -> Assembled:
    """Write ``parts`` (which must hold input positions 0..expected-1 exactly once) into ``job.output``.

    Args:
        per_token: rows are residues (per-token pooling) rather than one per record.
        row_shape: one output row, (E,) or (L, E); parts store (L, E).
        storage: the stored dtype.
        special_tokens: tokens each sequence adds, for the ``tokens`` count.
        counted_tokens: the parts counted their tokens (a tokenizer whose tokens are not one per
            residue); else tokens are residues plus ``special_tokens`` per record.
        attrs: stored with the counts added (``records``, ``tokens``, ``truncated``,
            ``replaced_residues``, ``duplicate_ids``).
        writer: the task's writer, handed the records span by span in input order.
        output: the output's shape (a file or a folder), which makes its temporary and installs it.
        shards: how many ``--shard`` runs the records were split over (for the message).
        verified: waits for checks of the parts that run beside the writing (``verify_rows``) and
            raises if one failed: the output is installed only after it returns.

    Raises ``NotExactlyOnceError`` and leaves everything in place when the parts do not
    cover the input exactly once.
    """
    layouts = {part.layout for part in parts}
    if len(layouts) > 1:
        raise DamagedPartsError(f"{job.parts_dir}: its parts store different layouts {sorted(map(str, layouts))}")
    coverage = cover([part.indices() for part in parts], expected, str(job.output), shards)
    stored = parts[0].layout if parts else None
    columns = stored.columns if stored else ("lengths", "input_lengths")
    lengths = _gather([p.column("lengths") for p in parts], coverage) if parts else np.empty(0, np.int64)
    input_lengths = _gather([p.column("input_lengths") for p in parts], coverage) if parts else lengths
    layout = OutputLayout(expected, tuple(row_shape), np.dtype(storage), per_token, lengths, columns)
    counts = Assembled(
        records=expected,
        tokens=(
            sum(p.counts.get("tokens", 0) for p in parts)
            if counted_tokens
            else int(lengths.sum()) + special_tokens * expected
        ),
        truncated=count_truncated(lengths, input_lengths),
        replaced=sum(p.counts.get("replaced", 0) for p in parts),
        windowed=sum(p.counts.get("windowed", 0) for p in parts),
        duplicate_ids=0,
    )
    output.remove_stale(job.output)
    tmp = output.temporary(job.output)
    try:
        duplicates = DuplicateIds()
        writer.begin(tmp, layout)
        for span in _spans(parts, coverage, layout):
            for record_id in span.ids:
                duplicates.add(record_id)
            writer.write_span(span)
        counts = dataclasses.replace(counts, duplicate_ids=duplicates.result()[0])
        writer.finish({**attrs, **_count_attrs(counts)})
        verified()
        mark_assembled(job, tmp, output)
        output.install(tmp, job.output)
    except BaseException:
        output.discard(tmp)
        raise
    remove_parts(job)
    return counts


def remove_parts(job: Job) -> None:
    """The parts of a job whose output is in place (a kill before this leaves ``assembled.json`` to say so)."""
    shutil.rmtree(job.parts_dir)


def _count_attrs(counts: Assembled) -> dict[str, int]:
    return {
        "records": counts.records,
        "tokens": counts.tokens,
        "truncated": counts.truncated,
        "replaced_residues": counts.replaced,
        "windowed": counts.windowed,
        "duplicate_ids": counts.duplicate_ids,
    }


def _gather(arrays: Sequence[np.ndarray], coverage: Coverage, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Per input position start..stop-1, the value its part stores: ``arrays[part][row]``."""
    part, row = coverage.part[start:stop], coverage.row[start:stop]
    out = np.empty(part.size, dtype=arrays[0].dtype if arrays else np.int64)
    for p in np.unique(part).tolist():
        mask = part == p
        out[mask] = arrays[p][row[mask]]
    return out


def _spans(parts: Sequence[Part], coverage: Coverage, layout: OutputLayout) -> Iterator[Span]:
    """The output in input order, in blocks of about ``_BLOCK_BYTES`` of rows."""
    ids = [p.ids() for p in parts]
    rows = [p.rows_memmap() for p in parts]
    columns = {name: [p.column(name) for p in parts] for name in layout.columns}
    row_bytes = int(np.prod(layout.row_shape)) * layout.dtype.itemsize
    per_record = row_bytes * (max(1, int(layout.lengths.mean())) if layout.per_token and layout.records else 1)
    block = max(1, _BLOCK_BYTES // max(per_record, 1))
    starts = [np.concatenate([[0], np.cumsum(p.column("lengths"))]) for p in parts] if layout.per_token else None
    for a in range(0, layout.records, block):
        b = min(layout.records, a + block)
        span_ids = [ids[p][r] for p, r in zip(coverage.part[a:b].tolist(), coverage.row[a:b].tolist())]
        span_columns = {name: _gather(arrays, coverage, a, b) for name, arrays in columns.items()}
        if starts is None:
            block_rows = _gather_rows(rows, coverage, a, b)
        else:
            block_rows = _gather_residues(rows, starts, span_columns["lengths"], coverage, a, b)
        yield Span(a, span_ids, span_columns, block_rows.reshape(-1, *layout.row_shape))


def _gather_rows(rows: Sequence[np.ndarray], coverage: Coverage, a: int, b: int) -> np.ndarray:
    part, row = coverage.part[a:b], coverage.row[a:b]
    if b > a and (part == part[0]).all() and (np.diff(row) == 1).all():  # one part, in order: a view, not a copy
        return rows[int(part[0])][int(row[0]) : int(row[-1]) + 1]
    out = np.empty((b - a, *rows[0].shape[1:]), dtype=rows[0].dtype)
    for p in np.unique(part).tolist():
        mask = part == p
        out[mask] = rows[p][row[mask]]
    return out


def _gather_residues(
    rows: Sequence[np.ndarray], starts: Sequence[np.ndarray], lengths: np.ndarray, coverage: Coverage, a: int, b: int
) -> np.ndarray:
    """The residue rows of records a..b-1, back to back, each from where its part stores it."""
    part, row = coverage.part[a:b], coverage.row[a:b]
    dest = np.concatenate([[0], np.cumsum(lengths)])
    out = np.empty((int(dest[-1]), *rows[0].shape[1:]), dtype=rows[0].dtype)
    for p in np.unique(part).tolist():
        mask = part == p
        n = lengths[mask]
        within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # 0..n_i-1 per record
        out[np.repeat(dest[:-1][mask], n) + within] = rows[p][np.repeat(starts[p][row[mask]], n) + within]
    return out
