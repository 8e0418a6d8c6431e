"""HDF5 output, readable with plain h5py.

* ``ids`` (N,) UTF-8 strings, in input order (files as given, records in file order);
* ``lengths`` (N,) int64, residues embedded per record; ``input_lengths`` (N,) int64,
  residues in the input (greater where a record was truncated); any other per-record
  columns of the input kind, by name;
* ``embeddings``: pooled (N, E), or (N, L, E) for several layers; per-token (R, E) /
  (R, L, E), the residue rows of all records back to back;
* ``offsets`` (per-token only) (N + 1,) int64: record i is ``embeddings[offsets[i]:offsets[i + 1]]``;
* attributes: the model, options, counts and provenance of the job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .base import OutputLayout, Span

__all__ = ["HDF5Writer"]

_CHUNK_ELEMENTS = 1 << 20


class HDF5Writer:
    suffixes = (".h5", ".hdf5")
    per_token = True

    def begin(self, path: Path, layout: OutputLayout) -> None:
        self._layout = layout
        self._file = h5py.File(path, "w")
        n = layout.records
        self._ids = self._file.create_dataset("ids", (n,), dtype=h5py.string_dtype("utf-8"))
        self._columns = {name: self._file.create_dataset(name, (n,), dtype=np.int64) for name in layout.columns}
        shape = (layout.rows, *layout.row_shape)
        self._emb = self._file.create_dataset("embeddings", shape, dtype=layout.dtype, chunks=_chunks(shape))
        if layout.per_token:
            self._offsets = layout.offsets
            self._file.create_dataset("offsets", data=self._offsets)

    def write_span(self, span: Span) -> None:
        start, stop = span.start, span.start + len(span.ids)
        self._ids[start:stop] = span.ids
        for name, column in span.columns.items():
            self._columns[name][start:stop] = column
        if self._layout.per_token:
            self._emb[int(self._offsets[start]) : int(self._offsets[stop])] = span.rows
        else:
            self._emb[start:stop] = span.rows

    def finish(self, attrs: dict[str, Any]) -> None:
        self._file.attrs.update({key: _storable(value) for key, value in attrs.items()})
        self._file.close()


def _storable(value: Any) -> Any:
    """HDF5 attributes hold scalars, strings and flat lists; anything nested is stored as JSON."""
    if isinstance(value, dict) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) for v in value)
    ):
        return json.dumps(value)
    return value


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    if shape[0] == 0:
        return None
    row = int(np.prod(shape[1:]))
    return (max(1, min(shape[0], _CHUNK_ELEMENTS // max(row, 1))), *shape[1:])
