"""The accuracy levers of ``matmul="fp8"`` (``Fp8Levers``) and the LayerNorm folding one of them does.

The levers: folding each LayerNorm's per-channel scale into the next layer's weights
(SmoothQuant's migration, computed from the weights alone), bf16 for the first and last
blocks, for the attention projections (QKV and out_proj), for fc2, and cuBLAS's fast FP8
accumulation.

Which lever pays: on random-weight ESM-2 emulated on the CPU (33 layers, width 640 and
1280), the per-sequence cosine of mean embeddings against float32 lost most to the
quantised *weights* of QKV and out_proj; activations, fc1 and fc2 cost far less. Hence
the default keeps the attention projections in bf16: FP8 runs the MLP, two thirds of the
matmul work. ``benchmarks/fp8_levers.py`` measures every lever on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .matmul import Norm

__all__ = ["Fp8Levers", "fold_layer_norm"]


@dataclass(frozen=True)
class Fp8Levers:
    """Accuracy levers of ``matmul="fp8"``, each on or off, each measured by ``benchmarks/fp8_levers.py``.

    Attributes:
        fold: SmoothQuant migration strength alpha in [0, 1] for folding each LayerNorm
            into the layer after it (``fold_layer_norm``); 1.0 is plain folding of the
            norm's scale into the weights; None leaves the LayerNorms as they are.
        bf16_ends: the first and last blocks compute in bf16 (``NativeMatmul``).
        bf16_attention: every block's attention half (its LayerNorm, QKV and out_proj) in
            bf16; FP8 only in the MLP. On by default: with the projections in FP8 too, 3B on
            random weights fell to a cosine of 0.9959 against fp32 (0.9997 with them in bf16).
        bf16_fc2: fc2 (the MLP's 4E -> E layer) in bf16; the GELU then writes bf16.
        fast_accum: ``use_fast_accum`` of ``torch._scaled_mm``: faster, with fewer bits
            kept while accumulating the long dot products. On by default: on the H200 it was
            6 % faster at the same accuracy on 3B (``benchmarks/results/fp8_levers_3B.md``).
    """

    fold: float | None = 1.0
    bf16_ends: bool = False
    bf16_attention: bool = True
    bf16_fc2: bool = False
    fast_accum: bool = True

    def __post_init__(self) -> None:
        if self.fold is not None and not (isinstance(self.fold, (int, float)) and 0.0 <= self.fold <= 1.0):
            raise ValueError(f"Fp8Levers(fold={self.fold!r}) must be None or a number in [0, 1]")
        for name in ("bf16_ends", "bf16_attention", "bf16_fc2", "fast_accum"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Fp8Levers({name}={getattr(self, name)!r}) must be a bool")

    def describe(self) -> str:
        """One line naming every lever, as fingerprints and output attributes store it."""
        fold = "none" if self.fold is None else f"{float(self.fold):g}"
        return (
            f"fold={fold},ends={_precision(self.bf16_ends)},attention={_precision(self.bf16_attention)},"
            f"fc2={_precision(self.bf16_fc2)},accum={'fast' if self.fast_accum else 'exact'}"
        )


def _precision(bf16: bool) -> str:
    return "bf16" if bf16 else "fp8"


def fold_layer_norm(
    norm: Norm, weights: Sequence[Tensor], biases: Sequence[Tensor], alpha: float
) -> tuple[Norm, list[Tensor], list[Tensor]]:
    """LayerNorm and next layer rewritten to the same function, the norm's scale moved into W.

    With s_j = |gamma_j|^alpha / max_i |W_ij|^(1 - alpha) over all row blocks' rows i,
    LN'(x) = normalise(x) * gamma / s (no bias), W' = W * s (column j by s_j) and
    b' = b + W @ beta give LN'(x) @ W'.T + b' == LN(x) @ W.T + b. Quantisation then sees
    activations without beta's per-channel offsets and gamma's per-channel scales, moved
    (all of them at alpha = 1, the geometric balance of the two at 0.5) into the
    per-output-channel-scaled weights. Channels where s would be 0 or not finite keep s = 1.

    Args:
        norm: weight (E,), bias (E,) of the LayerNorm, any float dtype and device.
        weights, biases: the row blocks (out_i, E) and (out_i,) of the layer reading it.
        alpha: in [0, 1].

    Returns:
        New float32 tensors on the source's device (nothing of the inputs is modified).
    """
    gamma, beta = norm.weight.float(), norm.bias.float()
    weights = [w.float() for w in weights]
    w_max = torch.stack([w.abs().amax(dim=0) for w in weights]).amax(dim=0)  # (E,)
    s = gamma.abs().pow(alpha) / w_max.pow(1.0 - alpha)
    s = torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s))
    folded_biases = [b.float() + w @ beta for w, b in zip(weights, biases)]
    return Norm(gamma / s, torch.zeros_like(beta), norm.eps), [w * s for w in weights], folded_biases
