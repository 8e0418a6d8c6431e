"""``Tokenizer``: a model family's tokenizer, as the data layer uses it.

The data layer knows no model family: the family hands it a tokenizer (its alphabet of
valid characters, its special tokens, its default length) and the data layer normalises,
budgets and packs with it. Tokenisers run in the DataLoader workers, batched: one
``encode`` call per batch, one ``count`` call per chunk of records when budgeting.

Every sequence's tokens are laid out as [special] + body + [special] (ESM-2: BOS, residues,
EOS; DNABERT-S: [CLS], byte-pair tokens, [SEP]). A tokenizer whose tokens are its
characters, one each, says so with ``per_character = True``: only then can a long sequence
be cut into windows whose rows merge residue by residue, and only then is ``count`` cheap
enough that budgeting calls it instead of ``encode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "NUCLEOTIDE_CODES",
    "Encoded",
    "Tokenizer",
    "UnknownCharacterError",
    "is_per_character",
    "is_tokenizer",
    "reads_nucleotides",
]

#: IUPAC nucleotide codes a DNA record may hold: the four bases, N, and the ambiguity codes.
#: U (RNA) is not among them: the DNA families read DNA; an RNA record is refused, named.
NUCLEOTIDE_CODES = "ACGTNRYKMSWBDHV"


@runtime_checkable
class Tokenizer(Protocol):
    """A model family's tokenizer as the data layer uses it. Picklable; CPU only; runs in DataLoader workers.

    Attributes:
        name: for messages, e.g. "ESM-2", "DNABERT-S".
        alphabet: the upper-case characters a normalised sequence may hold.
        special_tokens_per_sequence: tokens added to each sequence (ESM-2: BOS + EOS; DNABERT-S:
            [CLS] + [SEP]) = 2.
        max_length: the default maximum of characters (residues / bases) per sequence.

    Optional: ``per_character: bool`` (absent: False), whether each character is one token.
    """

    name: str
    alphabet: str
    special_tokens_per_sequence: int
    max_length: int

    def encode(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """ids: (T,) int64, each sequence's tokens WITH its special tokens, all concatenated;
        lengths: (N,) int64, tokens per sequence (special tokens included). Batched: one call per batch.

        A character it cannot encode raises ``UnknownCharacterError``."""
        ...

    def count(self, sequences: Sequence[str]) -> np.ndarray:
        """(N,) int64 == ``encode(sequences)[1]``; may be cheaper (ESM-2: len + 2)."""
        ...


class UnknownCharacterError(ValueError):
    """A tokenizer met a character outside its alphabet; the caller names the record.

    Attributes:
        sequence: 0-based position of the sequence in the ``encode`` call.
        position: 1-based position of the character in that sequence.
        character: the character.
    """

    def __init__(self, tokenizer: str, sequence: int, position: int, character: str) -> None:
        super().__init__(
            f"sequence {sequence}: character {character!r} at position {position} is not in {tokenizer}'s alphabet"
        )
        self.tokenizer, self.sequence, self.position, self.character = tokenizer, sequence, position, character

    def naming(self, record: str, fix: str) -> ValueError:
        """This error as the ``ValueError`` users see: about ``record`` (already quoted), with ``fix``."""
        return ValueError(
            f"record {record}: character {self.character!r} at position {self.position} is not in "
            f"{self.tokenizer}'s alphabet; {fix}"
        )


class Encoded(list):
    """A list of records with their tokens already encoded (``ids``, ``lengths`` as ``Tokenizer.encode``
    gives them) by ``tokenizer``: ``SequenceDataset`` hands these out for tokenizers whose
    budgeting had to encode anyway, so that ``VarlenCollator`` does not encode twice."""

    def __init__(self, records: Sequence, ids: np.ndarray, lengths: np.ndarray, tokenizer: Tokenizer) -> None:
        super().__init__(records)
        self.ids, self.lengths, self.tokenizer = ids, lengths, tokenizer

    def take(self, keep: np.ndarray) -> Encoded:
        """The records where ``keep`` ((N,) bool) is set, with their tokens."""
        owner = np.repeat(keep, self.lengths)
        return Encoded(
            [r for r, k in zip(self, keep.tolist()) if k], self.ids[owner], self.lengths[keep], self.tokenizer
        )

    def encoded_by(self, tokenizer: Tokenizer) -> bool:
        """Whether these tokens are ``tokenizer``'s (the same object, or one equal to it)."""
        return self.tokenizer is tokenizer or self.tokenizer == tokenizer


def is_tokenizer(value: object) -> bool:
    """Whether ``value`` implements ``Tokenizer`` (as opposed to, say, ESM's ``batch_converter``)."""
    return isinstance(value, Tokenizer)


def is_per_character(tokenizer: Tokenizer) -> bool:
    """Whether every character of a sequence is one token of ``tokenizer`` (``per_character``; default False)."""
    return bool(getattr(tokenizer, "per_character", False))


def reads_nucleotides(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer`` reads DNA: its alphabet holds nucleotide codes only, U included (any
    protein alphabet has letters that are none, such as E, F, I, L, P, Q)."""
    return bool(tokenizer.alphabet) and set(tokenizer.alphabet) <= set(NUCLEOTIDE_CODES + "U")
