"""Residue normalisation: a raw FASTA record's sequence to exactly what the model is given.

ASCII whitespace removed (Biopython already drops spaces and CR), upper-cased,
one trailing ``*`` (a stop codon, as Prodigal and six-frame translation write
it) removed. A sequence holding a non-ASCII or control character is always an
error: it is not sequence text (a mis-encoded file, a word processor's
characters, binary data), and ``str.upper`` would turn some such letters into
residues (``'ß'`` into ``'SS'``). A record that reads as nucleotides is refused
unless ``allow_nucleotide_like``. Every other character outside the model's
alphabet (and the alignment gaps ``-`` and ``.``, which ESM's alphabet holds but no
protein does) is an error that names the file, the record and the fix, unless
``invalid="X"`` asks for it to be replaced, which is counted. Sequences over
``max_length`` are truncated (counted), refused, or kept whole (counted) for
``SequenceDataset`` to cut into overlapping windows (``windows.py``).

The alphabet is the model family's tokenizer's (``tokenizer.py``). DNA read as DNA
(``nucleotides=True``, for families that read nucleotides) is upper-cased and must hold
IUPAC nucleotide codes only (``NUCLEOTIDE_CODES``): no stop is removed, nothing is
replaced, and any other character is an error naming the file, record, character and
position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .alphabet_tokenizer import default_tokenizer
from .fasta import FastaRecord
from .tokenizer import NUCLEOTIDE_CODES

__all__ = ["GAPS", "OVERLENGTH", "Normaliser"]

#: What ``on_overlength`` may ask for a sequence over ``max_length``.
OVERLENGTH = ("truncate", "raise", "window")

# ASCII only: Unicode whitespace (no-break space, U+2028, ...) is not sequence text and
# must reach the non-ASCII check, and \x1c-\x1f (which str.isspace() counts) the control check.
_WHITESPACE = re.compile(r"\s+", re.ASCII)

_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Alignment gaps. ESM's alphabet has tokens for them, but no protein holds one: a sequence
#: with gaps comes from an alignment, and embedding them would embed another protein. They
#: are refused like any other unknown character (``invalid="X"`` replaces them).
GAPS = "-."

# A record refused as nucleotide-like has at least NUCLEOTIDE_MIN_LENGTH letters, all of them
# IUPAC nucleotide codes, and at least NUCLEOTIDE_MIN_FRACTION of them A, C, G, T, U or N.
# The ambiguity codes (R, Y, K, M, S, W, B, D, H, V) are allowed because viral consensus
# sequences and some assemblies carry a few; every one of them is also an amino acid. For a
# random protein with UniProtKB's residue composition, a residue is A/C/G/T/N with p = 0.261
# and another of those codes with p = 0.390, so the odds that 50 residues pass are
# sum(k >= 45) C(50, k) 0.261^k 0.390^(50 - k) = 1e-22 (all 50 in ACGTN alone: 7e-30). Real
# proteins are not random, but low-complexity runs stay far shorter: in the example proteome
# (404 Prodigal proteins) the longest run of these codes is 26 residues and the highest
# ACGTUN share of a protein is 53 %. Under 50 letters a DNA record (a primer, a probe) is too
# short for the odds to be safe, and is left alone.
NUCLEOTIDE_MIN_LENGTH = 50
NUCLEOTIDE_MIN_FRACTION = 0.9
_NUCLEOTIDE_CODES = re.compile(r"[ACGTUNRYKMSWBDHV]+")
_NOT_ACGTUN = re.compile(r"[^ACGTUN]")


def _has_ascii_whitespace(seq: str) -> bool:
    """Whether ``seq`` holds what ``_WHITESPACE`` removes; most sequences hold none."""
    # Six substring tests (memchr in C) take a twentieth of the time of one regex scan, and
    # that scan was the largest cost of parsing, paid by every worker for every record.
    return " " in seq or "\t" in seq or "\n" in seq or "\r" in seq or "\x0b" in seq or "\x0c" in seq


@dataclass
class Normaliser:
    """Turns raw record sequences into model input, counting what it changes.

    ``max_length``: residues kept per sequence (ESM-2 was trained on 1022 + BOS + EOS).
    ``on_overlength``: ``"truncate"`` (as esm-extract does; counted), ``"raise"``, or
    ``"window"``: keep the whole sequence (counted in ``windowed``), to be embedded as
    overlapping windows.
    ``invalid``: ``"raise"``, or ``"X"`` to replace unknown residues with ``X`` (counted).
    ``residues``: the characters a normalised sequence may hold: the tokenizer's ``alphabet``
    (default ESM's).
    ``allow_nucleotide_like``: accept records that read as DNA/RNA (see ``NUCLEOTIDE_MIN_LENGTH``).
    ``nucleotides``: the sequences are DNA for a model that reads DNA: IUPAC codes only, kept as they are.
    ``windows``: whether the tokenizer allows windows (one token per character), for the messages.
    """

    max_length: int = field(default_factory=lambda: default_tokenizer().max_length)
    on_overlength: Literal["truncate", "raise", "window"] = "truncate"
    invalid: Literal["raise", "X"] = "raise"
    residues: str = field(default_factory=lambda: default_tokenizer().alphabet)
    truncated: int = 0
    replaced_residues: int = 0
    windowed: int = 0
    allow_nucleotide_like: bool = field(default=False, kw_only=True)
    nucleotides: bool = field(default=False, kw_only=True)
    windows: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        residues = "".join(c for c in self.residues if c not in GAPS)
        allowed = "".join(c for c in residues if c in NUCLEOTIDE_CODES) if self.nucleotides else residues
        self._not_residue = re.compile(f"[^{re.escape(allowed)}]")
        if self.nucleotides and self.invalid != "raise":
            raise ValueError(
                f"invalid={self.invalid!r} replaces unknown protein residues with X; DNA input holds IUPAC "
                "nucleotide codes only: pass invalid='raise' (CLI: leave out --invalid)"
            )
        if self.max_length < 1:
            raise ValueError(f"max_length (CLI: --max-length) must be >= 1, got {self.max_length}")
        if self.on_overlength not in OVERLENGTH:
            raise ValueError(
                f"on_overlength (CLI: --on-overlength) must be one of {OVERLENGTH}, got {self.on_overlength!r}"
            )
        if self.invalid not in ("raise", "X"):
            raise ValueError(f"invalid (CLI: --invalid) must be 'raise' or 'X', got {self.invalid!r}")
        if self.allow_nucleotide_like not in (True, False):
            raise ValueError(f"allow_nucleotide_like must be True or False, got {self.allow_nucleotide_like!r}")

    def __call__(self, record: FastaRecord) -> tuple[str, int]:
        """Return ``(sequence, original_length)``; ``original_length`` counts residues before truncation.

        With ``on_overlength="window"`` a sequence over ``max_length`` comes back whole.

        Positions in errors are 1-based among the record's sequence characters, line
        breaks and other whitespace not counted.
        """
        seq = record.sequence
        if _has_ascii_whitespace(seq):
            seq = _WHITESPACE.sub("", seq)
        if not seq.isascii():  # O(1): CPython records whether a string is ASCII
            bad = _NOT_ASCII.search(seq)
            raise ValueError(
                f"{record.where} has non-ASCII character {bad.group()!r} at position {bad.start() + 1}; "
                "sequences are ASCII letters: fix the input (was it converted from another encoding?)"
            )
        seq = seq.upper()
        if seq.endswith("*") and not self.nucleotides:
            seq = seq[:-1]
        if not seq:
            raise ValueError(f"{record.where} is empty; remove it from the input")
        if not self.allow_nucleotide_like and not self.nucleotides and len(seq) >= NUCLEOTIDE_MIN_LENGTH:
            self._refuse_nucleotides(record, seq)
        bad = self._not_residue.search(seq)
        if bad is not None:
            if (control := _CONTROL.search(seq)) is not None:
                raise ValueError(
                    f"{record.where} has control character {control.group()!r} at position {control.start() + 1}; "
                    "it is binary data, not sequence text: is the file corrupt?"
                )
            if self.nucleotides:
                self._refuse_base(record, bad.group(), bad.start() + 1)
            if self.invalid == "raise" and bad.group() in GAPS:
                raise ValueError(
                    f"{record.where} has alignment gap {bad.group()!r} at position {bad.start() + 1}: the file looks "
                    "like an alignment, not protein sequences; remove the gaps (e.g. seqkit seq --remove-gaps), or "
                    "pass invalid='X' (CLI: --invalid X) to replace them with X"
                )
            if self.invalid == "raise":
                raise ValueError(
                    f"{record.where} has invalid residue {bad.group()!r} at position {bad.start() + 1}; "
                    f"fix the input, or pass invalid='X' (CLI: --invalid X) to replace unknown residues with X"
                )
            seq, n = self._not_residue.subn("X", seq)
            self.replaced_residues += n
        length = len(seq)
        if length > self.max_length:
            if self.on_overlength == "raise":
                unit = "bases" if self.nucleotides else "residues"
                windows = (
                    "pass on_overlength='window' (CLI: --on-overlength window) to embed every residue in "
                    "overlapping windows, or "
                    if self.windows
                    else "pass "
                )
                raise ValueError(
                    f"{record.where} has {length} {unit}, more than max_length={self.max_length}; {windows}"
                    f"on_overlength='truncate' (CLI: --on-overlength truncate) to keep the first {self.max_length}"
                )
            if self.on_overlength == "window":
                self.windowed += 1
            else:
                seq = seq[: self.max_length]
                self.truncated += 1
        return seq, length

    def _refuse_base(self, record: FastaRecord, char: str, position: int) -> None:
        """Raise for a DNA character the model cannot read, saying whether it is an IUPAC code at all."""
        if char not in NUCLEOTIDE_CODES:
            fix = "is it RNA? write its U as T" if char == "U" else "fix the input"
            raise ValueError(
                f"{record.where} has {char!r} at position {position}, not an IUPAC nucleotide code "
                f"({' '.join(NUCLEOTIDE_CODES)}); the model reads DNA: {fix}"
            )
        raise ValueError(
            f"{record.where} has the nucleotide code {char!r} at position {position}, which the model's "
            f"tokenizer does not hold (it reads {' '.join(self.residues)}); fix the input"
        )

    @staticmethod
    def _refuse_nucleotides(record: FastaRecord, seq: str) -> None:
        """Raise if ``seq`` (upper-case, at least NUCLEOTIDE_MIN_LENGTH long) reads as DNA or RNA."""
        # A protein fails the fullmatch within its first few residues (at the first E, F, I, L,
        # P or Q), so real input pays almost nothing; only nucleotide-like records are counted.
        if _NUCLEOTIDE_CODES.fullmatch(seq) is None:
            return
        share = 1 - len(_NOT_ACGTUN.findall(seq)) / len(seq)
        if share < NUCLEOTIDE_MIN_FRACTION:
            return
        raise ValueError(
            f"{record.where} looks like a nucleotide sequence, not a protein: its {len(seq)} letters are all "
            f"nucleotide codes, {share:.1%} of them A, C, G, T, U or N; translate it first with dna=DnaInput "
            "(CLI: --dna), "
            "or pass allow_nucleotide_like=True (CLI: --allow-nucleotide-like) if it really is a protein"
        )
