"""Opening a file that may be compressed, as one decompressed byte stream.

The format is told by the first bytes, never by the name: users rename files,
and ``.gz`` files that are really plain text (or the reverse) are common.
gzip, bzip2 and xz are read with the standard library's streaming
decompressors, so a file is never held in memory whole. zstd and zip are only
recognised, to say what they are instead of reporting binary garbage.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import zlib
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

__all__ = ["DECOMPRESSION_ERRORS", "InvalidUtf8", "compression_of", "first_invalid_utf8", "open_decompressed"]

_SNIFF_BYTES = 6

#: (magic bytes, format name, opener of a binary stream). bzip2's "BZh" is followed by
#: the block size, a digit 1-9: checking it keeps a text file that starts "BZh" plain.
_FORMATS: tuple[tuple[bytes, str, Callable[[str | os.PathLike], BinaryIO]], ...] = (
    (b"\x1f\x8b", "gzip", lambda p: gzip.open(p, "rb")),
    *((b"BZh" + digit.encode(), "bzip2", lambda p: bz2.open(p, "rb")) for digit in "123456789"),
    (b"\xfd7zXZ\x00", "xz", lambda p: lzma.open(p, "rb")),
)

#: (magic bytes, format name, how to decompress it): recognised only to say so.
_UNSUPPORTED = ((b"\x28\xb5\x2f\xfd", "zstd", "zstd -d"), (b"PK\x03\x04", "zip", "unzip"))

#: What reading a decompressed stream raises on corrupt or truncated data: zlib.error
#: (corrupt deflate data), EOFError (the stream ends early), lzma.LZMAError, and OSError
#: (gzip.BadGzipFile, bz2's "Invalid data stream", and plain I/O errors).
DECOMPRESSION_ERRORS = (zlib.error, EOFError, lzma.LZMAError, OSError)


def compression_of(path: str | os.PathLike) -> str | None:
    """``"gzip"``, ``"bzip2"`` or ``"xz"`` from the file's first bytes; ``None`` for anything else.

    Raises ``ValueError`` naming the file for a compression it recognises but cannot read.
    """
    with open(path, "rb") as raw:
        magic = raw.read(_SNIFF_BYTES)
    for prefix, name, _ in _FORMATS:
        if magic.startswith(prefix):
            return name
    for prefix, name, tool in _UNSUPPORTED:
        if magic.startswith(prefix):
            raise ValueError(
                f"{path}: is {name}-compressed, which cannot be read; decompress it first ({tool}), "
                "or re-compress it with gzip, bzip2 or xz"
            )
    return None


def open_decompressed(path: str | os.PathLike) -> tuple[BinaryIO, str | None]:
    """The file's decompressed bytes as a stream, and its compression (``None`` when plain)."""
    compression = compression_of(path)
    for _, name, opener in _FORMATS:
        if name == compression:
            return opener(path), compression
    return open(path, "rb"), None


class InvalidUtf8(NamedTuple):
    """Where a byte stream stops being UTF-8: ``offset`` (0-based byte), ``line`` (1-based), ``value`` (the byte)."""

    offset: int
    line: int
    value: int


def first_invalid_utf8(stream: BinaryIO, chunk_bytes: int = 1 << 20) -> InvalidUtf8 | None:
    """Find the first byte of ``stream`` that is not UTF-8, reading it in chunks; None if all are.

    Only called once decoding has already failed: a text decoder reports the
    failure's position within its own buffer, not within the file.
    """
    offset = lines = 0
    pending = b""
    while True:
        chunk = stream.read(chunk_bytes)
        data = pending + chunk
        try:
            # final=not chunk: at the end, a multi-byte character cut short is an error too.
            _, used = codecs.utf_8_decode(data, "strict", not chunk)
        except UnicodeDecodeError as err:
            return InvalidUtf8(offset + err.start, lines + data.count(b"\n", 0, err.start) + 1, data[err.start])
        if not chunk:
            return None
        lines += data.count(b"\n", 0, used)
        offset += used
        pending = data[used:]
