"""``VarlenCollator``: records to one packed, padding-free batch for a varlen ESM-2 forward.

The collator is stateless, so it is safe wherever PyTorch runs it: in the main
process with ``num_workers=0``, inside each worker otherwise (PyTorch pickles
``collate_fn`` into the workers). Running it in the workers is what we want:
tokenising then happens in parallel, off the process that drives the GPU, and
it touches no CUDA.

Tokens are exactly those of ESM's ``batch_converter`` for each sequence (BOS,
residues, EOS, no padding), produced with one vectorised lookup over the whole
batch instead of a Python loop per residue.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import esm
import numpy as np
import torch

from .batch import PackedBatch
from .records import Record, quote_id
from .windows import residue_weights

__all__ = ["VarlenCollator"]

RecordLike = Record | Mapping[str, Any]


class VarlenCollator:
    """Tokenise a list of records into ``input_ids``/``cu_seqlens`` (the FlashAttention varlen layout).

    Args:
        batch_converter: ESM's ``alphabet.get_batch_converter()``; its alphabet and
            ``truncation_seq_length`` define the tokens.
        max_tokens: expected token budget. A batch over it is still packed whole
            (nothing is ever dropped) with a warning pointing to
            ``SequenceDataset(max_tokens=...)``, which budgets batches before collation.

    Calling it with a list of records (``Record``s, as ``SequenceDataset`` yields, or
    mappings with ``"id"`` and ``"sequence"``) or with one record returns a ``PackedBatch``
    (``batch["input_ids"]`` reads its fields as the dict it replaces did):

    * ``input_ids``: ``(T,)`` int64, CPU; sequence ``i`` is ``input_ids[cu_seqlens[i]:cu_seqlens[i+1]]``;
    * ``cu_seqlens``: ``(N + 1,)`` int32, ``cu_seqlens[0] == 0``, ``cu_seqlens[-1] == T``;
    * ``max_seqlen``: int, the longest sequence in tokens (BOS and EOS included);
    * ``sequence_ids``: list of N str; ``num_sequences``: N;
    * ``indices``: ``(N,)`` int64, each record's ``index`` (input position), -1 where absent;
    * ``lengths``: ``(N,)`` int64, each record's ``length`` (residues before truncation),
      else its token count before any truncation;
    * ``residues``: ``(N,)`` int64, residues embedded per record (after any truncation);
    * ``num_replaced``: residues that ``SequenceDataset(invalid="X")`` replaced in these records;
    * ``num_truncated``: how many sequences are truncated: by ``SequenceDataset`` (its
      ``length`` exceeds the sequence) or by the converter's ``truncation_seq_length``;
    * windows (``SequenceDataset(on_overlength="window")``) pass through as records:
      ``window_starts``, ``window_counts`` (N,) int64 and ``num_windows`` from them, and
      ``residue_weights`` (T,) float32, each token's merge weight (see ``PackedBatch``).

    Raises ``ValueError`` naming the record for a character outside the alphabet
    (where ``batch_converter`` itself raises a bare ``KeyError``).
    """

    def __init__(self, batch_converter: esm.data.BatchConverter, max_tokens: int | None = None) -> None:
        alphabet = batch_converter.alphabet
        self.batch_converter = batch_converter
        self.max_tokens = max_tokens
        self.truncation_seq_length = batch_converter.truncation_seq_length
        self._bos = alphabet.cls_idx if alphabet.prepend_bos else None
        self._eos = alphabet.eos_idx if alphabet.append_eos else None
        self._lut = np.full(256, -1, dtype=np.int64)
        for tok, idx in alphabet.tok_to_idx.items():
            if len(tok) == 1 and ord(tok) < 256:
                self._lut[ord(tok)] = idx
        self._tok_to_idx = dict(alphabet.tok_to_idx)
        specials = sorted((t for t in alphabet.all_toks if len(t) > 1), key=len, reverse=True)
        self._special = re.compile("(" + "|".join(map(re.escape, specials)) + ")")

    def __call__(self, batch: RecordLike | Sequence[RecordLike]) -> PackedBatch:
        if isinstance(batch, (Record, Mapping)):
            batch = [batch]
        batch = [_as_record(r) for r in batch]
        ids = [r.id for r in batch]
        seqs = [r.sequence for r in batch]
        residues, lengths = self._encode(ids, seqs)
        original = np.fromiter((n if r.length < 0 else r.length for r, n in zip(batch, lengths.tolist())), np.int64)
        truncated = np.fromiter((r.truncated for r in batch), dtype=bool, count=len(batch))
        if self.truncation_seq_length and (lengths > self.truncation_seq_length).any():
            truncated |= lengths > self.truncation_seq_length
            _refuse_truncated_windows(batch, lengths > self.truncation_seq_length, self.truncation_seq_length)
            residues, lengths = self._truncate(residues, lengths)

        extra = (self._bos is not None) + (self._eos is not None)
        cu_seqlens = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths + extra, out=cu_seqlens[1:])
        total = int(cu_seqlens[-1])
        input_ids = np.empty(total, dtype=np.int64)
        is_residue = np.ones(total, dtype=bool)
        if self._bos is not None:
            input_ids[cu_seqlens[:-1]] = self._bos
            is_residue[cu_seqlens[:-1]] = False
        if self._eos is not None:
            input_ids[cu_seqlens[1:] - 1] = self._eos
            is_residue[cu_seqlens[1:] - 1] = False
        input_ids[is_residue] = residues
        weights = np.zeros(total, dtype=np.float32)  # BOS and EOS rows are never merged
        weights[is_residue] = residue_weights(batch, lengths)

        if self.max_tokens is not None and total > self.max_tokens:
            warnings.warn(
                f"VarlenCollator got a batch of {total} tokens, over max_tokens={self.max_tokens}; it is packed "
                "whole. Budget batches before collation with SequenceDataset(max_tokens=...) and "
                "DataLoader(batch_size=None)",
                stacklevel=2,
            )
        return PackedBatch(
            input_ids=torch.from_numpy(input_ids),
            cu_seqlens=torch.from_numpy(cu_seqlens.astype(np.int32)),
            max_seqlen=int((lengths + extra).max()) if len(seqs) else 0,
            sequence_ids=ids,
            indices=torch.tensor([r.index for r in batch], dtype=torch.int64),
            lengths=torch.from_numpy(original),
            residues=torch.from_numpy(lengths),
            num_truncated=int(truncated.sum()),
            num_replaced=sum(r.replaced for r in batch),
            columns={
                name: torch.tensor([r.columns[name] for r in batch], dtype=torch.int64)
                for name in (batch[0].columns if batch else ())
            },
            window_starts=torch.tensor([r.window_start for r in batch], dtype=torch.int64),
            window_counts=torch.tensor([r.window_count for r in batch], dtype=torch.int64),
            residue_weights=torch.from_numpy(weights),
            replaced=torch.tensor([r.replaced for r in batch], dtype=torch.int64),
            num_windows=sum(r.is_window for r in batch),
        )

    def _encode(self, ids: list[str], seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Residue token ids of all sequences, concatenated, and each sequence's token count."""
        joined = "".join(seqs)
        if "<" in joined:
            return self._encode_with_specials(ids, seqs)
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        raw = joined.encode("utf-32-le")  # 4 bytes per character keeps positions aligned for any input
        codes = np.frombuffer(raw, dtype=np.uint32)
        residues = self._lut[np.minimum(codes, 255)]
        bad = (residues < 0) | (codes > 255)
        if bad.any():
            self._raise_unknown(ids, lengths, int(np.argmax(bad)), chr(int(codes[np.argmax(bad)])))
        return residues, lengths

    def _encode_with_specials(self, ids: list[str], seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Slow path for sequences that spell special tokens such as ``<mask>``, split as ESM's tokenizer does."""
        encoded: list[int] = []
        lengths = np.zeros(len(seqs), dtype=np.int64)
        for i, seq in enumerate(seqs):
            start = len(encoded)
            for j, part in enumerate(self._special.split(seq)):
                if j % 2:
                    encoded.append(self._tok_to_idx[part])
                    continue
                for char in part:
                    if char not in self._tok_to_idx:
                        raise ValueError(self._unknown_message(ids[i], char, len(encoded) - start + 1))
                    encoded.append(self._tok_to_idx[char])
            lengths[i] = len(encoded) - start
        return np.asarray(encoded, dtype=np.int64), lengths

    def _truncate(self, residues: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        limit = self.truncation_seq_length
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        offsets = np.arange(residues.size) - np.repeat(starts, lengths)
        kept = residues[offsets < limit]
        warnings.warn(
            f"VarlenCollator truncated sequences longer than the batch converter's truncation_seq_length={limit}, "
            "as batch_converter does; each batch counts them in 'num_truncated'. SequenceDataset(max_length=...) "
            "truncates before collation and reports the count",
            stacklevel=3,
        )
        return kept, np.minimum(lengths, limit)

    def _raise_unknown(self, ids: list[str], lengths: np.ndarray, flat: int, char: str) -> None:
        seq = int(np.searchsorted(np.cumsum(lengths), flat, side="right"))
        position = flat - int(lengths[:seq].sum()) + 1
        raise ValueError(self._unknown_message(ids[seq], char, position))

    @staticmethod
    def _unknown_message(record_id: str, char: str, position: int) -> str:
        return (
            f"record {quote_id(record_id)}: character {char!r} at position {position} is not in ESM's alphabet; "
            "read FASTA through SequenceDataset (invalid='X' replaces unknown residues) or fix the sequence"
        )


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
