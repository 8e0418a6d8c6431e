"""The FP8 self-check: the first batch, and every Nth after it, also runs through the bf16 path.

The cosine between the FP8 and the bf16 embeddings of every checked row is computed on the
GPU and copied to the host with the rows; the writer thread, which already waits for the
batch, folds it into the part's record and stops the run when it falls below the threshold.
Its cost (one bf16 forward per N batches) is part of the measured throughput.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from virnucpro.data import PackedBatch

from .embedder import Embedder
from .config import SelfCheck

__all__ = ["SelfCheckFailed", "SelfCheckedEmbedder", "combine_checks"]


class SelfCheckFailed(RuntimeError):
    """FP8 embeddings drifted too far from bf16 on this model and data."""


class SelfCheckedEmbedder:
    """``embed`` (FP8), and on checked batches ``reference`` (bf16) too: ``(rows, cosines or None)``."""

    def __init__(self, embed: Embedder, reference: Embedder, check: SelfCheck):
        self.embed, self.reference, self.check = embed, reference, check
        self._batches = 0

    def __call__(self, batch: PackedBatch) -> tuple[Tensor, Tensor | None]:
        rows, _ = self.embed(batch)
        checked = self._batches % self.check.every == 0
        self._batches += 1
        if not checked:
            return rows, None
        reference, _ = self.reference(batch)
        # (R, L, E) rows of each layer -> one cosine per (row, layer)
        cosines = F.cosine_similarity(rows.flatten(0, 1).float(), reference.flatten(0, 1).float(), dim=-1)
        return rows, cosines

    def verify(self, cosines: np.ndarray, batch: int) -> None:
        """Raise ``SelfCheckFailed`` when a checked row fell below the threshold."""
        if cosines.size and float(cosines.min()) < self.check.min_cosine:
            raise SelfCheckFailed(
                f"FP8 self-check: in checked batch {batch}, the cosine between FP8 and bf16 embeddings fell to "
                f"{float(cosines.min()):.5f} (mean {float(cosines.mean()):.5f}), below the threshold "
                f"{self.check.min_cosine}: FP8 is too inaccurate for this model; rerun with dtype='bf16' "
                "(CLI: --dtype bf16) and overwrite=True (CLI: --overwrite)"
            )


def combine_checks(checks: list[dict[str, float]]) -> dict[str, float]:
    """The output's ``fp8_selfcheck_*`` attributes from the parts' (min, sum, count); empty without checks."""
    checks = [c for c in checks if c.get("count")]
    if not checks:
        return {}
    count = sum(c["count"] for c in checks)
    return {
        "fp8_selfcheck_min_cosine": min(c["min"] for c in checks),
        "fp8_selfcheck_mean_cosine": sum(c["sum"] for c in checks) / count,
        "fp8_selfcheck_rows": count,
    }
