"""The gated-GELU Triton kernel against ``F.gelu(gate) * value`` computed in float32 and rounded once."""

from __future__ import annotations

import pytest
import torch
from conftest import requires_cuda
from test_kernels_gpu import DTYPES, assert_within_one_rounding

from virnucpro.models.common.kernels import gated_gelu_torch, select_kernels

pytestmark = [pytest.mark.gpu, requires_cuda]

# (rows, I): DNABERT-S's 3072, a width that leaves a partial column block, a lone row.
SHAPES = [(1001, 3072), (257, 1000), (1, 3072)]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("rows", "width"), SHAPES)
def test_gated_gelu_is_one_rounding_of_the_float32_product(dtype, rows, width, approximate):
    g = torch.Generator("cuda").manual_seed(rows + width)
    # Rows of a wider tensor: the kernel reads them at their stride, as it may get a view.
    wide = (2 * torch.randn(rows, 2 * width + 64, device="cuda", generator=g)).to(dtype)
    x = wide[:, : 2 * width]
    got = select_kernels("triton", "cuda").gated_gelu(x, approximate)
    want = gated_gelu_torch(x.float(), approximate).to(dtype)
    assert got.shape == (rows, width) and got.dtype == dtype and got.is_contiguous()
    assert_within_one_rounding(got, want, dtype, f"gated GELU ({approximate}) {dtype} {rows}x{width}")


def test_gated_gelu_refuses_an_odd_width():
    with pytest.raises(ValueError, match=r"gated_gelu needs \(T, 2I\) x"):
        select_kernels("triton", "cuda").gated_gelu(torch.zeros(4, 7, device="cuda"), "none")
