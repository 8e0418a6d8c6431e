"""``VarlenCollator``: records to one packed, padding-free batch for a varlen forward.

The collator is stateless, so it is safe wherever PyTorch runs it: in the main
process with ``num_workers=0``, inside each worker otherwise (PyTorch pickles
``collate_fn`` into the workers). Running it in the workers is what we want:
tokenising then happens in parallel, off the process that drives the GPU, and
it touches no CUDA.

Tokens come from the model family's ``Tokenizer`` (``tokenizer.py``), one ``encode``
call per batch; given ESM's ``batch_converter`` instead, from an ``AlphabetTokenizer``
over the converter's alphabet, equal to the converter for each sequence (BOS,
residues, EOS, no padding).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .alphabet_tokenizer import AlphabetTokenizer
from .batch import PackedBatch
from .records import Record, quote_id
from .tokenizer import Encoded, Tokenizer, UnknownCharacterError, is_per_character, is_tokenizer
from .windows import residue_weights

__all__ = ["VarlenCollator"]

RecordLike = Record | Mapping[str, Any]


class VarlenCollator:
    """Tokenise a list of records into ``input_ids``/``cu_seqlens`` (the FlashAttention varlen layout).

    Args:
        tokenizer: the model family's ``Tokenizer``, or ESM's ``alphabet.get_batch_converter()``,
            whose alphabet and ``truncation_seq_length`` then define the tokens.
        max_tokens: expected token budget. A batch over it is still packed whole
            (nothing is ever dropped) with a warning pointing to
            ``SequenceDataset(max_tokens=...)``, which budgets batches before collation.

    Calling it with a list of records (``Record``s, as ``SequenceDataset`` yields, or
    mappings with ``"id"`` and ``"sequence"``) or with one record returns a ``PackedBatch``
    (``batch["input_ids"]`` reads its fields as the dict it replaces did):

    * ``input_ids``: ``(T,)`` int64, CPU; sequence ``i`` is ``input_ids[cu_seqlens[i]:cu_seqlens[i+1]]``;
    * ``cu_seqlens``: ``(N + 1,)`` int32, ``cu_seqlens[0] == 0``, ``cu_seqlens[-1] == T``;
    * ``max_seqlen``: int, the longest sequence in tokens (special tokens included);
    * ``sequence_ids``: list of N str; ``num_sequences``: N;
    * ``indices``: ``(N,)`` int64, each record's ``index`` (input position), -1 where absent;
    * ``lengths``: ``(N,)`` int64, each record's ``length`` (characters before truncation),
      else its residues before any truncation;
    * ``residues``: ``(N,)`` int64, characters embedded per record (after any truncation); for
      a per-character tokenizer, its tokens without the special tokens;
    * ``num_replaced``: residues that ``SequenceDataset(invalid="X")`` replaced in these records;
    * ``num_truncated``: how many sequences are truncated: by ``SequenceDataset`` (its
      ``length`` exceeds the sequence) or by the converter's ``truncation_seq_length``;
    * windows (``SequenceDataset(on_overlength="window")``) pass through as records:
      ``window_starts``, ``window_counts`` (N,) int64 and ``num_windows`` from them, and
      ``residue_weights`` (T,) float32, each token's merge weight (see ``PackedBatch``).

    Raises ``ValueError`` naming the record for a character outside the alphabet
    (where ``batch_converter`` itself raises a bare ``KeyError``).
    """

    def __init__(self, tokenizer: Tokenizer | Any, max_tokens: int | None = None) -> None:
        self.max_tokens = max_tokens
        self.truncation_seq_length = None
        if is_tokenizer(tokenizer):
            self.tokenizer = tokenizer
        elif hasattr(tokenizer, "alphabet") and hasattr(tokenizer, "truncation_seq_length"):
            self.tokenizer = AlphabetTokenizer(tokenizer.alphabet)
            self.truncation_seq_length = tokenizer.truncation_seq_length
        else:
            raise ValueError(
                f"VarlenCollator takes a model family's Tokenizer or ESM's alphabet.get_batch_converter(), "
                f"got a {type(tokenizer).__name__}"
            )
        self.per_character = is_per_character(self.tokenizer)

    def __call__(self, batch: RecordLike | Sequence[RecordLike]) -> PackedBatch:
        if isinstance(batch, (Record, Mapping)):
            batch = [batch]
        records = [_as_record(r) for r in batch]
        ids = [r.id for r in records]
        tokens, counts = self._encode(batch, records)
        special = self.tokenizer.special_tokens_per_sequence
        residues = counts - special if self.per_character else _characters(records)
        original = np.fromiter((n if r.length < 0 else r.length for r, n in zip(records, residues.tolist())), np.int64)
        truncated = np.fromiter((r.truncated for r in records), dtype=bool, count=len(records))
        if self.truncation_seq_length and (cut := residues > self.truncation_seq_length).any():
            truncated |= cut
            _refuse_truncated_windows(records, cut, self.truncation_seq_length)
            tokens, counts, residues = self._truncate(tokens, counts, residues)

        cu_seqlens = np.zeros(len(records) + 1, dtype=np.int64)
        np.cumsum(counts, out=cu_seqlens[1:])
        total = int(cu_seqlens[-1])
        body = np.ones(total, dtype=bool)  # special tokens: each sequence's first, and with two its last
        body[cu_seqlens[:-1][counts > 0]] = special < 1
        body[cu_seqlens[1:][counts > 1] - 1] = special < 2
        weights = np.zeros(total, dtype=np.float32)  # special tokens' rows are never merged
        weights[body] = residue_weights(records, counts - special)

        if self.max_tokens is not None and total > self.max_tokens:
            warnings.warn(
                f"VarlenCollator got a batch of {total} tokens, over max_tokens={self.max_tokens}; it is packed "
                "whole. Budget batches before collation with SequenceDataset(max_tokens=...) and "
                "DataLoader(batch_size=None)",
                stacklevel=2,
            )
        return PackedBatch(
            input_ids=torch.from_numpy(tokens),
            cu_seqlens=torch.from_numpy(cu_seqlens.astype(np.int32)),
            max_seqlen=int(counts.max()) if len(records) else 0,
            sequence_ids=ids,
            indices=torch.tensor([r.index for r in records], dtype=torch.int64),
            lengths=torch.from_numpy(original),
            residues=torch.from_numpy(residues),
            num_truncated=int(truncated.sum()),
            num_replaced=sum(r.replaced for r in records),
            columns={
                name: torch.tensor([r.columns[name] for r in records], dtype=torch.int64)
                for name in (records[0].columns if records else ())
            },
            window_starts=torch.tensor([r.window_start for r in records], dtype=torch.int64),
            window_counts=torch.tensor([r.window_count for r in records], dtype=torch.int64),
            residue_weights=torch.from_numpy(weights),
            replaced=torch.tensor([r.replaced for r in records], dtype=torch.int64),
            num_windows=sum(r.is_window for r in records),
        )

    def _encode(self, batch: Any, records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
        """All tokens (T,) int64 and tokens per record (N,) int64; the batch's own if it carries them."""
        if isinstance(batch, Encoded) and batch.encoded_by(self.tokenizer):
            return batch.ids, batch.lengths
        try:
            return self.tokenizer.encode([r.sequence for r in records])
        except UnknownCharacterError as err:
            fix = "read FASTA through SequenceDataset (invalid='X' replaces unknown residues) or fix the sequence"
            raise err.naming(quote_id(records[err.sequence].id), fix) from None

    def _truncate(
        self, tokens: np.ndarray, counts: np.ndarray, residues: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each sequence's first ``truncation_seq_length`` residue tokens between its special tokens,
        as ``batch_converter`` cuts them."""
        limit = self.truncation_seq_length
        special = self.tokenizer.special_tokens_per_sequence
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        offsets = np.arange(tokens.size) - np.repeat(starts, counts)  # position within its sequence
        ends = np.repeat(counts, counts)
        # keep the leading special token and residues up to the limit, and a trailing special token
        kept = (offsets < limit + min(special, 1)) | ((special > 1) & (offsets == ends - 1))
        warnings.warn(
            f"VarlenCollator truncated sequences longer than the batch converter's truncation_seq_length={limit}, "
            "as batch_converter does; each batch counts them in 'num_truncated'. SequenceDataset(max_length=...) "
            "truncates before collation and reports the count",
            stacklevel=3,
        )
        residues = np.minimum(residues, limit)
        return tokens[kept], residues + special, residues


def _characters(records: list[Record]) -> np.ndarray:
    """(N,) int64 characters of each record's sequence."""
    return np.fromiter((len(r.sequence) for r in records), dtype=np.int64, count=len(records))


def _refuse_truncated_windows(batch: list[Record], cut: np.ndarray, limit: int) -> None:
    """``ValueError`` if the converter would cut a window: its rows could no longer be merged."""
    if (cut & np.fromiter((r.is_window for r in batch), dtype=bool, count=len(batch))).any():
        raise ValueError(
            f"VarlenCollator: the batch converter's truncation_seq_length={limit} would cut windows of "
            f"max_length residues; build it with alphabet.get_batch_converter() (no truncation) or "
            f"truncation_seq_length >= max_length"
        )


def _as_record(record: RecordLike) -> Record:
    """A ``Record``; a mapping's absent ``index`` is -1, its absent ``length`` -1 (= its own length)."""
    if isinstance(record, Record):
        return record
    if isinstance(record, (list, tuple)):
        if record and all(isinstance(r, (Record, Mapping)) for r in record):
            # DataLoader(batch_size=k) over SequenceDataset(max_tokens=...) hands over k whole batches.
            raise ValueError(
                f"VarlenCollator got a batch of lists ({len(record)} records in the first): "
                "SequenceDataset(max_tokens=...) already yields whole batches; use DataLoader(batch_size=None) "
                "so that each is collated as it is"
            )
        raise ValueError(
            f"VarlenCollator takes Records or mappings with 'id' and 'sequence', got a {type(record).__name__}; "
            "pass (id, sequence) pairs as {'id': ..., 'sequence': ...}"
        )
    return Record(
        id=str(record["id"]),
        sequence=record["sequence"],
        file=str(record.get("file", "")),
        index=record.get("index", -1),
        number=record.get("number", 0),
        length=record.get("length", -1),
        replaced=record.get("replaced", 0),
    )
