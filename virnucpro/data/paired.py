"""Translated frames packed for two models at once: their proteins and their DNA slices.

VirNucPro classifies each stop-free frame from two embeddings: ESM-2's of its protein and
DNABERT-S's of its DNA slice. ``PairedCollator`` packs one batch of such records (each a
``Record`` with its ``nucleotide``, from ``DnaInput(nucleotides=True)``) for both models, in
the DataLoader workers: the proteins as one ``PackedBatch`` with the protein tokenizer, the
slices with the nucleotide tokenizer as one or more ``PackedBatch`` pieces of the same records
in order.

Batches are budgeted on the protein side (``SequenceDataset(max_tokens=...)``). A slice has
3 * residues + 1 bases, so its tokens can outnumber its protein's (byte pairs of ~5 bases
usually make them fewer; unknown bases are a token each): the slices are cut into pieces of
at most as many tokens as the protein batch holds, so the nucleotide model never sees more
tokens at once than the budget. The pieces depend on the batch alone, so a resumed run packs
them exactly as the interrupted one did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .batch import PackedBatch
from .collators import VarlenCollator
from .field_mapping import FieldMapping
from .records import Record, quote_id
from .tokenizer import Encoded, Tokenizer, UnknownCharacterError

__all__ = ["PairedBatch", "PairedCollator", "pieces"]


@dataclass(frozen=True)
class PairedBatch(FieldMapping):
    """N translated frames for two models.

    Attributes:
        protein: the N proteins, packed (ids, input positions, columns: the frames' own).
        nucleotide: the same N records' DNA slices, packed in consecutive pieces (record order
            kept; together they hold N sequences), each of at most ``protein.num_tokens``
            tokens unless a single slice is longer.
    """

    protein: PackedBatch
    nucleotide: tuple[PackedBatch, ...]

    @property
    def num_completed(self) -> int:
        """Input records (frames) this batch completes."""
        return self.protein.num_completed

    @property
    def num_tokens(self) -> int:
        """Tokens of both models."""
        return self.protein.num_tokens + sum(piece.num_tokens for piece in self.nucleotide)

    def pin_memory(self) -> PairedBatch:
        return PairedBatch(self.protein.pin_memory(), tuple(piece.pin_memory() for piece in self.nucleotide))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PairedBatch:
        return PairedBatch(
            self.protein.to(device, non_blocking),
            tuple(piece.to(device, non_blocking) for piece in self.nucleotide),
        )


def pieces(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges of sequences whose ``lengths`` (tokens) sum to at most
    ``budget`` each; a sequence alone over it is a range of its own. ``lengths``: (N,) int64."""
    ranges, start, total = [], 0, 0
    for i, n in enumerate(lengths.tolist()):
        if i > start and total + n > budget:
            ranges.append((start, i))
            start, total = i, 0
        total += n
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    return ranges


class PairedCollator:
    """Records carrying their DNA slices -> a ``PairedBatch``; stateless, so safe in DataLoader workers.

    Args:
        protein: the protein model's tokenizer (ESM-2's).
        nucleotide: the nucleotide model's tokenizer (DNABERT-S's).

    Raises ``ValueError`` naming the record for a record without a DNA slice, or a character
    a tokenizer cannot encode.
    """

    def __init__(self, protein: Tokenizer, nucleotide: Tokenizer) -> None:
        self.protein = VarlenCollator(protein)
        self.nucleotide_tokenizer = nucleotide
        self.nucleotide = VarlenCollator(nucleotide)

    def __call__(self, records: Sequence[Record]) -> PairedBatch:
        protein = self.protein(records)
        slices = [_slice(record) for record in records]
        try:
            ids, lengths = self.nucleotide_tokenizer.encode([record.sequence for record in slices])
        except UnknownCharacterError as err:
            fix = "the DNA slice holds a base its tokenizer cannot encode: report this"
            raise err.naming(quote_id(slices[err.sequence].id), fix) from None
        starts = np.concatenate([[0], np.cumsum(lengths)])
        packed = tuple(
            self.nucleotide(Encoded(slices[a:b], ids[starts[a] : starts[b]], lengths[a:b], self.nucleotide_tokenizer))
            for a, b in pieces(lengths, max(protein.num_tokens, 1))
        )
        return PairedBatch(protein, packed)


def _slice(record: Record) -> Record:
    """``record`` with its DNA slice as its sequence (and length)."""
    if not record.nucleotide:
        raise ValueError(
            f"record {quote_id(record.id)} (input position {record.index}) carries no DNA slice; "
            "read DNA with DnaInput(..., nucleotides=True) to pair each protein with its DNA"
        )
    return dataclasses.replace(record, sequence=record.nucleotide, length=len(record.nucleotide), nucleotide="")
