"""Input kinds: what a FASTA record becomes before it is normalised for the model.

A kind streams ``(record, columns)`` pairs: the raw sequence record the model sees, and
the int64 columns the kind adds to every output row. The rest of the library (budgeting,
sharding, tokenising, storage) is the same for every kind; a new input kind is one class
here.

* ``ProteinInput``: protein FASTA, one record per input record, no extra columns.
* ``NucleotideInput``: nucleotide FASTA for a model family that reads DNA itself
  (``ModelFamily.reads == "nucleotide"``): one record per input record, no extra columns;
  normalised as DNA (IUPAC codes only, ``normalise.py``).
* ``DnaInput``: nucleotide FASTA, chunked and translated in six frames by VirNucPro's rules
  (``dna.py``); one record per kept frame, with the DNA record it came from
  (``source_index``, 0-based in the whole input), its ``chunk`` (1-based) and ``frame``
  (1-3 forward F1-F3, 4-6 reverse R1-R3), so frames can be grouped back to their read.
  With ``nucleotides=True`` each record also carries its frame's DNA slice
  (``TranslatedRecord.nucleotide``, then ``Record.nucleotide``), for a task that reads both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .dna import Translator
from .fasta import FastaRecord, read_fasta

__all__ = [
    "DnaInput",
    "InputKind",
    "NUCLEOTIDE",
    "NucleotideInput",
    "PROTEIN",
    "ProteinInput",
    "TranslatedRecord",
    "kind_from",
]


class InputKind(Protocol):
    #: Names of the int64 columns every record of this kind carries.
    columns: tuple[str, ...]
    #: Whether its sequences may look like nucleotides (translated proteins are ours, not a mistake).
    nucleotide_like_ok: bool
    #: What its records hold for the model: proteins, or DNA for a family that reads DNA.
    yields: Literal["protein", "nucleotide"]

    def records(self, paths: Sequence[Path]) -> Iterator[tuple[FastaRecord, dict[str, int]]]: ...

    def describe(self) -> dict[str, Any]:
        """What the output's attributes and the resume fingerprint record of this kind."""
        ...


@dataclass(frozen=True)
class ProteinInput:
    columns: tuple[str, ...] = ()
    nucleotide_like_ok: bool = False
    yields: Literal["protein", "nucleotide"] = "protein"

    def records(self, paths: Sequence[Path]) -> Iterator[tuple[FastaRecord, dict[str, int]]]:
        return _as_they_are(paths)

    def describe(self) -> dict[str, Any]:
        return {"input": "protein"}


def _as_they_are(paths: Sequence[Path]) -> Iterator[tuple[FastaRecord, dict[str, int]]]:
    """Every record of ``paths``, in order, without extra columns."""
    for path in paths:
        for record in read_fasta(path):
            yield record, {}


PROTEIN = ProteinInput()


@dataclass(frozen=True)
class NucleotideInput:
    """Nucleotide FASTA read as DNA, record by record, by a model family that reads DNA."""

    columns: tuple[str, ...] = ()
    nucleotide_like_ok: bool = True
    yields: Literal["protein", "nucleotide"] = "nucleotide"

    def records(self, paths: Sequence[Path]) -> Iterator[tuple[FastaRecord, dict[str, int]]]:
        return _as_they_are(paths)

    def describe(self) -> dict[str, Any]:
        return {"input": "nucleotide"}


NUCLEOTIDE = NucleotideInput()


@dataclass(frozen=True)
class TranslatedRecord(FastaRecord):
    """A protein translated from a DNA record (``path``, ``number``: the DNA record's), with the DNA
    slice VirNucPro pairs with it (``nucleotide``)."""

    nucleotide: str = ""


@dataclass(frozen=True)
class DnaInput:
    """Nucleotide FASTA, translated by VirNucPro's rules in the DataLoader workers.

    ``chunk_size``: bases per chunk (CLI ``--chunk-size``; VirNucPro uses 300 or 500).
    ``frames``: ``"stop-free"`` (VirNucPro's: frames without a stop codon) or ``"all"``
    (ours: every frame, inner stops as X, a final stop dropped) (CLI ``--frames``).
    ``nucleotides``: each record also carries its frame's DNA slice (``Record.nucleotide``);
    it changes no protein, and is not part of ``describe()``.
    """

    chunk_size: int = 500
    frames: str = "stop-free"
    nucleotides: bool = field(default=False, kw_only=True)
    columns: tuple[str, ...] = ("source_index", "chunk", "frame")
    nucleotide_like_ok: bool = True
    yields: Literal["protein", "nucleotide"] = "protein"

    def __post_init__(self) -> None:
        Translator(self.chunk_size, self.frames)  # checks both, naming the CLI flags

    def records(self, paths: Sequence[Path]) -> Iterator[tuple[FastaRecord, dict[str, int]]]:
        translate = Translator(self.chunk_size, self.frames)
        source = -1
        for path in paths:
            for dna in read_fasta(path):
                source += 1
                for protein in translate(dna, source):
                    nucleotide = protein.nucleotide if self.nucleotides else ""
                    record = TranslatedRecord(dna.path, dna.number, protein.id, protein.sequence, nucleotide)
                    yield record, {"source_index": protein.source, "chunk": protein.chunk, "frame": protein.frame}

    def describe(self) -> dict[str, Any]:
        rule = "VirNucPro split_fasta_chunk + translate_dna + identify_seq (prediction)"
        if self.frames == "all":
            rule = "VirNucPro split_fasta_chunk + translate_dna, every frame (not VirNucPro's selection)"
        return {"input": "dna", "chunk_size": self.chunk_size, "frames": self.frames, "translation": rule}


def kind_from(description: dict[str, Any]) -> InputKind:
    """The input kind a ``describe()`` recorded (e.g. in the parts of a run), to read its inputs again."""
    if description.get("input") == "dna":
        return DnaInput(description["chunk_size"], description["frames"])
    if description.get("input") == "nucleotide":
        return NUCLEOTIDE
    return PROTEIN
