"""Triton kernel: ``kernels.gated_gelu_torch`` in one pass over memory.

A gated linear unit's projection (T, 2I) is read once and GELU(gate) * value (T, I) written
once; the arithmetic is float32, the result rounded to the input's dtype once. Imported only
when CUDA and Triton are present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

#: Columns per program: 3072-wide DNABERT-S rows are three programs each, enough to fill the GPU
#: at any batch the pipeline runs, each program moving 4 KiB per bf16 row read.
_BLOCK = 1024


@triton.jit
def _gated_gelu_kernel(x_ptr, out_ptr, n_cols, x_stride, TANH: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    gate = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
    value = tl.load(x_ptr + row * x_stride + n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    # Constants inline: a @triton.jit function reads no plain module globals. sqrt(2 / pi), sqrt(1 / 2).
    if TANH:
        inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
        gelu = gate * tl.sigmoid(2.0 * inner)  # 0.5 * (1 + tanh(u)) == sigmoid(2u)
    else:
        gelu = 0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476))
    tl.store(out_ptr + row * n_cols + cols, (gelu * value).to(out_ptr.dtype.element_ty), mask=mask)


def gated_gelu(x: Tensor, approximate: str) -> Tensor:
    """As ``kernels.gated_gelu_torch``; x (T, 2I) with unit stride along its width."""
    if x.ndim != 2 or x.shape[1] % 2 or x.stride(1) != 1:
        raise ValueError(f"gated_gelu needs (T, 2I) x with unit stride along its width, got {tuple(x.shape)}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r} is unknown; choose 'none' (erf) or 'tanh'")
    rows, width = x.shape
    n_cols = width // 2
    out = torch.empty(rows, n_cols, dtype=x.dtype, device=x.device)
    if rows:
        grid = (rows, triton.cdiv(n_cols, _BLOCK))
        _gated_gelu_kernel[grid](
            x, out, n_cols, x.stride(0), TANH=approximate == "tanh", BLOCK=_BLOCK, num_warps=4
        )  # fmt: skip
    return out
