"""Count records whose id repeats an earlier record's id, in 8 bytes per record.

Duplicate ids are legal FASTA and are kept: rows are keyed by input position,
never by id. They are counted so that users learn their ids are not unique keys.
"""

from __future__ import annotations

from array import array

import numpy as np

__all__ = ["DuplicateIds"]


class DuplicateIds:
    """Collects 64-bit hashes of ids; ``result()`` finds the repeats.

    A hash collision between two different ids (odds about n**2 / 2**65) would
    count as one duplicate; nothing is dropped either way.
    """

    def __init__(self) -> None:
        self._hashes = array("q")

    def add(self, record_id: str) -> None:
        self._hashes.append(hash(record_id))

    def result(self) -> tuple[int, int | None]:
        """``(count, first)``: how many records repeat an earlier id, and the
        0-based position (in ``add`` order) of the first such record, or None."""
        hashes = np.frombuffer(self._hashes, dtype=np.int64)
        if hashes.size < 2:
            return 0, None
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        repeats = order[1:][ordered[1:] == ordered[:-1]]
        if repeats.size == 0:
            return 0, None
        return int(repeats.size), int(repeats.min())
