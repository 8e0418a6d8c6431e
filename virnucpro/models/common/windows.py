"""Merging the windows of proteins longer than ``max_length`` back into one row group per protein.

``SequenceDataset(on_overlength="window")`` cuts such a protein into overlapping windows
(``virnucpro/data/windows.py``), records that carry its ``index``. Two steps merge them:

* ``window_partials`` (on the device, per batch and layer, no host syncs): plain records get
  exactly the rows ``pooling.pool`` gives; each window gets its partial, rows that summed
  over the protein's windows give the protein's pooled rows;
* ``WindowMerger`` (on the host, per rank's stream): sums the partials of each protein as its
  windows arrive, which may be in several batches, and hands back records only once complete.

Merged per-residue rows are, for each layer, the mean over the windows covering the residue;
``mean`` is the mean of those over the protein's residues; ``bos`` the mean of the windows'
BOS rows; ``per-token`` the protein's L merged rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from virnucpro.text import quote_id

from .pooling import Pooling, WindowTensors, residue_rows
from .segments import segment_ids

if TYPE_CHECKING:
    from virnucpro.data import PackedBatch

__all__ = ["RowGroup", "WindowMerger", "window_partials"]


def window_partials(pooling: Pooling, reps: Tensor, batch: PackedBatch) -> Tensor:
    """``pooling``'s rows of one layer, with each window's partial in place of its own rows.

    Args:
        pooling: a ``POOLINGS`` entry with a ``window_pool``.
        reps: (T, E) packed rows of one layer of ``batch``.
        batch: the batch on ``reps.device`` (``PackedBatch.to`` moves what this reads).

    Returns:
        (N, E), or (R, E) residue rows with ``pooling.per_token``: bitwise ``pooling.pool(reps,
        batch.cu_seqlens)`` for a batch without windows, and on a plain record's rows in any
        batch; float32 where the batch has windows. Nothing waits for the device.
    """
    plain = pooling.pool(reps, batch.cu_seqlens)
    if batch.num_windows == 0:  # a host int: most batches never pay for the merge
        return plain
    if pooling.window_pool is None:
        raise ValueError(
            f"pooling={pooling.name!r} (CLI: --pooling {pooling.name}) cannot merge windows; choose one with a "
            "window_pool, or on_overlength='truncate' (CLI: --on-overlength truncate)"
        )
    windows = WindowTensors(batch.residue_weights, batch.window_counts, batch.lengths)
    partial = pooling.window_pool(reps, batch.cu_seqlens, windows)
    is_window = batch.window_counts > 1  # (N,): a windowed protein has at least two windows
    if pooling.per_token:  # (N,) to (R,): the record of every residue row
        tokens = is_window[segment_ids(batch.cu_seqlens, reps.shape[0])]
        is_window = residue_rows(tokens.unsqueeze(1), batch.cu_seqlens)[0].squeeze(1)
    # Selected, not computed differently: a plain record's rows stay bitwise those of pool.
    return torch.where(is_window.unsqueeze(1), partial, plain)


@dataclass(frozen=True)
class RowGroup:
    """N records and their rows, on the host: one batch's (``from_batch``), or the complete
    records ``WindowMerger.add`` hands back.

    Attributes:
        indices: (N,) int64 input positions.
        ids: N record ids.
        residues: (N,) int64 residues embedded per record (a merged protein's: all L of them);
            with per-token rows, how many rows each record has.
        lengths: (N,) int64 residues of each record's input (> ``residues`` iff truncated).
        replaced: (N,) int64 residues replaced with X per record.
        columns: (N,) int64 per column of the input kind, by name, carried as they are.
        rows: (N, *shape) pooled rows, or (sum(residues), *shape) per-token rows, back to back.
        window_starts: (N,) int64, each window's first residue in its protein; 0 for the rest.
        window_counts: (N,) int64, windows of each record's protein; 1 for plain and merged records.
    """

    indices: np.ndarray
    ids: list[str]
    residues: np.ndarray
    lengths: np.ndarray
    replaced: np.ndarray
    columns: dict[str, np.ndarray]
    rows: np.ndarray
    window_starts: np.ndarray
    window_counts: np.ndarray

    @classmethod
    def from_batch(cls, batch: PackedBatch, rows: np.ndarray | Tensor) -> RowGroup:
        """The records of ``batch`` (on the host) with ``rows``, its ``window_partials`` on the host."""
        return cls(
            indices=batch.indices.numpy(),
            ids=list(batch.sequence_ids),
            residues=batch.residues.numpy(),
            lengths=batch.lengths.numpy(),
            replaced=batch.replaced.numpy(),
            columns={name: column.numpy() for name, column in batch.columns.items()},
            rows=rows.numpy() if isinstance(rows, Tensor) else rows,
            window_starts=batch.window_starts.numpy(),
            window_counts=batch.window_counts.numpy(),
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Protein:
    """A protein whose windows are arriving: its metadata (from its first window) and running sum."""

    index: int
    id: str
    length: int
    columns: dict[str, int]
    count: int
    total: np.ndarray  # float32: (*shape) pooled, or (L, *shape) per-token
    received: int = 1
    last_start: int = 0
    replaced: int = 0


class WindowMerger:
    """Sums window partials into complete records, on the host, for one rank's stream.

    ``add`` takes each batch's ``RowGroup`` in order and returns the records it completes, in
    input order: plain records at once, a windowed protein once its last window arrives (with
    ``residues`` and ``lengths`` L). Windows of a protein must arrive consecutively and in order,
    as one rank's ``SequenceDataset`` stream delivers them through ``DataLoader(batch_size=None)``
    (``batch_size=k`` with several workers would interleave the workers' records); ``ValueError``
    otherwise. At most one protein is open at a time; its partial sums are float32 ((L, *shape)
    per-token), and rows come back in the dtype they came in. Use one merger per rank and output,
    and call ``finish`` at the end of each.

    Args:
        per_token: rows are per-token (``Pooling.per_token``), else one per record.
    """

    def __init__(self, per_token: bool) -> None:
        self.per_token = per_token
        self._open: _Protein | None = None

    @property
    def pending_index(self) -> int | None:
        """The input position of the protein whose windows are only partly in, if any."""
        return None if self._open is None else self._open.index

    def add(self, group: RowGroup) -> RowGroup:
        """The records of ``group`` that are now complete (all of them if it holds no windows)."""
        if self._open is None and not (group.window_counts > 1).any():
            return group  # nothing to merge: passed on as it is
        bounds = np.zeros(len(group) + 1, dtype=np.int64)
        np.cumsum(group.residues if self.per_token else np.ones(len(group), np.int64), out=bounds[1:])
        if group.rows.shape[0] != bounds[-1]:
            raise ValueError(
                f"{len(group)} records with {'per-token' if self.per_token else 'pooled'} rows need "
                f"{bounds[-1]} rows, got {group.rows.shape[0]}; is WindowMerger(per_token=...) the pooling's?"
            )
        done: list[int | _Protein] = []  # plain records by position in group, merged proteins as such
        for i in range(len(group)):
            rows = group.rows[bounds[i] : bounds[i + 1]]
            if group.window_counts[i] <= 1:
                self._refuse_interruption(group, i)
                done.append(i)
            elif (protein := self._add_window(group, i, rows)) is not None:
                done.append(protein)
        return self._gather(group, done, bounds)

    def finish(self) -> None:
        """At the end of the stream: ``ValueError`` if a protein is still missing windows."""
        if self._open is not None:
            p = self._open
            raise ValueError(
                f"the stream ended with the protein at input position {p.index} ({quote_id(p.id)}) incomplete: "
                f"{p.received} of its {p.count} windows arrived"
            )

    def _add_window(self, group: RowGroup, i: int, rows: np.ndarray) -> _Protein | None:
        """Add window ``i`` of ``group`` to its protein; the protein if this was its last window."""
        start, index, width = int(group.window_starts[i]), int(group.indices[i]), int(group.residues[i])
        length = int(group.lengths[i])
        if self._open is None:
            if start != 0:
                raise ValueError(
                    f"the window at residue {start} of the protein at input position {index} arrived before "
                    "its first window; " + _ORDER
                )
            self._open = _Protein(
                index, group.ids[i], length, {k: int(v[i]) for k, v in group.columns.items()},
                int(group.window_counts[i]),
                np.zeros((length, *rows.shape[1:]) if self.per_token else rows.shape[1:], dtype=np.float32),
            )  # fmt: skip
        elif index != self._open.index or start <= self._open.last_start:
            self._refuse_interruption(group, i)
        else:
            self._open.received += 1
            self._open.last_start = start
        protein = self._open
        protein.replaced += int(group.replaced[i])
        if self.per_token:
            protein.total[start : start + width] += rows
        else:
            protein.total += rows[0]
        if protein.received < protein.count:
            return None
        if start + width != protein.length:
            raise ValueError(
                f"the last window of the protein at input position {index} ends at residue {start + width}, "
                f"not at its end ({protein.length}); " + _ORDER
            )
        self._open = None
        return protein

    def _refuse_interruption(self, group: RowGroup, i: int) -> None:
        """``ValueError`` if record ``i`` of ``group`` arrives while a protein still misses windows."""
        if (p := self._open) is None:
            return
        raise ValueError(
            f"the protein at input position {p.index} ({quote_id(p.id)}) had {p.received} of its {p.count} windows "
            f"when the record at input position {int(group.indices[i])} (window start "
            f"{int(group.window_starts[i])}) arrived; " + _ORDER
        )

    def _gather(self, group: RowGroup, done: list[int | _Protein], bounds: np.ndarray) -> RowGroup:
        """The ``done`` records as one group: plain ones copied from ``group``, proteins merged."""

        def pick(plain: np.ndarray, merged: str) -> np.ndarray:
            values = [plain[d] if isinstance(d, int) else getattr(d, merged) for d in done]
            return np.asarray(values, dtype=np.int64).reshape(len(done))

        dtype = group.rows.dtype
        pieces = [
            group.rows[bounds[d] : bounds[d + 1]]
            if isinstance(d, int)
            else (d.total if self.per_token else d.total[None]).astype(dtype)
            for d in done
        ]
        return RowGroup(
            indices=pick(group.indices, "index"),
            ids=[group.ids[d] if isinstance(d, int) else d.id for d in done],
            residues=pick(group.residues, "length"),  # a merged protein has all its L residues
            lengths=pick(group.lengths, "length"),
            replaced=pick(group.replaced, "replaced"),
            columns={
                name: np.asarray([c[d] if isinstance(d, int) else d.columns[name] for d in done], dtype=np.int64)
                for name, c in group.columns.items()
            },
            rows=np.concatenate(pieces) if pieces else group.rows[:0],
            window_starts=np.zeros(len(done), dtype=np.int64),
            window_counts=np.ones(len(done), dtype=np.int64),
        )


_ORDER = (
    "windows of a protein must arrive consecutively and in order, as one rank's SequenceDataset stream "
    "delivers them (DataLoader(batch_size=None) over SequenceDataset(max_tokens=...)); use one WindowMerger "
    "per rank and per output"
)
