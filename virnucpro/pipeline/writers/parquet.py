"""Apache Parquet output (needs the optional ``pyarrow``: ``pip install 'virnucpro[parquet]'``).

One row per record: ``id`` (string), ``lengths`` and ``input_lengths`` (int64) and the
input kind's columns, and ``embedding``, a fixed-size list of E floats (one column
``embedding_<layer>`` per layer when several are stored). The attributes are the
schema's metadata, under ``virnucpro`` as JSON. Per-token pooling has no fixed row
size, so it is refused: write it as .h5 or .npz.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .base import OutputLayout, Span, json_default

__all__ = ["ParquetWriter", "require_pyarrow"]


def require_pyarrow() -> None:
    """Refuse, before any work, to write Parquet without a pyarrow that imports (a leftover folder is found
    by ``find_spec`` and still fails to import)."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"writing .parquet needs pyarrow, which cannot be imported ({err}): pip install 'virnucpro[parquet]', "
            "or name the output .h5"
        ) from err


class ParquetWriter:
    suffixes = (".parquet",)
    per_token = False  # a row per residue has no fixed size per record

    def begin(self, path: Path, layout: OutputLayout) -> None:
        require_pyarrow()
        import pyarrow as pa
        import pyarrow.parquet as pq

        if layout.per_token:
            raise ValueError(
                f"{path}: per-token pooling has no fixed row size for Parquet; name the output .h5 or .npz"
            )
        self._pa, self._layout, self._path = pa, layout, path
        value = pa.float16() if layout.dtype == np.float16 else pa.float32()
        width = layout.row_shape[-1]
        self._embedding_names = (
            ["embedding"] if len(layout.row_shape) == 1 else [f"embedding_{i}" for i in range(layout.row_shape[0])]
        )
        fields = [pa.field("id", pa.string()), *(pa.field(name, pa.int64()) for name in layout.columns)]
        fields += [pa.field(name, pa.list_(value, width)) for name in self._embedding_names]
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(path, self._schema)

    def write_span(self, span: Span) -> None:
        pa = self._pa
        width = self._layout.row_shape[-1]
        rows = span.rows.reshape(len(span.ids), -1, width)  # (n, L, E)
        arrays = [pa.array(span.ids, pa.string()), *(pa.array(span.columns[n]) for n in self._layout.columns)]
        for layer in range(len(self._embedding_names)):
            flat = pa.array(np.ascontiguousarray(rows[:, layer]).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, width))
        self._writer.write_batch(pa.record_batch(arrays, schema=self._schema))

    def finish(self, attrs: dict[str, Any]) -> None:
        self._writer.add_key_value_metadata({"virnucpro": json.dumps(attrs, default=json_default)})
        self._writer.close()
