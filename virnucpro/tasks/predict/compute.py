"""``predict``'s per-batch computation on the device, and what the writer thread stores of it.

Per batch of frames (``PairedBatch``): ESM-2's packed forward over the proteins and DNABERT-S's
over the DNA slices, each pooled by its family's mean (ESM-2 over residues, DNABERT-S over every
token, as VirNucPro's ``extract_esm`` and ``extract_DNABERT_S`` average), the rows joined as
VirNucPro's ``merge_data`` joins them (DNABERT-S's first), classified (``ClassifierModule``:
softmax, score1 "others", score2 "virus"). Only the scores, and with ``--save-features`` the
features, leave the GPU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from virnucpro.data import PairedBatch
from virnucpro.models.classifier import NUM_CLASSES, ClassifierModule
from virnucpro.pipeline.embedder import Embedder
from virnucpro.pipeline.parts import PartWriter
from virnucpro.pipeline.selfcheck import SelfCheckedEmbedder

__all__ = ["COLUMNS", "PredictCompute", "PredictRows"]

#: The int64 columns a part stores per frame besides the input kind's (source_index, chunk, frame):
#: the protein's residues, embedded and in the input (equal: predict never truncates).
COLUMNS = ("lengths", "input_lengths")


class PredictCompute:
    """A ``PairedBatch`` on the device -> ``(rows, check)``.

    Args:
        protein: ESM-2's pooled rows (an ``Embedder`` of one layer; self-checked with FP8).
        nucleotide: DNABERT-S's pooled rows (an ``Embedder`` of one layer).
        classifier: VirNucPro's MLP on the device, taking DNABERT-S's width plus ESM-2's.
        features: also return the features.

    Returns ``rows``: (N, 2) float32 scores (score1, score2) per frame, or (N, 2 + F) with the
    F = 768 + 2560 float32 features after them; ``check``: FP8-vs-bf16 cosines of ESM-2's rows
    on a self-checked batch, else None.
    """

    def __init__(
        self,
        protein: Embedder | SelfCheckedEmbedder,
        nucleotide: Embedder,
        classifier: ClassifierModule,
        *,
        features: bool,
    ) -> None:
        self.protein, self.nucleotide, self.classifier, self.features = protein, nucleotide, classifier, features
        if isinstance(protein, SelfCheckedEmbedder):
            self.verify = protein.verify

    def __call__(self, batch: PairedBatch) -> tuple[Tensor, Tensor | None]:
        esm, check = self.protein(batch.protein)  # (N, 1, E_esm) float32
        dna = torch.cat([self.nucleotide(piece)[0] for piece in batch.nucleotide])  # (N, 1, E_dna) float32
        features = torch.cat([dna[:, 0], esm[:, 0]], dim=1)  # (N, E_dna + E_esm): merge_data's order
        scores = self.classifier.scores(features)  # (N, 2) float32
        return (torch.cat([scores, features], dim=1) if self.features else scores), check


class PredictRows:
    """The writer thread's side of ``predict`` for one job: every frame of a batch is complete."""

    def __init__(self, part: PartWriter) -> None:
        self.part = part

    def add(self, batch: PairedBatch, rows: np.ndarray) -> None:
        """Append the batch's frames: input positions, columns, ids and their (N, 2 [+ F]) rows."""
        protein = batch.protein
        columns = {
            "lengths": protein.residues.numpy(),
            "input_lengths": protein.lengths.numpy(),
            **{name: column.numpy() for name, column in protein.columns.items()},
        }
        self.part.append(protein.indices.numpy(), columns, list(protein.sequence_ids), rows)

    def finish(self) -> None:
        """Nothing is held between batches."""


def row_width(features: int | None) -> int:
    """Values per stored row: the two scores, then ``features`` values when they are saved."""
    return NUM_CLASSES + (features or 0)
