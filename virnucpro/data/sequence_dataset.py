"""``SequenceDataset``: FASTA files to records or token-budgeted batches, sharded exactly once.

Every DataLoader worker of every rank reads the whole input and normalises
every record; that is cheap (see ``benchmarks/parse_cost.py``) and it means
all workers agree, without talking, on each record's input position and on
where every token-budgeted batch starts and ends. Each keeps only its share:

* record ``i`` (its input position) belongs to rank ``i % world_size``: records,
  never batches, are shared out between ranks (and between ``--shard`` tasks,
  which are ranks that never meet), so that ranks sizing their batches for
  different GPUs still split the input exactly;
* each rank draws its batches over its own records (with ``max_tokens``), and
  its k-th item (batch or record) goes to worker ``k % num_workers``.

PyTorch's DataLoader takes items from its workers round-robin, so a rank
receives its items in input order. Each record also carries ``index``, its
position in the whole input, so that a consumer can key rows by position
whatever the order.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from virnucpro.models.esm2 import VOCABULARY
from virnucpro.models.family import Vocabulary

from .duplicates import DuplicateIds
from .fasta import require_fasta_file
from .inputs import PROTEIN, InputKind
from .isolation import die_with_parent, isolate_worker_from_cuda, resolve_rank
from .normalise import Normaliser
from .records import Record
from .windows import check_stride, default_stride, split_windows

__all__ = ["SequenceDataset", "worker_slot"]


def worker_slot() -> tuple[int, int]:
    """(this DataLoader worker's id, the number of workers); (0, 1) outside workers.

    In a worker, first cuts it off from CUDA (``isolate_worker_from_cuda``) and ties its
    life to its parent's (``die_with_parent``).
    """
    info = get_worker_info()
    if info is None:
        return 0, 1
    isolate_worker_from_cuda(info.id)
    die_with_parent()
    return info.id, info.num_workers


def _skip_positions(skip: np.ndarray | Collection[int] | None) -> np.ndarray | frozenset[int] | None:
    """``skip`` as a bool mask over input positions (a copy), or as a set of int positions.

    Told apart by dtype, never by value, so ``[3, 5]`` can only mean positions 3 and 5.
    Positions stay a set, not a mask: a mask's size would be the largest position given.
    """
    if skip is None:
        return None
    if isinstance(skip, (set, frozenset)):
        skip = sorted(skip)
    elif isinstance(skip, Iterator):
        skip = list(skip)
    values = np.asarray(skip)
    if values.size == 0:
        return None  # np.asarray([]) is float64: an empty collection skips nothing, whatever its dtype
    if values.ndim != 1:
        raise ValueError(
            f"skip must be 1-D, a boolean mask or a collection of input positions, got shape {values.shape}"
        )
    if values.dtype == bool:
        return values.copy()
    if values.dtype.kind not in "iu":
        raise ValueError(
            f"skip must be a boolean mask (a numpy bool array) or a collection of int input positions, "
            f"got {values.dtype} values such as {values.tolist()[0]!r}"
        )
    if (negative := values < 0).any():
        raise ValueError(
            f"skip holds the negative position {int(values[negative.argmax()])}; input positions count from 0"
        )
    return frozenset(values.tolist())


class SequenceDataset(IterableDataset):
    """Protein FASTA files as a stream of normalised ``Record``s, sharded across workers and ranks.

    Args:
        fasta_files: plain, gzip, bzip2 or xz FASTA paths (format told by content), read in this order.
        max_length: residues kept per sequence; longer ones are truncated and counted,
            rejected with ``on_overlength="raise"``, or cut into windows with
            ``on_overlength="window"``. Default: the model's trained length.
        max_tokens: if set, yield lists of records whose tokens (n + special tokens each,
            every window counted on its own) total at most ``max_tokens``, for
            ``DataLoader(batch_size=None)``. A record alone over the budget forms a list of its own.
        invalid: ``"raise"`` on a character outside the alphabet, or ``"X"`` to replace it.
        on_overlength: ``"truncate"`` (as esm-extract does), ``"raise"``, or ``"window"``: a
            protein of L > ``max_length`` residues is yielded as its overlapping windows of
            ``max_length`` residues (``windows.py``), consecutive ``Record``s that carry its
            ``index`` and their ``window_start``; ``window_partials`` and ``WindowMerger``
            (``virnucpro.models``) merge their rows back into one per protein. Windows of one
            protein may land in different batches, never on different ranks.
        window_stride: residues between window starts, 1..``max_length``; default
            ``max_length // 2``. Only with ``on_overlength="window"``.
        allow_nucleotide_like: accept records that read as DNA or RNA (long, and all
            nucleotide codes), which are refused by default: they are almost surely not protein.
        skip: input positions to leave out (to resume), either as a boolean mask, an
            ``(M,)`` bool array whose ``skip[i]`` set leaves out position ``i < M``, or as
            a collection of non-negative int positions (``[3, 5]``). Positions past the
            end of the input are ignored. Batch boundaries do not move: they are drawn
            before skipped records are removed.
        rank, world_size: this rank keeps the records at positions ``i % world_size == rank``;
            default from ``torch.distributed`` or torchrun's ``RANK``/``WORLD_SIZE``, resolved
            here in the main process.
        report: warn once, at the end of the stream, about truncated, replaced and
            duplicate-id records (only rank 0's first worker warns; every worker sees them all).
        vocabulary: the model family's residues, special tokens per sequence and default
            ``max_length``; default ESM-2's.

    Raises now, for a path that is not a readable regular file, what ``require_fasta_file``
    raises (``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError``, ``ValueError``),
    and ``ValueError`` for a bad option; while iterating, ``ValueError`` naming the file,
    record and fix for bad input (in workers too: the DataLoader re-raises it in the main
    process).
    """

    def __init__(
        self,
        fasta_files: Sequence[str | os.PathLike] | str | os.PathLike,
        max_length: int | None = None,
        max_tokens: int | None = None,
        *,
        invalid: Literal["raise", "X"] = "raise",
        on_overlength: Literal["truncate", "raise", "window"] = "truncate",
        window_stride: int | None = None,
        allow_nucleotide_like: bool = False,
        skip: np.ndarray | Collection[int] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        report: bool = True,
        vocabulary: Vocabulary = VOCABULARY,
        kind: InputKind = PROTEIN,
    ) -> None:
        super().__init__()
        self.kind = kind
        if isinstance(fasta_files, (str, os.PathLike)):
            fasta_files = [fasta_files]
        self.files = tuple(Path(f) for f in fasta_files)
        if not self.files:
            raise ValueError("fasta_files is empty: pass at least one FASTA path")
        for path in self.files:
            require_fasta_file(path)
        self.vocabulary = vocabulary
        self.max_length = vocabulary.max_length if max_length is None else max_length
        if max_tokens is not None and max_tokens < 1 + vocabulary.special_tokens_per_sequence:
            raise ValueError(
                f"max_tokens (CLI: --max-tokens) must be at least {1 + vocabulary.special_tokens_per_sequence} (one "
                f"residue and the special tokens), got {max_tokens}"
            )
        self.max_tokens = max_tokens
        self.invalid = invalid
        self.on_overlength = on_overlength
        self.allow_nucleotide_like = allow_nucleotide_like
        self._normaliser()  # validates the options now, not in a worker
        self.window_stride = self._stride(window_stride)
        self.skip = _skip_positions(skip)
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.report = report

    def records(self) -> Iterator[Record]:
        """Every record of the input, normalised, in input order, unsharded (``skip`` applied)."""
        return self._unskipped(self._records(self.report))

    def batches(self) -> Iterator[list[Record]]:
        """All token-budgeted batches, in input order, unsharded. Needs ``max_tokens``."""
        if self.max_tokens is None:
            raise ValueError("batches() needs max_tokens; pass SequenceDataset(..., max_tokens=...)")
        return self._budget(self._records(self.report))

    def __iter__(self) -> Iterator[Record] | Iterator[list[Record]]:
        worker, num_workers = worker_slot()
        for k, item in enumerate(self.rank_stream(report=self.report and worker == 0)):
            if k % num_workers == worker:
                yield item

    def rank_stream(self, report: bool = False) -> Iterator[Record] | Iterator[list[Record]]:
        """This rank's items (batches with ``max_tokens``, else records), in order, before the
        DataLoader workers share them out (``__iter__`` gives worker w the k-th with k % K == w).
        ``report``: warn at the end as ``report=True`` describes (rank 0 only)."""
        records = (r for r in self._records(report and self.rank == 0) if r.index % self.world_size == self.rank)
        return self._unskipped(records) if self.max_tokens is None else self._budget(records)

    def _stride(self, window_stride: int | None) -> int:
        """The window stride (0 unless ``on_overlength="window"``), validated here, not in a worker."""
        if self.on_overlength != "window":
            if window_stride is not None:
                raise ValueError(
                    f"window_stride={window_stride!r} needs on_overlength='window' (CLI: --on-overlength window), "
                    f"got on_overlength={self.on_overlength!r}"
                )
            return 0
        return check_stride(
            default_stride(self.max_length) if window_stride is None else window_stride, self.max_length
        )

    def _normaliser(self) -> Normaliser:
        return Normaliser(
            self.max_length,
            self.on_overlength,
            self.invalid,
            self.vocabulary.residues,
            allow_nucleotide_like=self.allow_nucleotide_like or self.kind.nucleotide_like_ok,
        )

    def _skipped(self, record: Record) -> bool:
        if self.skip is None:
            return False
        if isinstance(self.skip, frozenset):
            return record.index in self.skip
        return record.index < self.skip.size and bool(self.skip[record.index])

    def _unskipped(self, records: Iterator[Record]) -> Iterator[Record]:
        return (record for record in records if not self._skipped(record))

    def _records(self, report: bool) -> Iterator[Record]:
        normalise = self._normaliser()
        duplicates = DuplicateIds() if report else None
        for index, (raw, columns) in enumerate(self.kind.records(self.files)):
            replaced_before = normalise.replaced_residues
            sequence, length = normalise(raw)
            if duplicates is not None:
                duplicates.add(raw.id)
            replaced = normalise.replaced_residues - replaced_before
            record = Record(raw.id, sequence, raw.path, index, raw.number, length, replaced, columns)
            if len(sequence) > self.max_length:  # only with on_overlength="window"
                yield from split_windows(record, self.max_length, self.window_stride)
            else:
                yield record
        if duplicates is not None:
            self._warn(normalise, duplicates, self.window_stride)

    def _budget(self, records: Iterator[Record]) -> Iterator[list[Record]]:
        # Batch boundaries are drawn over all the records given and skipped records are
        # removed afterwards, so a resumed run (same max_tokens) packs the records left
        # to do exactly as the interrupted run would have.
        special = self.vocabulary.special_tokens_per_sequence
        batch: list[Record] = []
        tokens = 0
        for record in records:
            cost = len(record.sequence) + special
            if batch and tokens + cost > self.max_tokens:
                if kept := list(self._unskipped(iter(batch))):
                    yield kept
                batch, tokens = [], 0
            batch.append(record)
            tokens += cost
        if kept := list(self._unskipped(iter(batch))):
            yield kept

    @staticmethod
    def _warn(normalise: Normaliser, duplicates: DuplicateIds, stride: int) -> None:
        if normalise.truncated:
            warnings.warn(
                f"truncated {normalise.truncated} sequences longer than max_length={normalise.max_length} "
                "residues to their first max_length residues; pass on_overlength='window' to embed every residue "
                "in overlapping windows, or on_overlength='raise' to reject them instead",
                stacklevel=3,
            )
        if normalise.windowed:
            warnings.warn(
                f"cut {normalise.windowed} sequences longer than max_length={normalise.max_length} residues into "
                f"overlapping windows of {normalise.max_length} residues, {stride} apart (one output row each, "
                "merged from its windows)",
                stacklevel=3,
            )
        if normalise.replaced_residues:
            warnings.warn(f"replaced {normalise.replaced_residues} unknown residues with 'X'", stacklevel=3)
        count, first = duplicates.result()
        if count:
            warnings.warn(
                f"{count} records repeat the id of an earlier record (the first at input position {first}); "
                "all are kept; key results by input position ('index'), not by id",
                stacklevel=3,
            )
