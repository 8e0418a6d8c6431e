"""``Record``: one normalised input sequence, as ``SequenceDataset`` yields it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from virnucpro.text import quote_id

from .field_mapping import FieldMapping

__all__ = ["Record", "quote_id"]


@dataclass(frozen=True, slots=True)
class Record(FieldMapping):
    """One input sequence, normalised, with where it came from.

    Read its fields as attributes (``record.id``) or by name, as the dict records of the
    user's plan were read (``record["id"]``, ``"sequence" in record``, ``record.keys()``,
    ``dict(record)``; see ``FieldMapping``). The keys are exactly the fields below, so
    ``Record(**dict(record)) == record``; ``is_window`` and ``truncated``, derived from
    them, are attributes only.

    Attributes:
        id: the record's id (its header up to the first whitespace); not unique in general.
        sequence: the residues given to the model (after normalisation and any truncation).
        file: the FASTA file it was read from.
        index: its 0-based position in the whole input (files in the order given): the key
            every output row is stored under.
        number: its 1-based record number within ``file``.
        length: residues before truncation (> ``len(sequence)`` iff truncated); for a
            window, its protein's residues L.
        replaced: unknown residues that ``invalid="X"`` replaced in it (a windowed protein's
            count is on its first window, 0 on the others).
        columns: the int64 columns its input kind adds (``inputs.py``), e.g. the DNA
            record, chunk and frame a translated protein came from.
        window_start: for a window (``on_overlength="window"``, see ``windows.py``), its first
            residue's position in the protein; 0 otherwise.
        window_count: how many windows the protein was cut into; 1 for a plain record.
        window_stride: the stride the windows were cut with; 0 for a plain record.
        nucleotide: for a protein translated from DNA by ``DnaInput(nucleotides=True)``, the DNA
            slice VirNucPro pairs it with (3 * residues + 1 bases from the frame's offset, upper
            case, as ``virnucpro translate --nucleotide-out`` writes it); "" otherwise.

    A window carries its protein's ``index``, ``id``, ``file``, ``number``, ``length`` and
    ``columns``; its ``sequence`` is its own W residues.
    """

    id: str
    sequence: str
    file: str
    index: int
    number: int
    length: int
    replaced: int = 0
    columns: Mapping[str, int] = field(default_factory=dict)
    window_start: int = 0
    window_count: int = 1
    window_stride: int = 0
    nucleotide: str = ""

    @property
    def is_window(self) -> bool:
        """Whether this is one of the windows of a protein longer than ``max_length``."""
        return self.window_stride > 0

    @property
    def truncated(self) -> bool:
        """Whether residues were cut off; never for a window (the other windows hold them)."""
        return not self.is_window and self.length > len(self.sequence)
