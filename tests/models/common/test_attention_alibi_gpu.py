"""ALiBi in the CUDA attention backends, against exact float32 attention with the same bias.

The reference backend's ALiBi is checked against DNABERT-S's own attention on the CPU
(``test_attention_alibi.py``); here it is the exact answer the kernels are measured against.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda, requires_flash_attn
from test_kernels_gpu import ATTENTION_TOLERANCE, HALF_DTYPES, assert_within_one_rounding, exact_attention_error

from virnucpro.models.common import alibi_slopes, select_attention
from virnucpro.models.common.alibi import alibi_bias
from virnucpro.models.common.attention import reference_attention

pytestmark = [pytest.mark.gpu, requires_cuda]

# Lengths around the 64-row tiles, a lone token, and a long input.
LENGTHS = [1, 2, 63, 64, 65, 128, 129, 1024, 300, 7]
BACKENDS_WITH_ALIBI = [
    "triton",
    pytest.param("flash-attn", marks=requires_flash_attn),
]


def packed_qkv(dtype: torch.dtype, heads: int, head_dim: int, seed: int):
    """q, k, v (T, H, D) in ``dtype`` on CUDA and int32 cu_seqlens for LENGTHS; scores of a few
    units, as in a trained model; v a strided view, as a model's fused QKV projection gives it."""
    cu_seqlens = F.pad(torch.tensor(LENGTHS).cumsum(0), (1, 0)).to(device="cuda", dtype=torch.int32)
    total = sum(LENGTHS)
    g = torch.Generator("cuda").manual_seed(seed)
    q = (2 * torch.randn(total, heads, head_dim, device="cuda", generator=g) / head_dim**0.25).to(dtype)
    k = (2 * torch.randn(total, heads, head_dim, device="cuda", generator=g) / head_dim**0.25).to(dtype)
    v = torch.randn(total, 2, heads, head_dim, device="cuda", generator=g).to(dtype)[:, 1]
    return q, k, v, cu_seqlens


def flash_rounding_attention(q, k, v, cu_seqlens, slopes) -> torch.Tensor:
    """Attention with ALiBi that rounds where FlashAttention rounds and nowhere else: float32
    scores plus bias, probabilities exp(s - max) rounded to q's dtype for the product with v,
    float32 sums, the output rounded to q's dtype. Its error against exact attention is the
    error a FlashAttention-style kernel is built to have (for ALiBi, torch-varlen's
    FlashAttention-2 cannot serve as this low-precision reference)."""
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for start, end in zip(bounds[:-1], bounds[1:]):
        q_, k_, v_ = (t[start:end].transpose(0, 1).float() for t in (q, k, v))  # (H, L, D)
        scores = q_ @ k_.transpose(1, 2) + alibi_bias(slopes, end - start)  # (H, L, L)
        p = (scores - scores.amax(-1, keepdim=True)).exp()
        weighted = p.to(q.dtype).float() @ v_ / p.sum(-1, keepdim=True)  # (H, L, D)
        out[start:end] = weighted.transpose(0, 1).to(q.dtype)
    return out


@pytest.mark.parametrize("backend", BACKENDS_WITH_ALIBI)
@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("heads,head_dim", [(12, 64), (12, 24), (5, 128), (5, 16)])  # DNABERT-S: 12 × 64
def test_alibi_attention_matches_exact_attention(backend, dtype, heads, head_dim):
    q, k, v, cu_seqlens = packed_qkv(dtype, heads, head_dim, seed=heads * head_dim)
    slopes = alibi_slopes(heads).cuda()
    _, attend = select_attention(backend, "cuda", dtype, alibi=True)
    out = attend(q, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=slopes)
    assert out.shape == q.shape and out.dtype == dtype
    error = exact_attention_error(out, q, k, v, cu_seqlens, alibi_slopes=slopes)
    floor = exact_attention_error(flash_rounding_attention(q, k, v, cu_seqlens, slopes), q, k, v, cu_seqlens, slopes)
    without = exact_attention_error(attend(q, k, v, cu_seqlens, max(LENGTHS)), q, k, v, cu_seqlens, slopes)
    print(f"\n{backend} with ALiBi, {dtype}, {heads} × {head_dim}: max relative error {error:.2e}")
    print(f"FlashAttention's roundings alone: {floor:.2e}; the same kernel without the bias: {without:.2e}")
    assert error <= ATTENTION_TOLERANCE[dtype], f"{backend}: {error:.2e} > {ATTENTION_TOLERANCE[dtype]:.2e}"
    # flash-attn's own tests allow twice the error of a low-precision reference.
    assert error <= 2 * floor, f"{backend}: {error:.2e} > 2 × {floor:.2e} (FlashAttention's roundings alone)"
    assert without > 10 * ATTENTION_TOLERANCE[dtype], f"{backend}: the bias changed little ({without:.2e})"


def test_triton_alibi_with_zero_slopes_is_attention_without_bias():
    """The bias is the only change the flag makes: with zero slopes, every bit is the same."""
    q, k, v, cu_seqlens = packed_qkv(torch.bfloat16, 12, 64, seed=0)
    _, attend = select_attention("triton", "cuda", torch.bfloat16, alibi=True)
    plain = attend(q, k, v, cu_seqlens, max(LENGTHS))
    zero = attend(q, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=torch.zeros(12, device="cuda"))
    d = (plain.float() - zero.float()).abs()
    assert torch.equal(plain, zero), f"max abs diff {d.max().item():.3g}, mean {d.mean().item():.3g}"


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_reference_alibi_on_cuda_matches_the_cpu_in_float64(dtype):
    """The exact answer above, on the GPU, is one rounding of float64 attention computed on the CPU."""
    q, k, v, cu_seqlens = packed_qkv(dtype, 12, 64, seed=1)
    slopes = alibi_slopes(12)
    got = reference_attention(q, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=slopes.cuda())
    q64, k64, v64 = (t.cpu().double() for t in (q, k, v))
    want = reference_attention(q64, k64, v64, cu_seqlens.cpu(), max(LENGTHS), alibi_slopes=slopes)
    assert_within_one_rounding(got.cpu(), want.to(dtype), dtype, f"reference with ALiBi on CUDA in {dtype}")


def test_torch_varlen_and_misplaced_slopes_are_refused():
    q, k, v, cu_seqlens = packed_qkv(torch.bfloat16, 12, 64, seed=2)
    slopes = alibi_slopes(12).cuda()
    _, varlen = select_attention("torch-varlen", "cuda", torch.bfloat16)
    with pytest.raises(
        ValueError,
        match=r"alibi_slopes: attention='torch-varlen' \(CLI: --attention torch-varlen\) cannot add an ALiBi bias",
    ):
        varlen(q, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=slopes)
    _, triton_attend = select_attention("triton", "cuda", torch.bfloat16, alibi=True)
    for wrong in (slopes.cpu(), slopes[:5], slopes.half()):
        with pytest.raises(ValueError, match=r"alibi_slopes must be contiguous \(12,\) float32 on cuda"):
            triton_attend(q, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=wrong)
