"""Attention backends: selection rules and the reference backend's numbers."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_esm2
from esm_reference import diff

from virnucpro.models import ForwardOptions, PackedESM2, select_attention
from virnucpro.models.common.attention import reference_attention


def test_auto_picks_reference_on_cpu():
    assert PackedESM2(tiny_esm2(1, 32, 2)).options.attention == "reference"
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert select_attention("auto", "cpu", dtype)[0] == "reference"


@pytest.mark.parametrize("name", ["triton", "torch-varlen", "flash-attn"])
def test_gpu_kernels_refuse_the_cpu(name):
    with pytest.raises(ValueError, match="runs only on CUDA"):
        PackedESM2(tiny_esm2(1, 32, 2), dtype=torch.bfloat16, options=ForwardOptions(attention=name))


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match=r"attention \(CLI: --attention\) must be .*, got 'sdpa'"):
        select_attention("sdpa", "cpu", torch.float32)


def test_reference_equals_dense_attention_with_a_block_diagonal_mask():
    torch.manual_seed(0)
    lengths = torch.tensor([5, 1, 12, 7])
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    total, heads, head_dim = int(lengths.sum()), 3, 8
    q, k, v = torch.randn(3, total, heads, head_dim, dtype=torch.float64).unbind(0)

    seq = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    scores = torch.einsum("thd,shd->hts", q, k).masked_fill(seq[:, None] != seq[None, :], float("-inf"))
    expected = torch.einsum("hts,shd->thd", scores.softmax(-1), v)

    mx, mean = diff(reference_attention(q, k, v, cu_seqlens, int(lengths.max())), expected)
    assert mx <= 1e-12, f"reference vs dense block-diagonal attention: max abs diff {mx:.1e}, mean {mean:.1e}"
