"""The output-writer interface: what an output format must do, and how the format is chosen.

The assembler checks exact-once coverage and puts records in input order; a writer
only stores what it is handed, span by span, into a file it is given (a temporary
name the assembler later renames). A format is one module here with one class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["OutputLayout", "OutputWriter", "Span", "json_default"]


@dataclass(frozen=True)
class OutputLayout:
    """The shape of a whole output.

    Attributes:
        records: N, the number of records.
        row_shape: one stored row: (E,) for one layer, (L, E) for several.
        dtype: the stored dtype of the embeddings.
        per_token: rows are residues (R in all, ``offsets`` say whose) rather than records.
        lengths: (N,) int64, residues embedded per record; with ``per_token`` these are the row counts.
        columns: names of the per-record int64 columns every span carries.
    """

    records: int
    row_shape: tuple[int, ...]
    dtype: np.dtype
    per_token: bool
    lengths: np.ndarray
    columns: tuple[str, ...]

    @property
    def offsets(self) -> np.ndarray:
        """(N + 1,) int64: record i's per-token rows are ``offsets[i]:offsets[i + 1]``."""
        offsets = np.zeros(self.records + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return offsets

    @property
    def rows(self) -> int:
        return int(self.lengths.sum()) if self.per_token else self.records


@dataclass(frozen=True)
class Span:
    """Records ``start .. start + len(ids) - 1`` in input order: their ids, columns and rows
    (one per record, or their residues back to back with ``per_token``)."""

    start: int
    ids: list[str]
    columns: dict[str, np.ndarray]
    rows: np.ndarray


class OutputWriter(Protocol):
    #: The output suffixes that choose this format.
    suffixes: tuple[str, ...]
    #: Whether it can hold per-token rows (a varying number per record).
    per_token: bool

    def begin(self, path: Path, layout: OutputLayout) -> None:
        """Create the file at ``path`` (which does not exist) for ``layout``."""
        ...

    def write_span(self, span: Span) -> None:
        """Store one span; spans arrive in input order and cover every record once."""
        ...

    def finish(self, attrs: dict[str, Any]) -> None:
        """Store the job's attributes and close the file, flushed to disk."""
        ...


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=)`` for attributes: NumPy scalars and arrays as numbers and lists."""
    return value.tolist() if isinstance(value, (np.generic, np.ndarray)) else str(value)
