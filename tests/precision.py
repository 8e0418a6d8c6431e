"""Our reduced-precision error measured against the reference implementation's own, in flash-attn's
style: compared with a float32 reference, our bfloat16 output may be at most ``factor`` times as far
off as the reference code itself run in bfloat16, on the same weights and inputs.

An absolute bound says whether an error is small; this one says whether it is ours: the reference
run in bfloat16 is what bfloat16 costs these weights and inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class CosineError(NamedTuple):
    """1 - cosine similarity of each row with the float32 reference's: its max and mean."""

    max: float
    mean: float

    def __str__(self) -> str:
        return f"1 - cosine max {self.max:.3e} mean {self.mean:.3e}"


def cosine_error(actual: torch.Tensor, expected: torch.Tensor) -> CosineError:
    """(N, E) rows against (N, E) float32 reference rows, per row, in float32."""
    error = 1 - F.cosine_similarity(actual.float(), expected.float(), dim=1)
    return CosineError(float(error.max()), float(error.mean()))


def assert_within_reference_error(ours: CosineError, reference: CosineError, factor: float, what: str) -> None:
    """Both our max and mean error at most ``factor`` times the reference's in the same dtype."""
    figures = f"{what}: ours {ours}; the reference's own, same dtype, {reference}; allowed {factor}x"
    assert ours.max <= factor * reference.max and ours.mean <= factor * reference.mean, figures
