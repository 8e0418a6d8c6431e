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

Budgets count the model's real tokens: ``Tokenizer.count`` over chunks of records for a
per-character tokenizer (ESM-2: length + 2); for any other (byte pairs), ``encode`` over the
chunks, and each batch carries its tokens (``Encoded``) so that ``VarlenCollator`` does not
encode them again.

Encoding byte pairs costs far more than parsing (``benchmarks/bpe_tokenize_cost.py``), and
through ``__iter__`` every worker encodes every record of its rank. ``rank_groups`` shares that
work out instead: it cuts a rank's records into groups by characters (cheap, so every worker
agrees on them); the worker that owns a group encodes and budgets it alone (``batches_of``),
its batches never crossing the group's ends. ``virnucpro.pipeline`` deals out groups.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .alphabet_tokenizer import default_tokenizer
from .duplicates import DuplicateIds
from .fasta import require_fasta_file
from .inputs import NUCLEOTIDE, PROTEIN, InputKind, TranslatedRecord
from .isolation import die_with_parent, isolate_worker_from_cuda, quiet_parent_hangups, resolve_rank
from .normalise import Normaliser
from .records import Record, quote_id
from .tokenizer import Encoded, Tokenizer, UnknownCharacterError, is_per_character, reads_nucleotides
from .windows import check_per_character, check_stride, default_stride, split_windows

__all__ = ["SequenceDataset", "worker_slot"]

#: Records tokenised (or counted) per call while budgeting: batched, not one call per record.
BUDGET_CHUNK = 512
#: ``rank_groups``: characters per group, per token of ``max_tokens``: about one batch per group at
#: DNABERT-S's ~5 bases per token. A worker encodes a whole group before its first batch leaves, so
#: smaller groups start the GPU sooner; the groups' last, short batches cost nothing measurable. On an
#: H100 with 8 workers, 6.2 M tokens of 500-bp slices: first batch after 0.4 s at 4, 0.9 s at 8 and
#: 3.4 s at 32; end to end 5.86, 6.33 and 8.85 s (``benchmarks/results/device_2026-12-07b.md``).
GROUP_CHARACTERS_PER_TOKEN = 4


def worker_slot() -> tuple[int, int]:
    """(this DataLoader worker's id, the number of workers); (0, 1) outside workers.

    In a worker, first cuts it off from CUDA (``isolate_worker_from_cuda``), ties its life to
    its parent's (``die_with_parent``) and keeps it silent when the parent stops mid-transfer
    (``quiet_parent_hangups``).
    """
    info = get_worker_info()
    if info is None:
        return 0, 1
    isolate_worker_from_cuda(info.id)
    die_with_parent()
    quiet_parent_hangups()
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
    """FASTA files as a stream of normalised ``Record``s, sharded across workers and ranks.

    Args:
        fasta_files: plain, gzip, bzip2 or xz FASTA paths (format told by content), read in this order.
        max_length: residues (bases) kept per sequence; longer ones are truncated and counted,
            rejected with ``on_overlength="raise"``, or cut into windows with
            ``on_overlength="window"``. Default: the tokenizer's ``max_length``.
        max_tokens: if set, yield lists of records whose tokens (the tokenizer's count, special
            tokens included, every window counted on its own) total at most ``max_tokens``, for
            ``DataLoader(batch_size=None)``. A record alone over the budget forms a list of its own.
        invalid: ``"raise"`` on a character outside the alphabet, or ``"X"`` to replace it.
        on_overlength: ``"truncate"`` (as esm-extract does), ``"raise"``, or ``"window"``: a
            protein of L > ``max_length`` residues is yielded as its overlapping windows of
            ``max_length`` residues (``windows.py``), consecutive ``Record``s that carry its
            ``index`` and their ``window_start``; ``window_partials`` and ``WindowMerger``
            (``virnucpro.models``) merge their rows back into one per protein. Windows of one
            protein may land in different batches, never on different ranks. Only for a
            per-character tokenizer.
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
        tokenizer: the model family's ``Tokenizer`` (its alphabet, special tokens and default
            ``max_length``); default fair-esm's ESM-1b alphabet, ESM-2's (``default_tokenizer``).
        kind: what the files hold (``inputs.py``); default protein FASTA, or nucleotide FASTA
            read as DNA when the tokenizer reads DNA (its alphabet is nucleotide codes only).

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
        tokenizer: Tokenizer | None = None,
        kind: InputKind | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = default_tokenizer() if tokenizer is None else tokenizer
        self.kind = _kind_for(self.tokenizer, kind)
        if isinstance(fasta_files, (str, os.PathLike)):
            fasta_files = [fasta_files]
        self.files = tuple(Path(f) for f in fasta_files)
        if not self.files:
            raise ValueError("fasta_files is empty: pass at least one FASTA path")
        for path in self.files:
            require_fasta_file(path)
        self.max_length = self.tokenizer.max_length if max_length is None else max_length
        special = self.tokenizer.special_tokens_per_sequence
        if max_tokens is not None and max_tokens < 1 + special:
            raise ValueError(
                f"max_tokens (CLI: --max-tokens) must be at least {1 + special} (one residue and the "
                f"special tokens), got {max_tokens}"
            )
        self.max_tokens = max_tokens
        self.invalid = invalid
        check_per_character(self.tokenizer, on_overlength)
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

    @property
    def grouped(self) -> bool:
        """Whether budgeting encodes (a tokenizer that is not one token per character, with
        ``max_tokens``): then ``rank_groups`` spares each worker the encoding of every record."""
        return self.max_tokens is not None and not is_per_character(self.tokenizer)

    def rank_groups(self) -> Iterator[list[Record]]:
        """This rank's records, in order, in groups of at least ``GROUP_CHARACTERS_PER_TOKEN *
        max_tokens`` characters (the last may hold fewer); groups whose records are all skipped
        are left out. ``batches_of(group)`` budgets one. Needs ``max_tokens``."""
        if self.max_tokens is None:
            raise ValueError("rank_groups() needs max_tokens; pass SequenceDataset(..., max_tokens=...)")
        records = (r for r in self._records(False) if r.index % self.world_size == self.rank)
        size = GROUP_CHARACTERS_PER_TOKEN * self.max_tokens
        group: list[Record] = []
        characters = 0
        for record in records:
            group.append(record)
            characters += len(record.sequence)
            if characters >= size:
                if not all(map(self._skipped, group)):
                    yield group
                group, characters = [], 0
        if group and not all(map(self._skipped, group)):
            yield group

    def batches_of(self, records: list[Record]) -> list[list[Record]]:
        """``records`` (a group of ``rank_groups``) budgeted into batches of at most ``max_tokens``
        tokens, skipped records removed: ``Encoded`` batches for a tokenizer that is not per character."""
        return list(self._budget(iter(records)))

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
            self.tokenizer.alphabet,
            allow_nucleotide_like=self.allow_nucleotide_like or self.kind.nucleotide_like_ok,
            nucleotides=self.kind.yields == "nucleotide",
            windows=is_per_character(self.tokenizer),
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
            nucleotide = raw.nucleotide if isinstance(raw, TranslatedRecord) else ""
            record = Record(
                raw.id, sequence, raw.path, index, raw.number, length, replaced, columns, nucleotide=nucleotide
            )
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
        records = iter(records)
        carry = not is_per_character(self.tokenizer)  # counting byte pairs is encoding them: keep the tokens
        batch: list[Record] = []
        pieces: list[tuple[np.ndarray, np.ndarray]] = []  # the open batch's (ids, lengths), a slice per chunk
        tokens = 0
        for chunk in _chunks(records, BUDGET_CHUNK):
            if carry:
                ids, costs = self._encode(chunk)
                starts = np.concatenate([[0], np.cumsum(costs)])
            else:
                costs = self.tokenizer.count([r.sequence for r in chunk])
            first = 0  # the chunk's first record in the open batch
            for i, cost in enumerate(costs.tolist()):
                if batch and tokens + cost > self.max_tokens:
                    if carry:
                        pieces.append((ids[starts[first] : starts[i]], costs[first:i]))
                    yield from self._kept(batch, pieces)
                    batch, pieces, tokens, first = [], [], 0, i
                batch.append(chunk[i])
                tokens += cost
            if carry:
                pieces.append((ids[starts[first] :], costs[first:]))
        yield from self._kept(batch, pieces)

    def _encode(self, records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
        """``tokenizer.encode`` of ``records``, an error naming the record it fails on."""
        try:
            return self.tokenizer.encode([r.sequence for r in records])
        except UnknownCharacterError as err:
            record = records[err.sequence]
            fix = "its tokenizer cannot encode a character its alphabet holds: report this"
            raise err.naming(f"{quote_id(record.id)} (record {record.number} of {record.file})", fix) from None

    def _kept(self, batch: list[Record], pieces: list[tuple[np.ndarray, np.ndarray]]) -> Iterator[list[Record]]:
        """``batch`` without its skipped records, if any are left; an ``Encoded`` with its tokens if given them."""
        keep = None if self.skip is None else np.fromiter(map(self._kept_record, batch), bool, count=len(batch))
        if not batch or (keep is not None and not keep.any()):
            return
        if not pieces:
            yield batch if keep is None else [r for r, k in zip(batch, keep.tolist()) if k]
            return
        ids, lengths = (np.concatenate(column) for column in zip(*pieces))
        encoded = Encoded(batch, ids, lengths, self.tokenizer)
        yield encoded if keep is None or keep.all() else encoded.take(keep)

    def _kept_record(self, record: Record) -> bool:
        return not self._skipped(record)

    @staticmethod
    def _warn(normalise: Normaliser, duplicates: DuplicateIds, stride: int) -> None:
        if normalise.truncated:
            unit = "bases" if normalise.nucleotides else "residues"
            windows = "on_overlength='window' to embed every residue in overlapping windows, or " * normalise.windows
            warnings.warn(
                f"truncated {normalise.truncated} sequences longer than max_length={normalise.max_length} "
                f"{unit} to their first max_length {unit}; pass {windows}on_overlength='raise' to reject them instead",
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


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    """``records`` in lists of ``size`` (the last may be shorter)."""
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def _kind_for(tokenizer: Tokenizer, kind: InputKind | None) -> InputKind:
    """``kind``, or the default for ``tokenizer``; ``ValueError`` if they do not read the same sequences."""
    reads = "nucleotide" if reads_nucleotides(tokenizer) else "protein"
    if kind is None:
        return NUCLEOTIDE if reads == "nucleotide" else PROTEIN
    if kind.yields != reads:
        raise ValueError(
            f"kind={kind!r} gives {kind.yields} sequences, but {tokenizer.name}'s tokenizer reads {reads} "
            f"sequences (its alphabet is {tokenizer.alphabet!r}); leave kind out for the tokenizer's own"
        )
    return kind
