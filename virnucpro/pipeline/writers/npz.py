"""NumPy ``.npz`` output: the same arrays as the HDF5 output, readable with ``numpy.load`` alone.

``embeddings`` is streamed into the archive span by span (its shape is known up front);
the ids and per-record columns are kept in memory and written at the end, and the
attributes are one JSON string, ``attributes``. The archive is not compressed, so
``numpy.load(path, mmap_mode=...)`` is not needed: reading a member reads only it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .base import OutputLayout, Span, json_default

__all__ = ["NPZWriter"]


class NPZWriter:
    suffixes = (".npz",)
    per_token = True

    def begin(self, path: Path, layout: OutputLayout) -> None:
        self._layout = layout
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._emb = self._zip.open("embeddings.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(layout.dtype), "fortran_order": False,
                  "shape": (layout.rows, *layout.row_shape)}  # fmt: skip
        np.lib.format.write_array_header_2_0(self._emb, header)
        self._ids: list[str] = []
        self._columns: dict[str, list[np.ndarray]] = {name: [] for name in layout.columns}

    def write_span(self, span: Span) -> None:
        self._emb.write(np.ascontiguousarray(span.rows, dtype=self._layout.dtype).tobytes())
        self._ids.extend(span.ids)
        for name, column in span.columns.items():
            self._columns[name].append(np.asarray(column, dtype=np.int64))

    def finish(self, attrs: dict[str, Any]) -> None:
        self._emb.close()
        arrays = {
            "ids": np.array(self._ids, dtype=str),
            **{
                name: np.concatenate(parts) if parts else np.empty(0, np.int64) for name, parts in self._columns.items()
            },
            "attributes": np.array(json.dumps(attrs, default=json_default)),
        }
        if self._layout.per_token:
            arrays["offsets"] = self._layout.offsets
        for name, array in arrays.items():
            with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
        self._zip.close()
