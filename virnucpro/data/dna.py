"""DNA to the proteins VirNucPro embeds: its chunking, six-frame translation and frame choice.

Reproduces VirNucPro's ``prediction.py`` (commit 0f93f27) exactly, quirks included:
``split_fasta_chunk`` cuts each record into overlapping ``chunk_size`` chunks; each chunk,
upper-cased, is translated in six frames (``translate_dna``); ``identify_seq`` keeps the
frames without ``*`` and ``make_predictdata`` drops those left empty. Quirks kept:

* a codon holding anything but A/C/G/T (N, R, ...) yields no residue at all, not X (the
  proteins that lost a codon so are counted: ``TranslationCounts.gapped_proteins``);
* the nucleotide side is ``3 * len(protein) + 1`` bases from the frame's offset (one
  base past the last codon), even when codons were dropped;
* ``zip()`` truncates VirNucPro's overlap list when the overlap is large against the
  chunk count, and the last chunk comes out short (L=501, size 500: [0, 500), [250, 501)).

``frames="all"`` is our rule, not VirNucPro's: every frame is kept, a final ``*``
dropped, inner ones written ``X``, the nucleotide side cut by the same rule from the
protein kept. Translation is NumPy look-ups over ~1 Mbp blocks.

Not VirNucPro's: an RNA record (U) is refused, named, as the DNA models refuse it. VirNucPro
would drop every codon holding a U, and with it every stop codon, and embed what is left.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from virnucpro.data.fasta import FastaRecord, read_fasta
from virnucpro.data.field_mapping import FieldMapping
from virnucpro.data.tokenizer import NUCLEOTIDE_CODES

__all__ = [
    "FRAMES",
    "bases",
    "chunk_bounds",
    "six_frames",
    "Protein",
    "TranslationCounts",
    "Translator",
    "path_list",
    "read_dna",
]

#: ``"stop-free"``: VirNucPro's choice, frames without a stop; ``"all"``: ours, every frame.
FRAMES = ("stop-free", "all")
Frames = Literal["stop-free", "all"]
PathArg = str | os.PathLike

_NOT_IUPAC = re.compile(f"[^{NUCLEOTIDE_CODES}{NUCLEOTIDE_CODES.lower()}]")
_IUPAC_BYTES = (NUCLEOTIDE_CODES + NUCLEOTIDE_CODES.lower()).encode("ascii")
_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")  # reverse_complement's table: others stay
_BLOCK_BASES = 1 << 20

# Codons are indexed in base 5 (A, C, G, T = 0..3, anything else 4) so that one look-up
# both translates and blanks invalid codons (0: no residue, as codon_table.get(codon, '') gives).
_CODE = np.full(256, 4, dtype=np.uint8)
_CODE[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
_STANDARD = b"KNKNTTTTRSRSIIMIQHQHPPPPRRRRLLLLEDEDAAAAGGGGVVVV*Y*YSSSS*CWCLFLF"  # 16a + 4b + c
_a, _b, _c = np.arange(125) // 25, np.arange(125) // 5 % 5, np.arange(125) % 5
_VALID = (_a < 4) & (_b < 4) & (_c < 4)
_TABLE = np.frombuffer(_STANDARD, dtype=np.uint8)
_FORWARD = np.where(_VALID, _TABLE[(16 * _a + 4 * _b + _c) % 64], 0).astype(np.uint8)
# the codon the other strand reads over the same three bases, complemented and reversed
_REVERSE = np.where(_VALID, _TABLE[(16 * (3 - _c) + 4 * (3 - _b) + (3 - _a)) % 64], 0).astype(np.uint8)


def _chunk_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"chunk_size (CLI: --chunk-size) must be an integer >= 1, got {size!r}")
    return int(size)


def _chunk_arrays(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)``, each ``(num_chunks,)`` int64: ``split_fasta_chunk``'s arithmetic."""
    size = _chunk_size(size)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length == 0:  # VirNucPro divides by zero here; an empty record simply has no chunks
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    num_chunks = -(-length // size)
    repeat_length = num_chunks * size - length
    lower_int = int(repeat_length / num_chunks)
    upper_int = lower_int + 1
    need_to_add_up_nums = repeat_length - lower_int * (num_chunks - 1)
    # move_step before chunk i sums final_low_up_numbers[:i]: need_to_add_up_nums upper
    # shares, then lower ones; zip() stops at num_chunks items, so the trailing 0 never
    # counts and, when need_to_add_up_nums > num_chunks - 1, every share is an upper one.
    i = np.arange(num_chunks, dtype=np.int64)
    move_step = upper_int * np.minimum(i, need_to_add_up_nums) + lower_int * np.maximum(i - need_to_add_up_nums, 0)
    a = i * size
    starts = np.where(a > 1, a - move_step, a)  # `if a > 1` spares a == 1 only with size 1, where shares are 0
    return starts, np.minimum(starts + size, length)


def chunk_bounds(length: int, size: int) -> list[tuple[int, int]]:
    """VirNucPro's ``(start, end)`` per chunk of a record of ``length`` bases, in order.

    Chunk ``k`` (1-based) is ``sequence[start:end]``; ``end`` is clipped to ``length``, so
    a record shorter than ``size`` is one shorter chunk. ``length == 0`` gives ``[]``.
    """
    starts, ends = _chunk_arrays(length, size)
    return list(zip(starts.tolist(), ends.tolist()))


def _equal_chunks(
    forward: np.ndarray, reverse: np.ndarray, starts: np.ndarray, n: int
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Chunks ``[s, s + n)`` of one length: their frames' residues, ``(6C,)`` residues per frame and
    ``(6C,)`` codons per frame (more codons than residues: a codon held an ambiguity code).

    ``forward[k]`` / ``reverse[k]``: the residue of the codon at bases ``k..k+2`` read on this
    strand / the other one, 0 where none. The residues come chunk-major, F1..R3 within.
    """
    if n < 3:
        none = np.zeros(6 * len(starts), dtype=np.int64)
        return b"", none, none
    rows = sliding_window_view(forward, n - 2)[starts]  # (C, n - 2): codons i < n - 2, as translate_frame reads
    back = sliding_window_view(reverse, n - 2)[starts][:, ::-1]  # the reverse complement's, from its start
    frames = [rows[:, f::3] for f in range(3)] + [back[:, f::3] for f in range(3)]
    per_frame = np.stack([np.count_nonzero(frame, axis=1) for frame in frames], axis=1)
    codons = np.tile([frame.shape[1] for frame in frames], len(starts))
    return np.concatenate(frames, axis=1).tobytes().translate(None, b"\0"), per_frame.ravel(), codons


def _translate(region: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[str, list[int], list[bool]]:
    """Six frames of each chunk ``region[s:e]``, as ``translate_dna`` gives them.

    Returns ``(text, bounds, gapped)``: frame ``j = 6 * chunk + f`` (f = 0..5 for F1..R3) is
    ``text[bounds[j]:bounds[j + 1]]``; ``bounds`` has 6C + 1 items; ``gapped[j]``: frame j lost
    a codon to an ambiguity code.
    """
    codes = _CODE.take(np.frombuffer(region, dtype=np.uint8))
    codon = codes[:-2] * 25 + codes[1:-1] * 5 + codes[2:]  # max 124: fits uint8
    forward, reverse = _FORWARD.take(codon), _REVERSE.take(codon)
    lengths = ends - starts
    runs = np.split(np.arange(len(starts)), np.flatnonzero(np.diff(lengths)) + 1)  # only a last chunk is shorter
    parts = [_equal_chunks(forward, reverse, starts[run], int(lengths[run[0]])) for run in runs]
    per_frame = np.concatenate([residues for _, residues, _ in parts])
    gapped = per_frame < np.concatenate([codons for _, _, codons in parts])
    bounds = np.concatenate([[0], np.cumsum(per_frame)])
    return b"".join(text for text, _, _ in parts).decode("ascii"), bounds.tolist(), gapped.tolist()


def six_frames(chunk: str) -> list[str]:
    """``translate_dna(chunk)``: frames 1-3 from offsets 0-2, 4-6 from the reverse complement's.

    Upper-case codons of A/C/G/T only translate; any other codon (lower case too, as in
    VirNucPro, which upper-cases before calling it) gives nothing. Stops stay ``*``.
    """
    text, bounds, _ = _translate(chunk.encode("ascii", "replace"), np.array([0]), np.array([len(chunk)]))
    return [text[bounds[j] : bounds[j + 1]] for j in range(6)]


@dataclass(frozen=True, slots=True)
class Protein(FieldMapping):
    """One protein as VirNucPro's prediction writes it; ``protein.id`` or ``protein["id"]`` (``FieldMapping``).

    ``id``: ``<record id>_chunk_<chunk><F1|F2|F3|R1|R2|R3>``; ``nucleotide``: VirNucPro's
    DNA slice for it (upper case); ``source``: 0-based index of the DNA record in the whole
    input, files in order, empty records included; ``chunk``: 1-based; ``frame``: 1..6
    (1-3 = F1-F3, 4-6 = R1-R3).
    """

    id: str
    sequence: str
    nucleotide: str
    source: int
    chunk: int
    frame: int


@dataclass(frozen=True)
class TranslationCounts:
    """What a translation read and dropped; ``proteins`` are the ones kept."""

    records: int = 0
    empty_records: int = 0
    chunks: int = 0
    proteins: int = 0
    stop_frames: int = 0  # frames dropped for holding a stop (frames="stop-free" only)
    empty_proteins: int = 0  # frames with no residue left (short chunks, N runs)
    gapped_proteins: int = 0  # kept proteins short of a codon that held N or another ambiguity code


def bases(record: FastaRecord) -> str:
    """The record's bases as VirNucPro's ``SeqIO.parse`` reads them, upper-cased as its ``process_record``
    does; ``ValueError`` naming the record at a character that is not an IUPAC nucleotide code."""
    return _dna(record).upper()


def _dna(record: FastaRecord) -> str:
    """The record's bases as VirNucPro's ``SeqIO.parse`` reads them; ``ValueError`` at a non-IUPAC one."""
    # SeqIO also drops tabs inside lines, which SimpleFastaParser (under read_fasta) keeps
    sequence = record.sequence.replace("\t", "") if "\t" in record.sequence else record.sequence
    # deleting the valid letters is a few times faster than a regex scan; the regex then
    # finds the culprit, in the string as read: before any case folding ('ſ'.upper() == 'S')
    if not sequence.isascii() or sequence.encode("ascii").translate(None, _IUPAC_BYTES):
        bad = _NOT_IUPAC.search(sequence)
        if bad.group() in "Uu":
            fix = (
                "is it RNA? write its U as T (VirNucPro's translation would drop every codon holding a U, "
                "stop codons included, and keep what is left)"
            )
        else:
            fix = "fix or remove that record (a protein FASTA is embedded directly, not translated)"
        raise ValueError(
            f"{record.where} has {bad.group()!r} at position "
            f"{bad.start() + 1}, which is not an IUPAC nucleotide code of DNA ({NUCLEOTIDE_CODES}, either case); "
            f"{fix}"
        )
    return sequence


class Translator:
    """DNA records to VirNucPro's proteins, counting what it reads and drops.

    ``chunk_size`` (>= 1) and ``frames`` (one of ``FRAMES``) are checked here. Counts
    cover every record translated so far and are complete once an iterator is exhausted.
    """

    def __init__(self, chunk_size: int = 500, frames: Frames = "stop-free") -> None:
        if frames not in FRAMES:
            raise ValueError(f"frames (CLI: --frames) must be one of {', '.join(map(repr, FRAMES))}, got {frames!r}")
        self.chunk_size, self.frames = _chunk_size(chunk_size), frames
        self._counts = {field.name: 0 for field in fields(TranslationCounts)}

    @property
    def counts(self) -> TranslationCounts:
        """A snapshot of the counts so far."""
        return TranslationCounts(**self._counts)

    def __call__(self, record: FastaRecord, source: int) -> Iterator[Protein]:
        """The record's proteins in VirNucPro's order: chunks in order, F1, F2, F3, R1, R2, R3 within."""
        sequence = bases(record)
        self._counts["records"] += 1
        if not sequence:
            self._counts["empty_records"] += 1
            return
        reverse = sequence.translate(_COMPLEMENT)[::-1]
        starts, ends = _chunk_arrays(len(sequence), self.chunk_size)
        self._counts["chunks"] += len(starts)
        step = max(1, _BLOCK_BASES // self.chunk_size)
        for first in range(0, len(starts), step):
            block = slice(first, first + step)
            yield from self._block(record.id, source, sequence, reverse, starts[block], ends[block], first + 1)

    def _block(
        self, record_id: str, source: int, sequence: str, reverse: str, starts: np.ndarray, ends: np.ndarray, chunk: int
    ) -> Iterator[Protein]:
        """Proteins of consecutive chunks ``chunk, chunk + 1, ...`` spanning ``[starts[0], ends[-1])``."""
        origin = int(starts[0])
        region = sequence[origin : int(ends[-1])].encode("ascii")
        text, bounds, gapped = _translate(region, starts - origin, ends - origin)
        length, counts, stop_free = len(sequence), self._counts, self.frames == "stop-free"
        for c, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
            n, chunk_id = end - start, f"{record_id}_chunk_{chunk + c}"
            for f in range(6):
                j = 6 * c + f
                protein = text[bounds[j] : bounds[j + 1]]
                if "*" in protein:
                    if stop_free:
                        counts["stop_frames"] += 1
                        continue
                    protein = (protein[:-1] if protein.endswith("*") else protein).replace("*", "X")
                if not protein:
                    counts["empty_proteins"] += 1
                    continue
                offset, span = f % 3, min(f % 3 + 1 + 3 * len(protein), n)
                if f < 3:
                    nucleotide, name = sequence[start + offset : start + span], f"{chunk_id}F{f + 1}"
                else:
                    nucleotide, name = reverse[length - end + offset : length - end + span], f"{chunk_id}R{f - 2}"
                counts["proteins"] += 1
                counts["gapped_proteins"] += gapped[j]
                yield Protein(name, protein, nucleotide, source, chunk + c, f + 1)

    def read(self, paths: PathArg | Iterable[PathArg]) -> Iterator[Protein]:
        """Stream the proteins of DNA FASTA files (plain or gzip), in input order."""
        records = (record for path in path_list(paths) for record in read_fasta(path))
        for source, record in enumerate(records):
            yield from self(record, source)


def path_list(paths: PathArg | Iterable[PathArg]) -> list[PathArg]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def read_dna(
    paths: PathArg | Iterable[PathArg], chunk_size: int = 500, frames: Frames = "stop-free"
) -> Iterator[Protein]:
    """``Translator(chunk_size, frames).read(paths)``: use a ``Translator`` to see its counts."""
    return Translator(chunk_size, frames).read(paths)
