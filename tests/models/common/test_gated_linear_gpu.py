"""The gated linear unit's Triton kernel (matmul with GELU(gate) * value in its epilogue) against the unit
computed in float64: within one rounding to the output dtype plus what float32 accumulation may add."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from test_kernels_gpu import DTYPES, ulp

from virnucpro.models.common.kernels import gated_gelu_torch, select_kernels

pytestmark = [pytest.mark.gpu, requires_cuda]

#: max |GELU'(x)| over x, erf and tanh forms alike (1.129 at x = 1.41), rounded up.
GELU_SLOPE = 1.13

# (rows, K, I): DNABERT-S's 768 -> 3072 with a partial row tile; widths that leave partial column and
# K tiles (through TMA, and through plain pointers where a row is not 16-byte aligned); a lone row.
SHAPES = [(1001, 768, 3072), (257, 96, 1000), (131, 60, 20), (1, 768, 3072)]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("rows", "k", "width"), SHAPES)
def test_gated_linear_is_the_exact_unit_within_float32_accumulation_and_one_rounding(
    dtype, rows, k, width, approximate
):
    g = torch.Generator("cuda").manual_seed(rows + width)
    x = torch.randn(rows, k, device="cuda", generator=g).to(dtype)
    weight = (2 * torch.randn(2 * width, k, device="cuda", generator=g) / k**0.5).to(dtype)
    got = select_kernels("triton", "cuda").gated_linear(x, weight, approximate)
    assert got.shape == (rows, width) and got.dtype == dtype and got.is_contiguous()
    assert_within_accumulation(got, x, weight, approximate, f"gated linear ({approximate}) {dtype} {rows}x{k}x{width}")


@pytest.mark.parametrize(("rows", "k", "width"), SHAPES[:2])
def test_the_pointer_variant_keeps_the_same_bound(rows, k, width):
    """The kernel reads through plain pointers where TMA cannot (rows not 16-byte aligned): the same
    numbers at shapes TMA takes by default."""
    from virnucpro.models.common._triton_gated_linear import gated_linear  # imports triton: CUDA machines only

    g = torch.Generator("cuda").manual_seed(rows)
    x = torch.randn(rows, k, device="cuda", generator=g).bfloat16()
    weight = (2 * torch.randn(2 * width, k, device="cuda", generator=g) / k**0.5).bfloat16()
    got = gated_linear(x, weight, "none", variant="ptr")
    assert_within_accumulation(got, x, weight, "none", f"gated linear through pointers, {rows}x{k}x{width}")


def assert_within_accumulation(got: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, approximate: str, what: str):
    """``got`` against GELU(x @ gate.T) * (x @ value.T) in float64 from the same (rounded) inputs.

    The kernel sums K products in float32 in its own order (cuBLAS in another, so a float32
    reference would differ from both by as much): each product element is within
    gamma = K * 2^-24 * sum_i |x_i w_i| of exact (products of bf16 or fp16 values are exact in
    float32; float32 ones add one rounding each, inside the same bound). That error reaches the
    output through GELU(gate) * value to first order as GELU_SLOPE * gamma_gate * |value| +
    |GELU(gate)| * gamma_value; the float32 epilogue adds a few float32 roundings (8 eps32 of the
    result), and the output one rounding to its dtype.
    """
    x64, w64 = x.double(), weight.double()
    product, gamma = x64 @ w64.T, x.shape[1] * 2.0**-24 * (x64.abs() @ w64.abs().T)
    (gate, value), (gamma_gate, gamma_value) = product.chunk(2, dim=-1), gamma.chunk(2, dim=-1)
    gelu, want = F.gelu(gate, approximate=approximate), gated_gelu_torch(product, approximate)
    slack = (
        GELU_SLOPE * gamma_gate * (value.abs() + gamma_value)
        + (gelu.abs() + GELU_SLOPE * gamma_gate) * gamma_value
        + 8 * 2.0**-24 * want.abs()
        + ulp(want, got.dtype)
    )
    d = (got.double() - want).abs()
    excess = (d - slack).max().item()
    assert excess <= 0, (
        f"{what}: max abs diff {d.max().item():.3g} (mean {d.mean().item():.3g}) beyond the bound by {excess:.3g}"
    )


def test_gated_linear_refuses_an_odd_weight():
    with pytest.raises(ValueError, match=r"gated_linear needs x \(T, K\) and weight \(2I, K\)"):
        select_kernels("triton", "cuda").gated_linear(
            torch.zeros(4, 8, device="cuda"), torch.zeros(7, 8, device="cuda"), "none"
        )
