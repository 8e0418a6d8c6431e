"""Triton kernel: a gated linear unit's matmul with its GELU(gate) * value in the epilogue.

``gated_linear(x, weight)`` is ``kernels.gated_linear_torch(x, weight)`` without the (T, 2I)
product ever reaching memory: each program multiplies one (BLOCK_M, K) tile of ``x`` by the
matching BLOCK_N rows of the gate half and of the value half of ``weight``, in two float32
accumulators, and writes GELU(gate) * value rounded once. cuBLAS has no gated epilogue; the
unfused form writes the (T, 2I) product and reads it back, 15 % of DNABERT-S's forward at
memory bandwidth (``benchmarks/results/device_2026-12-07b.md``).

float32 operands multiply as ``F.linear`` does: in full float32 unless torch allows TF32
(``torch.backends.cuda.matmul.allow_tf32``). Operands are read through TMA descriptors (Hopper's
bulk copies; rows past T and columns past I read as zero, stores past them are dropped), which
need 16-byte aligned rows: K and I multiples of 8, else plain pointer loads. Imported only when
CUDA and Triton are present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.tools.tensor_descriptor import TensorDescriptor

#: (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) and the kernel variant (``VARIANTS``), the fastest of
#: ``benchmarks/gated_linear.py``'s on an H200 (``benchmarks/results/device_2026-12-07c.md``).
CONFIG = (128, 64, 64, 4, 3)
VARIANT = "tma"
#: "tma": operands through TMA descriptors; "ptr": plain pointer loads, for any shape (taken whenever K or I
#: is not a multiple of 8). On an H200 at 131,072 tokens TMA took 2.42 ms, pointers 2.71.
VARIANTS = ("tma", "ptr")
#: Programs sharing one band of x rows run together, so the band is read from L2, not memory, by all.
_GROUP_M = 8


@triton.jit
def _tile(pid, m, n, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """The (row, column) offsets of program ``pid``'s output tile, grouped GROUP_M row tiles at a time."""
    tiles_m, tiles_n = tl.cdiv(m, BLOCK_M), tl.cdiv(n, BLOCK_N)
    group = GROUP_M * tiles_n
    first = (pid // group) * GROUP_M
    size = tl.minimum(tiles_m - first, GROUP_M)
    return (first + (pid % group) % size) * BLOCK_M, ((pid % group) // size) * BLOCK_N


@triton.jit
def _gelu_times(gate, value, TANH: tl.constexpr):
    # Constants inline: a @triton.jit function reads no plain module globals. sqrt(2 / pi), sqrt(1 / 2).
    if TANH:
        inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
        return gate * tl.sigmoid(2.0 * inner) * value  # 0.5 * (1 + tanh(u)) == sigmoid(2u)
    return 0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476)) * value


@triton.jit
def _gated_linear_kernel(
    x_desc,
    gate_desc,
    value_desc,
    out_desc,
    m,
    n,
    k,
    TANH: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    row, col = _tile(tl.program_id(0), m, n, BLOCK_M, BLOCK_N, GROUP_M)
    gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    value = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in tl.range(0, k, BLOCK_K, num_stages=NUM_STAGES):
        a = x_desc.load([row, kk])
        gate = tl.dot(a, gate_desc.load([col, kk]).T, gate, input_precision=PRECISION)
        value = tl.dot(a, value_desc.load([col, kk]).T, value, input_precision=PRECISION)
    out_desc.store([row, col], _gelu_times(gate, value, TANH).to(out_desc.dtype))


@triton.jit
def _gated_linear_ptr_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    m,
    n,
    k,
    TANH: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    row, col = _tile(tl.program_id(0), m, n, BLOCK_M, BLOCK_N, GROUP_M)
    rows = row + tl.arange(0, BLOCK_M)
    cols = col + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + rows[:, None].to(tl.int64) * k + ks[None, :]
    g_ptrs = w_ptr + cols[None, :].to(tl.int64) * k + ks[:, None]  # (BLOCK_K, BLOCK_N) of weight.T
    v_ptrs = g_ptrs + n.to(tl.int64) * k
    row_ok, col_ok = rows[:, None] < m, cols[None, :] < n
    gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    value = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in tl.range(0, k, BLOCK_K, num_stages=NUM_STAGES):
        k_ok = ks + kk < k
        a = tl.load(x_ptrs, mask=row_ok & k_ok[None, :], other=0.0)
        gate = tl.dot(a, tl.load(g_ptrs, mask=col_ok & k_ok[:, None], other=0.0), gate, input_precision=PRECISION)
        value = tl.dot(a, tl.load(v_ptrs, mask=col_ok & k_ok[:, None], other=0.0), value, input_precision=PRECISION)
        x_ptrs += BLOCK_K
        g_ptrs += BLOCK_K
        v_ptrs += BLOCK_K
    result = _gelu_times(gate, value, TANH).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * n + cols[None, :], result, mask=row_ok & col_ok)


def gated_linear(
    x: Tensor, weight: Tensor, approximate: str, config: tuple[int, ...] = CONFIG, variant: str = VARIANT
) -> Tensor:
    """As ``kernels.gated_linear_torch``: x (T, K), weight (2I, K), both contiguous, same dtype => (T, I)."""
    if x.ndim != 2 or weight.ndim != 2 or weight.shape[0] % 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"gated_linear needs x (T, K) and weight (2I, K), got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if x.dtype != weight.dtype:
        raise ValueError(f"gated_linear needs x and weight in one dtype, got {x.dtype} and {weight.dtype}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r} is unknown; choose 'none' (erf) or 'tanh'")
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is unknown; choose one of {VARIANTS}")
    x, weight = x.contiguous(), weight.contiguous()
    (m, k), n = x.shape, weight.shape[0] // 2
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if not m:
        return out
    block_m, block_n, block_k, warps, stages = config
    grid = (triton.cdiv(m, block_m) * triton.cdiv(n, block_n),)
    tf32 = x.dtype != torch.float32 or torch.backends.cuda.matmul.allow_tf32
    meta = dict(
        TANH=approximate == "tanh", PRECISION="tf32" if tf32 else "ieee", BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_K=block_k, GROUP_M=_GROUP_M, NUM_STAGES=stages, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    if variant == "ptr" or k % 8 or n % 8:
        _gated_linear_ptr_kernel[grid](x, weight, out, m, n, k, **meta)
        return out
    descs = (
        TensorDescriptor.from_tensor(x, [block_m, block_k]),
        TensorDescriptor.from_tensor(weight[:n], [block_n, block_k]),
        TensorDescriptor.from_tensor(weight[n:], [block_n, block_k]),
        TensorDescriptor.from_tensor(out, [block_m, block_n]),
    )
    _gated_linear_kernel[grid](*descs, m, n, k, **meta)
    return out
