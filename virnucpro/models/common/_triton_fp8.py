"""Triton kernels of ``fp8``: activation quantisation fused into the passes that produce the activations.

One program per packed row, the row in float32 registers, as ``_triton``'s kernels:

* ``add_layer_norm_quantise``: residual add + LayerNorm (``_triton.add_layer_norm_row``),
  then the normalised row, never rounded to bf16, quantised; writes the bf16 sum, the
  e4m3 row and its float32 scale;
* ``gelu_quantise``: GELU (erf or tanh) of fc1's bf16 output, quantised for fc2;
* ``quantise_rows``: a bf16 row quantised as it is (the attention output, before out_proj).

The quantisation is ``fp8.quantise_rows``'s arithmetic step for step. Triton's ``/`` on
float32 is an approximate division, so the reciprocal is ``div_rn``, IEEE-rounded as in
torch; with that, the same float32 row gives bitwise the same codes and scale on Hopper,
where Triton converts float32 to e4m3 in one rounding (``cvt.rn.satfinite``). On sm_89 it
goes through float16 (truncated first), so a code may differ by one e4m3 step there.
Imported only when CUDA and Triton are present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._triton import add_layer_norm_row, check_rows, row_offsets
from .fp8 import E4M3, E4M3_MAX, MIN_AMAX
from .matmul import Quantised

_ACTIVATIONS = {"none": 0, "exact": 1, "tanh": 2}
_QUANT = {"FP8_MAX": E4M3_MAX, "INV_MAX": 1.0 / E4M3_MAX, "MIN_AMAX": MIN_AMAX}


@triton.jit
def _store_quantised(
    y, mask, codes_ptr, scale_ptr, row, offsets,
    FP8_MAX: tl.constexpr, INV_MAX: tl.constexpr, MIN_AMAX: tl.constexpr,
):  # fmt: skip
    """Quantise one float32 row ``y`` (values where ``mask`` is off are ignored) as fp8.quantise_rows does."""
    amax = tl.max(tl.where(mask, tl.abs(y), 0.0), axis=0)
    scale = tl.maximum(amax, MIN_AMAX) * INV_MAX
    inv = tl.math.div_rn(1.0, scale)
    q = tl.minimum(tl.maximum(y * inv, -FP8_MAX), FP8_MAX)
    tl.store(codes_ptr + offsets, q.to(codes_ptr.dtype.element_ty), mask=mask)
    tl.store(scale_ptr + row, scale)


@triton.jit
def _add_layer_norm_quantise_kernel(
    x_ptr, delta_ptr, sum_ptr, codes_ptr, scale_ptr, w_ptr, b_ptr, n_cols, eps,
    HAS_DELTA: tl.constexpr, BLOCK: tl.constexpr,
    FP8_MAX: tl.constexpr, INV_MAX: tl.constexpr, MIN_AMAX: tl.constexpr,
):  # fmt: skip
    row, cols, mask, offsets = row_offsets(n_cols, BLOCK)
    y = add_layer_norm_row(x_ptr, delta_ptr, sum_ptr, w_ptr, b_ptr, offsets, cols, mask, n_cols, eps, HAS_DELTA)
    _store_quantised(y, mask, codes_ptr, scale_ptr, row, offsets, FP8_MAX, INV_MAX, MIN_AMAX)


@triton.jit
def _activate_quantise_kernel(
    y_ptr, codes_ptr, scale_ptr, n_cols,
    ACTIVATION: tl.constexpr, BLOCK: tl.constexpr,
    FP8_MAX: tl.constexpr, INV_MAX: tl.constexpr, MIN_AMAX: tl.constexpr,
):  # fmt: skip
    # ACTIVATION: 0 none, 1 exact GELU (erf), 2 tanh GELU
    row, cols, mask, offsets = row_offsets(n_cols, BLOCK)
    y = tl.load(y_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    if ACTIVATION == 1:
        y = 0.5 * y * (1.0 + tl.math.erf(y * 0.7071067811865476))  # 1 / sqrt(2)
    elif ACTIVATION == 2:
        # 0.5 * (1 + tanh(u)) == sigmoid(2u), u = sqrt(2 / pi) * (y + 0.044715 y^3): no tanh needed
        y = y * tl.sigmoid(1.5957691216057308 * (y + 0.044715 * y * y * y))
    _store_quantised(y, mask, codes_ptr, scale_ptr, row, offsets, FP8_MAX, INV_MAX, MIN_AMAX)


def _outputs(rows: int, cols: int, device: torch.device) -> Quantised:
    codes = torch.empty(rows, cols, dtype=E4M3, device=device)
    return Quantised(codes, torch.empty(rows, 1, dtype=torch.float32, device=device))


def _warps(block: int) -> int:
    return min(16, max(1, block // 256))


def add_layer_norm_quantise(
    x: Tensor, delta: Tensor | None, weight: Tensor, bias: Tensor, eps: float
) -> tuple[Tensor, Quantised]:
    """As ``fp8.layer_norm_quantise_torch``; x and delta (T, E) bf16 contiguous, weight and bias (E,)."""
    check_rows(x, delta)
    rows, cols = x.shape
    total = x if delta is None else torch.empty_like(x)
    out = _outputs(rows, cols, x.device)
    block = triton.next_power_of_2(cols)
    _add_layer_norm_quantise_kernel[(rows,)](
        x, x if delta is None else delta, total, out.codes, out.scale, weight, bias, cols, eps,
        HAS_DELTA=delta is not None, BLOCK=block, num_warps=_warps(block), **_QUANT,
    )  # fmt: skip
    return total, out


def _activate_quantise(y: Tensor, activation: str) -> Quantised:
    check_rows(y, None)
    rows, cols = y.shape
    out = _outputs(rows, cols, y.device)
    block = triton.next_power_of_2(cols)
    _activate_quantise_kernel[(rows,)](
        y, out.codes, out.scale, cols,
        ACTIVATION=_ACTIVATIONS[activation], BLOCK=block, num_warps=_warps(block), **_QUANT,
    )  # fmt: skip
    return out


def quantise_rows(x: Tensor) -> Quantised:
    """As ``fp8.quantise_rows``, bitwise on Hopper; x (T, K), any float dtype (an attention output at any strides)."""
    return _activate_quantise(x.contiguous(), "none")


def gelu_quantise(y: Tensor, gelu: str) -> Quantised:
    """As ``fp8.gelu_quantise_torch``; y (T, N) contiguous, fc1's output; gelu "exact" or "tanh"."""
    if gelu not in ("exact", "tanh"):
        raise ValueError(f"gelu (CLI: --gelu) must be 'exact' or 'tanh', got {gelu!r}")
    return _activate_quantise(y, gelu)
