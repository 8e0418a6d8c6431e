"""FASTA reading and residue normalisation.

Files are plain or gzip-compressed, told apart by their first bytes (not their
name), and streamed record by record through Biopython's FASTA parser: no file is
ever held in memory whole.

Normalisation turns a raw record into exactly what ESM-2 is given:
upper-case, whitespace removed (Biopython already drops spaces, tabs and CR),
one trailing ``*`` (a stop codon, as Prodigal and six-frame translation write
it) removed. Every other character outside ESM's alphabet is an error that
names the file, the record and the fix, unless ``invalid="X"`` asks for it to
be replaced, which is counted.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import esm
from Bio.SeqIO.FastaIO import SimpleFastaParser

__all__ = ["RESIDUES", "FastaRecord", "open_fasta", "read_fasta", "Normaliser"]

_GZIP_MAGIC = b"\x1f\x8b"

#: The single-character tokens of ESM-2's alphabet: what a normalised sequence may hold.
RESIDUES: str = "".join(tok for tok in esm.data.Alphabet.from_architecture("ESM-1b").standard_toks if len(tok) == 1)
_NOT_RESIDUE = re.compile(f"[^{re.escape(RESIDUES)}]")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class FastaRecord:
    """One raw record as read from a file.

    ``number`` is 1-based within ``path``; ``id`` is Biopython's record id (the
    header up to the first whitespace); ``sequence`` is not yet normalised.
    """

    path: str
    number: int
    id: str
    sequence: str

    @property
    def where(self) -> str:
        """``"file: record 12 ('WP_0123')"``, the prefix of every error about this record."""
        return f"{self.path}: record {self.number} ({self.id!r})"


def open_fasta(path: str | os.PathLike) -> TextIO:
    """Open ``path`` as text, decompressing when its content starts with the gzip magic bytes.

    Raises ``FileNotFoundError`` naming the path when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such FASTA file")
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def read_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Stream the records of one FASTA file, in file order.

    Parsed with Biopython's ``Bio.SeqIO.FastaIO.SimpleFastaParser``, the parser under
    ``SeqIO.parse(..., "fasta")`` minus the per-record ``SeqRecord`` objects, which
    matter here because every worker reads the whole input; ids are taken as
    ``SeqIO`` takes them (the header up to the first whitespace). Blank lines
    before the first header are allowed. An empty (or whitespace-only) file
    yields nothing; a file whose content is not FASTA raises ``ValueError``
    naming the file.
    """
    path_str = str(path)
    with open_fasta(path) as handle:
        try:
            head = handle.read(4096).lstrip()
        except (UnicodeDecodeError, EOFError, OSError) as err:
            raise ValueError(f"{path_str}: not a FASTA file (cannot be read as text: {err})") from err
    if not head:
        return
    if not head.startswith(">"):
        raise ValueError(
            f"{path_str}: not a FASTA file: it should start with a '>' header line, "
            f"but starts with {head.splitlines()[0][:60]!r}"
        )
    number = 0
    with open_fasta(path) as handle:
        try:
            for title, sequence in SimpleFastaParser(handle):
                number += 1
                record_id = title.split(None, 1)[0] if title.strip() else ""
                yield FastaRecord(path_str, number, record_id, sequence)
        except (UnicodeDecodeError, EOFError, OSError) as err:
            raise ValueError(f"{path_str}: unreadable after record {number}: {err}") from err


@dataclass
class Normaliser:
    """Turns raw record sequences into ESM-2 input, counting what it changes.

    ``max_length``: residues kept per sequence (ESM-2 was trained on 1022 + BOS + EOS).
    ``on_overlength``: ``"truncate"`` (as esm-extract does; counted) or ``"raise"``.
    ``invalid``: ``"raise"``, or ``"X"`` to replace unknown residues with ``X`` (counted).
    """

    max_length: int = 1022
    on_overlength: Literal["truncate", "raise"] = "truncate"
    invalid: Literal["raise", "X"] = "raise"
    truncated: int = 0
    replaced_residues: int = 0

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.on_overlength not in ("truncate", "raise"):
            raise ValueError(f"on_overlength must be 'truncate' or 'raise', got {self.on_overlength!r}")
        if self.invalid not in ("raise", "X"):
            raise ValueError(f"invalid must be 'raise' or 'X', got {self.invalid!r}")

    def __call__(self, record: FastaRecord) -> tuple[str, int]:
        """Return ``(sequence, original_length)``; ``original_length`` counts residues before truncation."""
        seq = record.sequence.upper()
        if _WHITESPACE.search(seq):
            seq = _WHITESPACE.sub("", seq)
        if seq.endswith("*"):
            seq = seq[:-1]
        if not seq:
            raise ValueError(f"{record.where} is empty; remove it from the input")
        bad = _NOT_RESIDUE.search(seq)
        if bad is not None:
            if self.invalid == "raise":
                raise ValueError(
                    f"{record.where} has invalid residue {bad.group()!r} at position {bad.start() + 1}; "
                    f"fix the input, or pass invalid='X' (CLI: --invalid X) to replace unknown residues with X"
                )
            seq, n = _NOT_RESIDUE.subn("X", seq)
            self.replaced_residues += n
        length = len(seq)
        if length > self.max_length:
            if self.on_overlength == "raise":
                raise ValueError(
                    f"{record.where} has {length} residues, more than max_length={self.max_length}; "
                    f"pass on_overlength='truncate' (CLI: --truncate) to keep the first {self.max_length}"
                )
            seq = seq[: self.max_length]
            self.truncated += 1
        return seq, length
