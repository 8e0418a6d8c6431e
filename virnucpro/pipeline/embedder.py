"""``embed``'s per-batch computation and row storing: a packed model's pooled rows, windows merged.

``Embedder`` (a packed model and a pooling) is also what ``predict`` runs for each of its models.
``StoredRows`` converts the rows to the storage dtype on the device; ``EmbedRows`` is the
writer thread's side: it merges a windowed protein's partial rows (``WindowMerger``) and appends
complete records to the part, with their embedded and input lengths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from virnucpro.data import PackedBatch
from virnucpro.models import Pooling
from virnucpro.models.common.windows import RowGroup, WindowMerger, window_partials

from .parts import PartWriter

__all__ = ["Embedder", "EmbedRows", "NonFiniteRowsError", "StoredRows"]


class NonFiniteRowsError(ValueError):
    """A record's embedding holds inf or NaN: the run stops before writing it."""


class Embedder:
    """A batch on the device -> ``(rows, None)``: its pooled rows (N or R, L, E), ``pooling`` of each of
    ``layers``. (A self-checking embedder returns per-row cosines in place of None.)"""

    def __init__(self, packed: nn.Module, layers: Sequence[int], pooling: Pooling):
        self.packed, self.layers, self.pooling = packed, tuple(layers), pooling

    def __call__(self, batch: PackedBatch) -> tuple[Tensor, Tensor | None]:
        reps = self.packed(batch, repr_layers=self.layers)["representations"]
        # A window's rows are its share of its protein's merged rows (the writer thread sums them);
        # everything else is exactly ``pooling.pool``.
        rows = [window_partials(self.pooling, reps[layer], batch) for layer in self.layers]
        return torch.stack(rows, dim=1), None


class StoredRows:
    """``embed``'s rows as the part stores them: the storage dtype, except that a batch holding
    windows sends float32 partials, rounded to the storage dtype once merged (``EmbedRows``)."""

    def __init__(self, embed, storage: torch.dtype) -> None:
        self.embed, self.storage = embed, storage
        if hasattr(embed, "verify"):
            self.verify = embed.verify

    def __call__(self, batch: PackedBatch) -> tuple[Tensor, Tensor | None]:
        rows, check = self.embed(batch)
        rows = rows.to(self.storage)
        return (rows.float() if batch.num_windows else rows), check


class EmbedRows:
    """The writer thread's side of ``embed`` for one job: complete records only reach the part.

    ``per_token``: the rows are residues (windows merge row by row); ``count_tokens``: count each
    batch's tokens in the part (a tokenizer whose tokens are not residues + special tokens).
    ``fix``: what a user can do when a record's rows are not finite (``NonFiniteRowsError``): an
    overflow in fp16 compute or storage is otherwise written as inf, silently."""

    def __init__(self, part: PartWriter, per_token: bool, count_tokens: bool = False, fix: str = "") -> None:
        self.part, self.merger, self.count_tokens = part, WindowMerger(per_token), count_tokens
        self.per_token = per_token
        self.fix = fix or "check the model's weights for inf or NaN"

    def add(self, batch: PackedBatch, rows: np.ndarray) -> None:
        group = RowGroup.from_batch(batch, rows)
        windowed = int(((group.window_counts > 1) & (group.window_starts + group.residues == group.lengths)).sum())
        done = self.merger.add(group)  # complete records only: a protein is never half committed
        if len(done):
            self._check_finite(done)
            columns = {"lengths": done.residues, "input_lengths": done.lengths, **done.columns}
            replaced = int(done.replaced.sum())
            # Without windows (the only case with count_tokens) the batch's records are exactly those done.
            tokens = {"tokens": batch.num_tokens} if self.count_tokens else {}
            self.part.append(done.indices, columns, done.ids, done.rows, replaced=replaced, windowed=windowed, **tokens)

    def finish(self) -> None:
        self.merger.finish()

    def _check_finite(self, done: RowGroup) -> None:
        finite = np.isfinite(done.rows.reshape(len(done.rows), -1)).all(axis=1)
        if not finite.all():
            first_row = int(np.flatnonzero(~finite)[0])
            if self.per_token:  # records own ``residues`` rows each, back to back
                bad = int(np.searchsorted(np.cumsum(done.residues), first_row, side="right"))
            else:
                bad = first_row
            raise NonFiniteRowsError(
                f"record {done.ids[bad]!r} (input record {int(done.indices[bad]) + 1}): its embedding holds inf or NaN, "
                f"so the run stopped before writing it; {self.fix}, and rerun with --overwrite"
            )
