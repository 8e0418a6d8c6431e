"""Crash-safe partial results: one append-only folder per (shard, rank), verified before it is trusted.

While a job runs, each rank appends its records to plain files in its folder under
``OUT.parts/`` and, about once a second, commits: it flushes the files to disk and
atomically replaces ``state.json`` with each file's committed size and CRC-32. Whatever
``kill -9`` interrupts, ``state.json`` describes a prefix of every file that is complete.

Nothing on disk is trusted unverified: a part is opened only if every file is a regular
file (never a symlink), at least as long as its committed size, and its committed bytes
match their checksum. Resuming cuts each file back to its committed size, which only
ever shrinks it; a file shorter than committed, or with damaged bytes, is refused by name.
Files are created exclusively (``O_EXCL``), so a name planted before the run is refused
rather than written through.

Per record, a part stores its input position (``index``: every row is keyed by it, never
by id), the named int64 ``columns`` of the layout (embedded and input length, and what an
input kind adds), the id (one UTF-8 line) and its rows (``row_shape``, pooled: one per
record; per-token: one per embedded residue).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "STOPPED", "DamagedPartsError", "Meta", "NeverCommittedError", "PartLayout", "crc32_of", "damaged", "part_state"
]  # fmt: skip

#: What a part stores about its job, beside its records: ``{"fingerprint": {...}, ...}`` (JSON-able),
#: or a function giving it once known.
Meta = dict[str, Any] | Callable[[], dict[str, Any]]

STATE = "state.json"
META_KEYS = ("task", "fingerprint", "inputs", "output", "attributes")
#: The state key a run stopped by a bad record adds to its parts: where it stopped, and the digest of the
#: records before it (``pipeline/fixed_input.py``). A resume on the same input keeps it.
STOPPED = "stopped"
IDS, ROWS = "ids.txt", "rows.bin"
FORMAT = 2
_READ_BLOCK = 1 << 24
# Directories and files are never opened through a symlink.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class DamagedPartsError(ValueError):
    """A part on disk is not what its last commit says it is."""


#: The fix for a damaged part, whichever command met it: its results are redone, never trusted.
REDO = (
    "the partial results cannot be trusted; rerun with overwrite=True (CLI: --overwrite) to redo them "
    "(a --shard run: that shard, then virnucpro assemble)"
)


def damaged(problem: str) -> DamagedPartsError:
    """``problem`` (naming the file and what is wrong with it) with the fix."""
    return DamagedPartsError(f"{problem}; {REDO}")


class NeverCommittedError(DamagedPartsError):
    """A part folder whose run stopped before its first commit: it holds nothing to keep."""


@dataclass(frozen=True)
class PartLayout:
    """What one record of a part holds: int64 ``columns`` besides ``index``, and rows of ``row_shape``."""

    row_shape: tuple[int, ...]
    dtype: np.dtype
    columns: tuple[str, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape)) * np.dtype(self.dtype).itemsize

    def files(self) -> tuple[str, ...]:
        return ("index.i64", *(f"{c}.i64" for c in self.columns), IDS, ROWS)


def crc32_of(path: Path, size: int, fd: int | None = None) -> int:
    """CRC-32 of the first ``size`` bytes of ``path`` (or of the open ``fd``)."""
    crc = 0
    own = fd is None
    fd = os.open(path, os.O_RDONLY | NOFOLLOW) if own else fd
    try:
        offset = 0
        while offset < size:
            block = os.pread(fd, min(_READ_BLOCK, size - offset), offset)
            if not block:
                break
            crc = zlib.crc32(block, crc)
            offset += len(block)
    finally:
        if own:
            os.close(fd)
    return crc


def part_state(directory: Path) -> dict[str, Any]:
    """A part's last committed ``state.json``, unverified against its files (``read_part`` verifies).

    Raises ``NeverCommittedError`` for a part whose run stopped before its first commit.
    """
    path = directory / STATE
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except FileNotFoundError:
        raise NeverCommittedError(f"{directory}: its run stopped before committing anything") from None
    except OSError as err:
        raise damaged(f"{path}: cannot be opened ({err.strerror}); it must be a regular file") from err
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read()
    try:
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise damaged(f"{path} is not valid JSON ({err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise damaged(f"{path} is not a virnucpro part state (format {FORMAT})")
    return state
