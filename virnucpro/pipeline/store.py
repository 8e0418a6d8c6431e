"""Crash-safe result storage: per-rank append-only parts, then one HDF5 file in input order.

While a job runs, each rank appends its rows to plain files in
``OUT.h5.parts/rank<r>/`` and, at most once a second, commits: it flushes the
files to disk and atomically replaces ``state.json`` with the committed sizes.
Whatever ``kill -9`` interrupts, ``state.json`` describes a prefix of each file
that is complete; a resumed run cuts every file back to it.

Rows are keyed by their input position (``index``), never by id. At the end,
rank 0 checks that the parts hold every input position exactly once and
streams them into ``OUT.h5.tmp`` in input order, then renames it to ``OUT.h5``:
a file named ``OUT.h5`` is always complete.

HDF5 layout (readable with plain h5py):

* ``ids`` ``(N,)`` UTF-8 strings, in input order (files as given, records in file order);
* ``lengths`` ``(N,)`` int64, residues embedded per record (after truncation);
* ``embeddings``: pooled ``(N, E)``, or ``(N, L, E)`` for several layers;
  per-token ``(R, E)`` / ``(R, L, E)``, the residue rows of all records concatenated;
* ``offsets`` (per-token only) ``(N + 1,)`` int64: record ``i`` is ``embeddings[offsets[i]:offsets[i + 1]]``;
* attributes: model, layers, pooling, dtypes, virnucpro version and the counts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from virnucpro.data.duplicates import DuplicateIds

__all__ = ["PartWriter", "Part", "read_parts", "done_mask", "assemble", "parts_dir_for", "remove_parts"]

_STATE = "state.json"
_INDEX, _LENGTHS, _IDS, _ROWS = "index.i64", "lengths.i64", "ids.txt", "rows.bin"


def parts_dir_for(output: Path) -> Path:
    """Where the parts of ``output`` live while the job runs."""
    return output.with_name(output.name + ".parts")


class PartWriter:
    """One rank's append-only spill of results.

    Args:
        directory: this rank's folder, e.g. ``OUT.h5.parts/rank0``.
        row_shape: shape of one row, ``(L, E)``.
        dtype: storage dtype of rows (float32 or float16).
        fingerprint: JSON-able description of the job; resuming with another one is refused.
    """

    def __init__(
        self, directory: Path, row_shape: tuple[int, ...], dtype: np.dtype, fingerprint: dict[str, Any]
    ) -> None:
        self.directory = directory
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.fingerprint = fingerprint
        directory.mkdir(parents=True, exist_ok=True)
        state = _read_state(directory)
        if state is None:
            state = {"records": 0, "rows": 0, "ids_bytes": 0, "replaced": 0}
        else:
            _check_fingerprint(directory, state["fingerprint"], fingerprint)
        self.records, self.rows, self.ids_bytes = state["records"], state["rows"], state["ids_bytes"]
        self.replaced = state["replaced"]
        self._files = {}
        for name, size in (
            (_INDEX, self.records * 8),
            (_LENGTHS, self.records * 8),
            (_IDS, self.ids_bytes),
            (_ROWS, self.rows * self._row_bytes),
        ):
            handle = open(directory / name, "a+b")
            handle.truncate(size)  # drop whatever a crash left past the last commit
            handle.seek(size)
            self._files[name] = handle
        self.commit()

    @property
    def _row_bytes(self) -> int:
        return int(np.prod(self.row_shape)) * self.dtype.itemsize

    def append(
        self, indices: np.ndarray, ids: list[str], lengths: np.ndarray, rows: np.ndarray, replaced: int = 0
    ) -> None:
        """Append N records: ``indices`` (N,) int64 input positions, ``ids`` N str, ``lengths`` (N,)
        residues before truncation, ``rows`` (M, *row_shape): M = N pooled, or the residues embedded;
        ``replaced``: unknown residues replaced with X in these records."""
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not match this part's {self.row_shape}")
        encoded = "".join(f"{i}\n" for i in ids).encode("utf-8")
        self._files[_INDEX].write(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
        self._files[_LENGTHS].write(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
        self._files[_IDS].write(encoded)
        self._files[_ROWS].write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.records += len(ids)
        self.rows += rows.shape[0]
        self.ids_bytes += len(encoded)
        self.replaced += replaced

    def commit(self) -> None:
        """Make everything appended so far durable, then record it in ``state.json``."""
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
        state = {
            "records": self.records,
            "rows": self.rows,
            "ids_bytes": self.ids_bytes,
            "replaced": self.replaced,
            "row_shape": list(self.row_shape),
            "dtype": self.dtype.str,
            "fingerprint": self.fingerprint,
        }
        tmp = self.directory / (_STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / _STATE)

    def close(self) -> None:
        self.commit()
        for handle in self._files.values():
            handle.close()


@dataclass(frozen=True)
class Part:
    """The committed content of one rank's folder, read lazily."""

    directory: Path
    records: int
    rows: int
    ids_bytes: int
    replaced: int
    row_shape: tuple[int, ...]
    dtype: np.dtype
    fingerprint: dict[str, Any]

    def indices(self) -> np.ndarray:
        return np.fromfile(self.directory / _INDEX, dtype=np.int64, count=self.records)

    def lengths(self) -> np.ndarray:
        return np.fromfile(self.directory / _LENGTHS, dtype=np.int64, count=self.records)

    def ids(self) -> list[str]:
        with open(self.directory / _IDS, "rb") as handle:
            return handle.read(self.ids_bytes).decode("utf-8").splitlines()

    def rows_memmap(self) -> np.ndarray:
        if self.rows == 0:
            return np.empty((0, *self.row_shape), dtype=self.dtype)
        return np.memmap(self.directory / _ROWS, dtype=self.dtype, mode="r", shape=(self.rows, *self.row_shape))


def read_parts(parts_dir: Path, fingerprint: dict[str, Any] | None = None) -> list[Part]:
    """Every rank folder's committed content; checks fingerprints when one is given."""
    parts = []
    for directory in sorted(parts_dir.glob("rank*")):
        state = _read_state(directory)
        if state is None:
            continue
        if fingerprint is not None:
            _check_fingerprint(directory, state["fingerprint"], fingerprint)
        parts.append(
            Part(
                directory,
                state["records"],
                state["rows"],
                state["ids_bytes"],
                state["replaced"],
                tuple(state["row_shape"]),
                np.dtype(state["dtype"]),
                state["fingerprint"],
            )
        )
    return parts


def done_mask(parts: list[Part]) -> np.ndarray:
    """``(M,)`` bool: True at every input position some part has committed."""
    indices = [part.indices() for part in parts]
    size = max((int(i.max()) + 1 for i in indices if i.size), default=0)
    mask = np.zeros(size, dtype=bool)
    for i in indices:
        mask[i] = True
    return mask


def assemble(
    parts: list[Part],
    tmp_path: Path,
    expected_records: int,
    row_shape: tuple[int, ...],
    dtype: np.dtype,
    per_token: bool,
    attrs: dict[str, Any],
    max_length: int,
) -> dict[str, int]:
    """Write all parts into one HDF5 file at ``tmp_path``, rows (of ``row_shape``, ``dtype``) in input order.

    Parts store each record's residue count before truncation; ``max_length`` gives
    the count embedded.

    Refuses (``RuntimeError``) unless the parts hold every input position
    ``0 .. expected_records - 1`` exactly once. Returns the counts written.
    """
    part_indices = [p.indices() for p in parts]  # each part's files are read once
    part_lengths = [np.minimum(p.lengths(), max_length) for p in parts]
    indices = np.concatenate(part_indices) if parts else np.empty(0, np.int64)
    seen = np.bincount(indices, minlength=expected_records) if indices.size else np.zeros(expected_records, np.int64)
    if indices.size != expected_records or seen.size != expected_records or (seen != 1).any():
        missing = np.flatnonzero(seen[:expected_records] == 0)[:5].tolist()
        repeated = np.flatnonzero(seen > 1)[:5].tolist()
        raise RuntimeError(
            f"results do not cover the input exactly once: {expected_records} records in the input, "
            f"{indices.size} rows stored; missing positions {missing}..., repeated {repeated}..., "
            f"positions past the end {int((indices >= expected_records).sum())}. The parts are kept for inspection."
        )
    lengths = np.empty(expected_records, dtype=np.int64)
    for part_index, part_length in zip(part_indices, part_lengths):
        lengths[part_index] = part_length
    offsets = np.zeros(expected_records + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    squeeze = row_shape[0] == 1  # one layer: (N, E) rather than (N, 1, E)
    shape = (int(offsets[-1]) if per_token else expected_records, *(row_shape[1:] if squeeze else row_shape))
    duplicates = DuplicateIds()
    with h5py.File(tmp_path, "w") as out:
        ids_ds = out.create_dataset("ids", (expected_records,), dtype=h5py.string_dtype("utf-8"))
        out.create_dataset("lengths", data=lengths)
        emb = out.create_dataset("embeddings", shape, dtype=dtype, chunks=_chunks(shape))
        if per_token:
            out.create_dataset("offsets", data=offsets)
        for part, part_index, part_length in zip(parts, part_indices, part_lengths):
            part_ids, rows = part.ids(), part.rows_memmap()
            part_offsets = np.zeros(part.records + 1, dtype=np.int64)
            np.cumsum(part_length, out=part_offsets[1:])
            for a, b in _runs(part_index):
                start, stop = int(part_index[a]), int(part_index[b - 1]) + 1
                ids_ds[start:stop] = part_ids[a:b]
                for record_id in part_ids[a:b]:
                    duplicates.add(record_id)
                block = rows[part_offsets[a] : part_offsets[b]] if per_token else rows[a:b]
                dest = slice(int(offsets[start]), int(offsets[stop])) if per_token else slice(start, stop)
                emb[dest] = block[:, 0] if squeeze else block
        n_dup, _ = duplicates.result()
        out.attrs.update({**attrs, "records": expected_records, "duplicate_ids": n_dup})
    return {"records": expected_records, "rows": shape[0], "duplicate_ids": n_dup}


def _runs(indices: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(a, b)`` spans of ``indices`` that are consecutive integers."""
    if indices.size == 0:
        return
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    edges = np.concatenate([[0], breaks, [indices.size]])
    yield from zip(edges[:-1].tolist(), edges[1:].tolist())


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    if shape[0] == 0:
        return None
    row = int(np.prod(shape[1:]))
    return (max(1, min(shape[0], (1 << 20) // max(row, 1))), *shape[1:])


def remove_parts(parts_dir: Path) -> None:
    shutil.rmtree(parts_dir, ignore_errors=False)


def _read_state(directory: Path) -> dict[str, Any] | None:
    path = directory / _STATE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _check_fingerprint(directory: Path, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    differing = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
    if differing:
        details = "; ".join(f"{k}: stored {found.get(k)!r}, now {wanted.get(k)!r}" for k in differing)
        raise ValueError(
            f"{directory}: the partial results come from a different job ({details}); "
            "rerun with the same inputs and options to resume, or pass --overwrite to start over"
        )
