"""Triton implementations of ``kernels.add_layer_norm_torch`` and ``kernels.rotary_torch``.

One program per packed row. Inputs and outputs are in the model's dtype; all
arithmetic is float32, and nothing is rounded between the residual add and the
LayerNorm (the torch path rounds the sum first, as eager PyTorch does). Imported
only when CUDA and Triton are present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _add_layer_norm_kernel(
    x_ptr, delta_ptr, sum_ptr, out_ptr, w_ptr, b_ptr, n_cols, eps,
    HAS_DELTA: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    offsets = row * n_cols + cols
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_DELTA:
        x += tl.load(delta_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        # The sum is stored rounded to the model's dtype, but normalised as computed, in float32.
        tl.store(sum_ptr + offsets, x.to(sum_ptr.dtype.element_ty), mask=mask)
    mean = tl.sum(x, axis=0) / n_cols
    centred = tl.where(mask, x - mean, 0.0)
    var = tl.sum(centred * centred, axis=0) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offsets, (centred * rstd * w + b).to(out_ptr.dtype.element_ty), mask=mask)


def add_layer_norm(x: Tensor, delta: Tensor | None, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """As ``kernels.add_layer_norm_torch``; x and delta (T, E) contiguous."""
    rows, cols = x.shape
    if not x.is_contiguous() or (delta is not None and (not delta.is_contiguous() or delta.shape != x.shape)):
        raise ValueError("add_layer_norm needs contiguous (T, E) x and delta of the same shape")
    total = x if delta is None else torch.empty_like(x)
    out = torch.empty_like(x)
    block = triton.next_power_of_2(cols)
    _add_layer_norm_kernel[(rows,)](
        x, x if delta is None else delta, total, out, weight, bias, cols, eps,
        HAS_DELTA=delta is not None, BLOCK=block, num_warps=min(16, max(1, block // 256)),
    )  # fmt: skip
    return total, out


@triton.jit
def _rotary_kernel(
    qkv_ptr, pos_ptr, cos_ptr, sin_ptr, q_ptr, k_ptr, qkv_stride,
    HEADS: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + row).to(tl.int64)
    heads = tl.arange(0, BLOCK_H)[:, None]
    dims = tl.arange(0, BLOCK_D)[None, :]
    mask = (heads < HEADS) & (dims < HALF)
    cos = tl.load(cos_ptr + pos * HALF + dims, mask=dims < HALF, other=0.0)  # (1, BLOCK_D) float32
    sin = tl.load(sin_ptr + pos * HALF + dims, mask=dims < HALF, other=0.0)
    within = heads * (2 * HALF) + dims  # first half of each head; the second is + HALF
    src = qkv_ptr + row * qkv_stride + within
    dst = row * (HEADS * 2 * HALF) + within
    # q: x1 * cos - x2 * sin | x2 * cos + x1 * sin, as rotate_half
    x1 = tl.load(src, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(src + HALF, mask=mask, other=0.0).to(tl.float32)
    tl.store(q_ptr + dst, (x1 * cos - x2 * sin).to(q_ptr.dtype.element_ty), mask=mask)
    tl.store(q_ptr + dst + HALF, (x2 * cos + x1 * sin).to(q_ptr.dtype.element_ty), mask=mask)
    # k, E = HEADS * 2 * HALF further along the row
    src += HEADS * 2 * HALF
    x1 = tl.load(src, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(src + HALF, mask=mask, other=0.0).to(tl.float32)
    tl.store(k_ptr + dst, (x1 * cos - x2 * sin).to(k_ptr.dtype.element_ty), mask=mask)
    tl.store(k_ptr + dst + HALF, (x2 * cos + x1 * sin).to(k_ptr.dtype.element_ty), mask=mask)


def rotary(qkv: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """As ``kernels.rotary_torch``; qkv (T, 3E) with unit stride along E."""
    total, width = qkv.shape
    embed_dim = width // 3
    head_dim = embed_dim // heads
    half = head_dim // 2
    if qkv.stride(1) != 1 or not (cos.is_contiguous() and sin.is_contiguous()) or cos.shape[1] != half:
        raise ValueError("rotary needs qkv with unit stride along its width and contiguous (P, D / 2) tables")
    q = torch.empty(total, heads, head_dim, dtype=qkv.dtype, device=qkv.device)
    k = torch.empty_like(q)
    v = qkv[:, 2 * embed_dim :].view(total, heads, head_dim)
    block_h, block_d = triton.next_power_of_2(heads), triton.next_power_of_2(half)
    _rotary_kernel[(total,)](
        qkv, positions, cos, sin, q, k, qkv.stride(0),
        HEADS=heads, HALF=half, BLOCK_H=block_h, BLOCK_D=block_d, num_warps=4,
    )  # fmt: skip
    return q, k, v
