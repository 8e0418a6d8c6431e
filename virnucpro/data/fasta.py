"""FASTA reading: plain, gzip, bzip2 or xz files, streamed record by record.

Files are told apart by their first bytes (not their name, see ``compression``)
and streamed line by line, split into records by Biopython's ``SimpleFastaParser``: no file is ever held in memory whole.
Whatever goes wrong while reading (not a regular file, unreadable, corrupt
compressed data, bytes that are not UTF-8, control characters in a header) is
one line naming the file and the record where it went wrong.

Text is decoded with ``surrogateescape``, so a byte that is not UTF-8 reaches the
record that holds it (as a lone surrogate) instead of failing the decoder's
read-ahead buffer, which may be far ahead of the record being parsed: the error
names that record, and whether the byte is in its header or its sequence.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .compression import DECOMPRESSION_ERRORS, first_invalid_utf8, open_decompressed
from .field_mapping import FieldMapping
from .records import quote_id

__all__ = ["FastaRecord", "open_fasta", "read_fasta", "require_fasta_file"]

#: Characters read while looking for the first header: a binary file may hold no line break at all.
_PEEK_CHARS = 4096

#: C0 and C1 control characters and DEL, except tab (a common separator in headers). They
#: are binary data, not text, and an id holding NUL cannot be stored as an HDF5 string.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: What ``surrogateescape`` decodes a byte that is not UTF-8 to.
_UNDECODABLE = re.compile("[\udc80-\udcff]")

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True)
class FastaRecord(FieldMapping):
    """One raw record as read from a file; ``record.id`` or ``record["id"]`` (``FieldMapping``).

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
    """``path`` as a Path if it names a regular file this process can read; else one error line naming it.

    A symbolic link to a regular file is followed. Raises ``FileNotFoundError``
    (nothing there, or a dangling link), ``IsADirectoryError``, ``PermissionError``,
    or ``ValueError`` (a FIFO, socket or device: every DataLoader worker reads the
    whole input, so it must be a file that can be read more than once).
    """
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISREG(info.st_mode):
            with open(path, "rb"):  # the permission that matters is the one open() checks
                return path
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: no such FASTA file{_link(path)}") from err
    except PermissionError as err:
        raise PermissionError(f"{path}: cannot read: {err.strerror}{_link(path)}") from err
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror}{_link(path)}") from err
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{path}: is a directory{_link(path)}, not a FASTA file; pass the FASTA files in it")
    kind = next((name for test, name in _NOT_REGULAR if test(info.st_mode)), "of an unknown kind")
    raise ValueError(
        f"{path}: is not a regular file ({kind}){_link(path)}; every worker reads the input in full, "
        "so save the stream to a file and pass that"
    )


def _link(path: Path) -> str:
    """`` (a symbolic link to 'target')`` when ``path`` is one, so that errors say what was followed."""
    try:
        return f" (a symbolic link to {os.readlink(path)!r})" if path.is_symlink() else ""
    except OSError:
        return ""


def open_fasta(path: str | os.PathLike) -> TextIO:
    """Open ``path`` as UTF-8 text, decompressing gzip, bzip2 or xz (told by content).

    Raises as ``require_fasta_file`` does when ``path`` is not a readable regular file.
    """
    binary, _ = open_decompressed(require_fasta_file(path))
    return io.TextIOWrapper(binary, encoding="utf-8-sig")


def _text(binary: io.RawIOBase) -> io.TextIOWrapper:
    """``binary`` decoded as UTF-8 (a BOM dropped), each byte that is not UTF-8 kept as a lone surrogate."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape")


def read_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Stream the records of one FASTA file, in file order.

    Records are split as Biopython's ``Bio.SeqIO.FastaIO.SimpleFastaParser`` splits them,
    the parser under ``SeqIO.parse(..., "fasta")``, without its per-record objects, which
    matter here because every worker reads the whole input; ids are taken as ``SeqIO``
    takes them (the header up to the first whitespace). Blank lines
    before the first header are allowed. An empty (or whitespace-only) file
    yields nothing. Raises ``ValueError`` naming the file (and how far reading
    got) for content that is not FASTA, bytes that are not UTF-8, corrupt or
    truncated compressed data, and control characters in a header.
    """
    path_str = str(path)
    number = 0
    binary, compression = open_decompressed(require_fasta_file(path))
    with _text(binary) as handle:
        try:
            lines = _from_first_header(handle, path_str, compression)
            for title, sequence in _split(lines):
                number += 1
                record = FastaRecord(path_str, number, title.split(None, 1)[0] if title.strip() else "", sequence)
                # isprintable() is a C loop; the regexes only run on headers with tabs or rarer characters.
                if not title.isprintable():
                    _check_header(record, title, compression)
                if not sequence.isascii() and _UNDECODABLE.search(sequence):  # isascii() is O(1)
                    raise _not_utf8(path_str, f"{record.where}: not UTF-8 text in its sequence", compression)
                yield record
        except DECOMPRESSION_ERRORS as err:
            if compression is None:
                raise ValueError(f"{path_str}: cannot read {_after(number)}: {err}") from err
            raise ValueError(
                f"{path_str}: corrupt or truncated {compression} data {_after(number)}: {err}; "
                "re-download or re-compress the file"
            ) from err


def _split(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """``(title, sequence)`` per record of ``lines``, by Biopython's ``SimpleFastaParser``, the parser under
    ``SeqIO.parse(..., "fasta")``. Imported here, on first use: importing ``Bio.SeqIO`` imports every
    format's parser, a fifth of a second that a CLI run that fails before reading need not pay."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    return SimpleFastaParser(lines)


def _check_header(record: FastaRecord, title: str, compression: str | None) -> None:
    """Refuse a header holding bytes that are not UTF-8, or control characters (binary data, not text)."""
    if _UNDECODABLE.search(title):
        raise _not_utf8(record.path, f"{record.where}: not UTF-8 text in its header", compression)
    if bad := _HEADER_CONTROL.search(title):
        raise ValueError(
            f"{record.where}: header holds control character {bad.group()!r} at character {bad.start() + 1}; "
            "a header must be text: is the file corrupt, or binary?"
        )


def _from_first_header(handle: TextIO, path: str, compression: str | None) -> Iterator[str]:
    """The lines of ``handle`` from its first header on, after blank lines; none for a blank file.

    ``SimpleFastaParser`` alone would skip any text before the first header, so
    a file that is not FASTA at all would silently yield nothing.
    """
    while line := handle.readline(_PEEK_CHARS):
        if line.strip():
            break
    else:
        return iter(())
    line = line.lstrip()
    if not line.startswith(">") and _UNDECODABLE.search(line):
        raise _not_utf8(path, f"{path}: not UTF-8 text before the first record", compression)
    if not line.startswith(">"):
        raise ValueError(
            f"{path}: not a FASTA file: it should start with a '>' header line, but starts with {line[:60]!r}"
        )
    if not line.endswith("\n"):
        line += handle.readline()  # the rest of a header longer than the peek
    return itertools.chain((line,), handle)


def _after(number: int) -> str:
    """How far reading got: records 1..``number`` were read whole."""
    return f"after record {number}" if number else "before the first record"


def _not_utf8(path: str, what: str, compression: str | None) -> ValueError:
    """The error for the file's first byte that is not UTF-8, ``what`` saying whose it is, placed by offset and line."""
    try:
        binary, _ = open_decompressed(path)
        with binary:
            found = first_invalid_utf8(binary)
    except DECOMPRESSION_ERRORS:
        found = None
    if found is None:  # the file changed since, or its compressed data is also corrupt
        return ValueError(f"{what}; if it is FASTA, save it as UTF-8 (or ASCII)")
    where = "of the decompressed data" if compression else "of the file"
    utf16 = found.offset < 2 and found.value in (0xFE, 0xFF)
    fix = "it looks like UTF-16: save it as UTF-8" if utf16 else "if it is FASTA, save it as UTF-8 (or ASCII)"
    return ValueError(
        f"{what}: byte 0x{found.value:02x} at byte offset {found.offset} {where} (line {found.line}); {fix}"
    )
