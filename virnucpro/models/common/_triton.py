"""Triton kernels: ``kernels.add_layer_norm_torch``, ``kernels.rotary_torch`` and varlen attention.

The elementwise kernels run one program per packed row. Inputs and outputs are in the
model's dtype; all arithmetic is float32, and nothing is rounded between the residual
add and the LayerNorm (the torch path rounds the sum first, as eager PyTorch does).
``varlen_attention`` is the "triton" attention backend. Imported only when CUDA and
Triton are present.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .alibi import check_alibi_slopes


@triton.jit
def row_offsets(n_cols, BLOCK: tl.constexpr):
    """(row, cols, mask, offsets) of this program's row of a contiguous (T, n_cols) tensor."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    return row, cols, cols < n_cols, row * n_cols + cols


@triton.jit
def add_layer_norm_row(
    x_ptr, delta_ptr, sum_ptr, w_ptr, b_ptr, offsets, cols, mask, n_cols, eps, HAS_DELTA: tl.constexpr,
):  # fmt: skip
    """One row's LayerNorm(x + delta) in float32 registers (0 where ``mask`` is off); the sum is stored.

    Shared by ``_add_layer_norm_kernel`` and ``_triton_fp8``'s quantising LayerNorm.
    """
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_DELTA:
        x += tl.load(delta_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        # The sum is stored in x's dtype (rounded, unless the residual stream is float32), but
        # normalised as computed, in float32.
        tl.store(sum_ptr + offsets, x.to(sum_ptr.dtype.element_ty), mask=mask)
    mean = tl.sum(x, axis=0) / n_cols
    centred = tl.where(mask, x - mean, 0.0)
    var = tl.sum(centred * centred, axis=0) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    return centred * rstd * w + b


@triton.jit
def _add_layer_norm_kernel(
    x_ptr, delta_ptr, sum_ptr, out_ptr, w_ptr, b_ptr, n_cols, eps,
    HAS_DELTA: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    _, cols, mask, offsets = row_offsets(n_cols, BLOCK)
    y = add_layer_norm_row(x_ptr, delta_ptr, sum_ptr, w_ptr, b_ptr, offsets, cols, mask, n_cols, eps, HAS_DELTA)
    tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


def check_rows(x: Tensor, delta: Tensor | None) -> None:
    """The row kernels index rows as ``row * n_cols``: x, and delta if given, contiguous (T, E) of one shape."""
    if (
        x.ndim != 2
        or not x.is_contiguous()
        or (delta is not None and (not delta.is_contiguous() or delta.shape != x.shape))
    ):
        raise ValueError("the row kernels need contiguous (T, E) x and delta of the same shape")


def add_layer_norm(
    x: Tensor, delta: Tensor | None, weight: Tensor, bias: Tensor, eps: float, out_dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """As ``kernels.add_layer_norm_torch``; x and delta (T, E) contiguous, of any float dtypes."""
    check_rows(x, delta)
    rows, cols = x.shape
    total = x if delta is None else torch.empty_like(x)
    out = torch.empty_like(x, dtype=out_dtype)
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


# Measured on the H200 against FlashAttention-2 (torch-varlen), ESM-2 head dim 64, the real
# packed batches: 64 × 64 tiles, 4 warps and 3 pipeline stages were fastest, or within 1.1 %, of 11
# configurations (benchmarks/results/attention_tuning.jsonl).
_ATTENTION_BLOCK_M, _ATTENTION_BLOCK_N, _ATTENTION_WARPS, _ATTENTION_STAGES = 64, 64, 4, 3


# num_seqs only bounds the grid: left unspecialised, one compiled kernel serves every batch
# (Triton would otherwise compile one for 1, one for multiples of 16 and one for the rest).
@triton.jit(do_not_specialize=["num_seqs"])
def _varlen_attention_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, cu_ptr, block_seq_ptr, block_first_ptr, slopes_ptr,
    q_stride, k_stride, v_stride, out_stride, num_seqs,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_ALIBI: tl.constexpr,
):  # fmt: skip
    # Program (b, h): query block b of the batch (block b - block_first[s] of sequence
    # s = block_seq[b]) against all keys of that sequence, for head h. Online softmax in
    # base 2, float32 accumulation; probabilities are rounded to the input dtype for the
    # second product, as FlashAttention does. With HAS_ALIBI, the score of row i against
    # column j (positions in the sequence) gets -slopes[h] * |i - j|, in float32; without it
    # slopes_ptr is never read and the bias is compiled out.
    block = tl.program_id(0)
    head = tl.program_id(1)
    seq = tl.load(block_seq_ptr + block)
    if seq >= num_seqs:  # the grid is an upper bound on the number of query blocks
        return
    start = tl.load(cu_ptr + seq)
    length = tl.load(cu_ptr + seq + 1) - start
    rows = (block - tl.load(block_first_ptr + seq)) * BLOCK_M + tl.arange(0, BLOCK_M)  # positions in the sequence
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < HEAD_DIM
    dtype = out_ptr.dtype.element_ty

    row_mask = (rows < length)[:, None] & dim_ok[None, :]
    q = tl.load(
        q_ptr + (start + rows).to(tl.int64)[:, None] * q_stride + head * HEAD_DIM + dims[None, :], mask=row_mask
    )
    if HAS_ALIBI:
        slope = tl.load(slopes_ptr + head)  # float32
        row_at = rows.to(tl.float32)  # positions below 2^24: exact, and so is every |i - j|
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for first in range(0, length, BLOCK_N):
        cols = first + tl.arange(0, BLOCK_N)
        col_ok = cols < length
        col_mask = col_ok[:, None] & dim_ok[None, :]
        at = (start + cols).to(tl.int64)[:, None]
        k = tl.load(k_ptr + at * k_stride + head * HEAD_DIM + dims[None, :], mask=col_mask, other=0.0)
        v = tl.load(v_ptr + at * v_stride + head * HEAD_DIM + dims[None, :], mask=col_mask, other=0.0)
        scores = tl.dot(q, tl.trans(k))  # (BLOCK_M, BLOCK_N) float32; q is already scaled
        if HAS_ALIBI:
            scores -= slope * tl.abs(row_at[:, None] - cols.to(tl.float32)[None, :])
        scores = tl.where(col_ok[None, :], scores * 1.4426950408889634, float("-inf"))  # × log2(e)
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        p = tl.math.exp2(scores - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(dtype), v, acc * alpha[:, None])
        m_i = m_new
    out_at = out_ptr + (start + rows).to(tl.int64)[:, None] * out_stride + head * HEAD_DIM + dims[None, :]
    tl.store(out_at, (acc / l_i[:, None]).to(dtype), mask=row_mask)


def varlen_attention(
    q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, max_seqlen: int, *, alibi_slopes: Tensor | None = None
) -> Tensor:
    """``attention.AttentionFn`` for CUDA in float16/bfloat16: FlashAttention's algorithm, one
    program per (64-row query block, head), every block within one sequence.

    q, k, v: (T, H, D) with rows of H × D elements at any stride (v may be a view of the
    fused QKV projection). alibi_slopes: None or (H,) float32 on q's device (ALiBi, see
    ``attention``). Returns (T, H, D) contiguous. Never synchronises with the host.
    """
    total, heads, head_dim = q.shape
    for t in (q, k, v):
        if t.stride(2) != 1 or t.stride(1) != head_dim:
            raise ValueError("varlen_attention needs q, k, v of (T, H, D) with contiguous H × D rows")
    if alibi_slopes is not None:
        check_alibi_slopes(alibi_slopes, q)
    out = torch.empty(total, heads, head_dim, dtype=q.dtype, device=q.device)
    num_seqs = cu_seqlens.numel() - 1
    # Number the query blocks of all sequences in order, on the device: the grid is sized
    # by an upper bound known on the host, and programs past the last block return at once.
    blocks = (cu_seqlens.diff() + _ATTENTION_BLOCK_M - 1) // _ATTENTION_BLOCK_M  # (N,)
    ends = blocks.cumsum(0)
    grid_blocks = max(
        1, min(total // _ATTENTION_BLOCK_M + num_seqs, num_seqs * triton.cdiv(max_seqlen, _ATTENTION_BLOCK_M))
    )
    block_seq = torch.searchsorted(ends, torch.arange(grid_blocks, device=q.device), right=True)
    _varlen_attention_kernel[(grid_blocks, heads)](
        q, k, v, out, cu_seqlens, block_seq, ends - blocks, q if alibi_slopes is None else alibi_slopes,
        q.stride(0), k.stride(0), v.stride(0), out.stride(0), num_seqs,
        HEAD_DIM=head_dim, BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        BLOCK_M=_ATTENTION_BLOCK_M, BLOCK_N=_ATTENTION_BLOCK_N, HAS_ALIBI=alibi_slopes is not None,
        num_warps=_ATTENTION_WARPS, num_stages=_ATTENTION_STAGES,
    )  # fmt: skip
    return out
