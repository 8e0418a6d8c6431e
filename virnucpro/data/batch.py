"""``PackedBatch``: a padding-free batch of token ids in FlashAttention's varlen layout, with its records.

The packed tensors and their per-record metadata travel as one object from the
collator (in a DataLoader worker) to the GPU and on to the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import Tensor

from .field_mapping import FieldMapping

__all__ = ["PackedBatch"]


@dataclass(frozen=True)
class PackedBatch(FieldMapping):
    """N sequences back to back.

    Attributes:
        input_ids: (T,) int64; sequence i is ``input_ids[cu_seqlens[i] : cu_seqlens[i + 1]]``,
            BOS and EOS included.
        cu_seqlens: (N + 1,) int32, ``cu_seqlens[0] == 0``, non-decreasing, ``cu_seqlens[-1] == T``.
        max_seqlen: host int, the longest sequence in tokens (BOS and EOS included).
        sequence_ids: N record ids.
        indices: (N,) int64, each record's input position (-1 where the record had none).
        lengths: (N,) int64, each record's residues before truncation.
        residues: (N,) int64, the residues embedded of each record (its tokens without the
            special tokens; fewer than ``lengths`` where truncated).
        num_truncated: how many of the N sequences are truncated.
        num_replaced: residues replaced with X in these records.
        columns: (N,) int64 per column its records' input kind adds, by name.
        window_starts: (N,) int64, each window's first residue in its protein; 0 for a plain record.
        window_counts: (N,) int64, how many windows each record's protein has; 1 for a plain
            record (a windowed protein has at least 2).
        residue_weights: (T,) float32 per packed token, the weight its row has when windows are
            merged: 1 / (windows covering it) for a window's residue, 1.0 for a plain record's
            residue, 0.0 for BOS and EOS.
        replaced: (N,) int64, residues replaced with X in each record (a windowed protein's on
            its first window).
        num_windows: how many of the N records are windows (host int: whether merging is
            needed is known without looking at a tensor).

    The window fields are what ``virnucpro.models.window_partials`` (on the device) and
    ``WindowMerger`` (on the host) read; ``windows.py`` describes the windows.

    ``batch["input_ids"]``, ``batch.keys()`` and ``for key in batch`` work as on the dict this
    replaces (``FieldMapping``: the fields, and ``num_sequences``); it is not a ``Mapping``, so
    that the DataLoader pins it with ``pin_memory()``.
    """

    _extra_keys: ClassVar[tuple[str, ...]] = ("num_sequences",)

    input_ids: Tensor
    cu_seqlens: Tensor
    max_seqlen: int
    sequence_ids: list[str]
    indices: Tensor
    lengths: Tensor
    residues: Tensor
    num_truncated: int = 0
    num_replaced: int = 0
    columns: dict[str, Tensor] = field(default_factory=dict)
    window_starts: Tensor = field(kw_only=True)
    window_counts: Tensor = field(kw_only=True)
    residue_weights: Tensor = field(kw_only=True)
    replaced: Tensor = field(kw_only=True)
    num_windows: int = field(default=0, kw_only=True)

    @property
    def num_sequences(self) -> int:
        return len(self.sequence_ids)

    @property
    def num_completed(self) -> int:
        """Input records this batch completes: its plain records, and the proteins whose last window it holds."""
        if not self.num_windows:
            return self.num_sequences
        last = (self.window_counts == 1) | (self.window_starts + self.residues == self.lengths)
        return int(last.sum())

    @property
    def num_tokens(self) -> int:
        return self.input_ids.numel()

    def pin_memory(self) -> PackedBatch:
        """A copy whose ``DEVICE_FIELDS`` are in pinned host memory (the DataLoader calls this
        with ``pin_memory=True``)."""
        return replace(self, **{name: getattr(self, name).pin_memory() for name in DEVICE_FIELDS})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PackedBatch:
        """A copy with ``DEVICE_FIELDS`` on ``device``; the rest of the per-record metadata stays on the host."""
        return replace(
            self, **{name: getattr(self, name).to(device, non_blocking=non_blocking) for name in DEVICE_FIELDS}
        )


#: The tensors that ``PackedBatch.to`` moves: what the packed forward reads (``input_ids``,
#: ``cu_seqlens``) and what ``window_partials`` reads to merge windows on the device without
#: waiting for the host (``residue_weights``, ``window_counts``, ``lengths``).
DEVICE_FIELDS = ("input_ids", "cu_seqlens", "residue_weights", "window_counts", "lengths")
