"""FASTA reading: plain or gzip files, streamed record by record.

Files are told apart by their first bytes (not their name) and streamed through
Biopython's FASTA parser: no file is ever held in memory whole.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from Bio.SeqIO.FastaIO import SimpleFastaParser

from .records import quote_id

__all__ = ["FastaRecord", "open_fasta", "read_fasta", "require_fasta_file"]

_GZIP_MAGIC = b"\x1f\x8b"


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
        """``"file: record 12 ('WP_0123')"``, the prefix of every error about this record (id cut by ``quote_id``)."""
        return f"{self.path}: record {self.number} ({quote_id(self.id)})"


def require_fasta_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it names an existing file; ``FileNotFoundError`` naming it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such FASTA file")
    return path


def open_fasta(path: str | os.PathLike) -> TextIO:
    """Open ``path`` as text, decompressing when its content starts with the gzip magic bytes.

    Raises ``FileNotFoundError`` naming the path when it does not exist.
    """
    path = require_fasta_file(path)
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
