"""``Record``: one normalised input sequence, as ``SequenceDataset`` yields it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Record"]


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
    """

    id: str
    sequence: str
    file: str
    index: int
    number: int
    length: int
    replaced: int = 0

    @property
    def truncated(self) -> bool:
        return self.length > len(self.sequence)
