"""The gated linear unit's Triton kernel (matmul with GELU(gate) * value in its epilogue) against the
float32 product's GELU(gate) * value, rounded once."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from test_kernels_gpu import DTYPES, assert_within_one_rounding

from virnucpro.models.common.kernels import gated_gelu_torch, select_kernels

pytestmark = [pytest.mark.gpu, requires_cuda]

# (rows, K, I): DNABERT-S's 768 -> 3072 with a partial row tile; widths that leave partial column and
# K tiles (through TMA, and through plain pointers where a row is not 16-byte aligned); a lone row.
SHAPES = [(1001, 768, 3072), (257, 96, 1000), (131, 60, 20), (1, 768, 3072)]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("rows", "k", "width"), SHAPES)
def test_gated_linear_is_one_rounding_of_the_float32_unit(dtype, rows, k, width, approximate):
    g = torch.Generator("cuda").manual_seed(rows + width)
    x = torch.randn(rows, k, device="cuda", generator=g).to(dtype)
    weight = (2 * torch.randn(2 * width, k, device="cuda", generator=g) / k**0.5).to(dtype)
    got = select_kernels("triton", "cuda").gated_linear(x, weight, approximate)
    want = gated_gelu_torch(F.linear(x.float(), weight.float()), approximate).to(dtype)
    assert got.shape == (rows, width) and got.dtype == dtype and got.is_contiguous()
    assert_within_one_rounding(got, want, dtype, f"gated linear ({approximate}) {dtype} {rows}x{k}x{width}")


@pytest.mark.parametrize(("rows", "k", "width"), SHAPES[:2])
def test_the_pointer_variant_is_one_rounding_of_the_float32_unit_too(rows, k, width):
    """The kernel reads through plain pointers where TMA cannot (rows not 16-byte aligned): the same
    numbers at shapes TMA takes by default."""
    from virnucpro.models.common._triton_gated_linear import gated_linear  # imports triton: CUDA machines only

    g = torch.Generator("cuda").manual_seed(rows)
    x = torch.randn(rows, k, device="cuda", generator=g).bfloat16()
    weight = (2 * torch.randn(2 * width, k, device="cuda", generator=g) / k**0.5).bfloat16()
    got = gated_linear(x, weight, "none", variant="ptr")
    want = gated_gelu_torch(F.linear(x.float(), weight.float()), "none").bfloat16()
    assert_within_one_rounding(got, want, torch.bfloat16, f"gated linear through pointers, {rows}x{k}x{width}")


def test_gated_linear_refuses_an_odd_weight():
    with pytest.raises(ValueError, match=r"gated_linear needs x \(T, K\) and weight \(2I, K\)"):
        select_kernels("triton", "cuda").gated_linear(
            torch.zeros(4, 8, device="cuda"), torch.zeros(7, 8, device="cuda"), "none"
        )
