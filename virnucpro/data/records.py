"""``Record``: one normalised input sequence, as ``SequenceDataset`` yields it; ``quote_id`` for messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Record", "quote_id"]

#: Characters of an id that a message shows: enough to find it, and a 1 MB header stays a short line.
ID_SHOWN = 60


def quote_id(record_id: str, limit: int = ID_SHOWN) -> str:
    """``repr(record_id)`` for a message, cut to its first ``limit`` characters when longer.

    ``'WP_0123'``, or ``'MKVLAAQQ...'... (1,000,000 characters)``; ``repr`` also shows
    control characters (``'\\x00'``) instead of writing them to the terminal.
    """
    if len(record_id) <= limit:
        return repr(record_id)
    return f"{record_id[:limit]!r}... ({len(record_id):,} characters)"


@dataclass(frozen=True, slots=True)
class Record:
    """One input sequence, normalised, with where it came from.

    Attributes:
        id: the record's id (its header up to the first whitespace); not unique in general.
        sequence: the residues given to the model (after normalisation and any truncation).
        file: the FASTA file it was read from.
        index: its 0-based position in the whole input (files in the order given): the key
            every output row is stored under.
        number: its 1-based record number within ``file``.
        length: residues before truncation (> ``len(sequence)`` iff truncated).
        replaced: unknown residues that ``invalid="X"`` replaced in it.
        columns: the int64 columns its input kind adds (``inputs.py``), e.g. the DNA
            record, chunk and frame a translated protein came from.
    """

    id: str
    sequence: str
    file: str
    index: int
    number: int
    length: int
    replaced: int = 0
    columns: Mapping[str, int] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.length > len(self.sequence)
