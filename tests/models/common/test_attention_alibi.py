"""ALiBi: slopes and the reference backend against DNABERT-S's own code (vendored in tests/reference/dnabert_s)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from esm_reference import diff
from reference.dnabert_s import bert_layers
from reference.dnabert_s.bert_padding import unpad_input
from reference.dnabert_s.configuration_bert import BertConfig
from test_kernels_gpu import assert_within_one_rounding

from virnucpro.models.common import ALIBI_BACKENDS, alibi_slopes, select_attention
from virnucpro.models.common.attention import reference_attention

# Around nothing, one and two of the kernels' 64-row tiles, and DNABERT-S's longer inputs.
LENGTHS = [1, 2, 37, 63, 64, 65, 129, 600]


def dnabert_s_slopes_and_bias(heads: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(heads,) slopes and the (1, heads, size, size) float32 ALiBi bias, from DNABERT-S's
    ``BertEncoder.rebuild_alibi_tensor``, which needs only ``num_attention_heads`` of its module
    (its ``_get_alibi_head_slopes`` is local to it: the slopes are read back as -bias[h, 0, 1])."""
    encoder = SimpleNamespace(num_attention_heads=heads)
    bert_layers.BertEncoder.rebuild_alibi_tensor(encoder, size=max(size, 2))
    return -encoder.alibi[0, :, 0, 1], encoder.alibi[:, :, :size, :size]


def dnabert_s_attention(qkv: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """DNABERT-S's PyTorch attention path (``BertUnpadSelfAttention`` with its ``Wqkv`` taken out),
    fed padded (B, L, 3 × H × D) q | k | v and a (B, L) int mask, with the bias that
    ``BertEncoder.forward`` builds: padding keys at -10000, plus ALiBi. Returns (T, H, D) packed."""
    batch, size, width = qkv.shape
    assert bert_layers.flash_attn_qkvpacked_func is None, "the reference must take its PyTorch path"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unable to import Triton; defaulting ... to pytorch": as intended
        attention = bert_layers.BertUnpadSelfAttention(BertConfig(hidden_size=width // 3, num_attention_heads=heads))
    attention.Wqkv = torch.nn.Identity()
    attention.eval()
    packed, indices, cu_seqlens, max_seqlen = unpad_input(qkv, mask)
    extended = (1.0 - mask[:, None, None, :].to(torch.float32)) * -10000.0
    bias = extended + dnabert_s_slopes_and_bias(heads, size)[1]
    out = attention(packed, cu_seqlens, max_seqlen, indices, mask, bias)  # (T, H × D)
    return out.view(out.shape[0], heads, -1)


def packed_inputs(lengths: list[int], heads: int, head_dim: int, seed: int):
    """Padded (B, L, 3 × H × D) float64 q | k | v with an int mask, and the same packed as (T, H, D)
    q, k, v with int32 cu_seqlens; scores of a few units, as in a trained model."""
    g = torch.Generator().manual_seed(seed)
    size = max(lengths)
    qkv = torch.randn(len(lengths), size, 3 * heads * head_dim, dtype=torch.float64, generator=g)
    qkv[..., : 2 * heads * head_dim] *= 2 / head_dim**0.25
    mask = (torch.arange(size)[None, :] < torch.tensor(lengths)[:, None]).to(torch.int64)
    packed, _, cu_seqlens, _ = unpad_input(qkv, mask)
    q, k, v = packed.view(-1, 3, heads, head_dim).unbind(1)
    return qkv, mask, (q, k, v), cu_seqlens


@pytest.mark.parametrize("heads", list(range(1, 33)))
def test_slopes_are_dnabert_s_slopes(heads):
    want = dnabert_s_slopes_and_bias(heads, 2)[0]
    got = alibi_slopes(heads)
    assert got.dtype == torch.float32 and got.shape == (heads,)
    assert torch.equal(got, want), f"{heads} heads: {got.tolist()} vs DNABERT-S {want.tolist()}"


def test_twelve_head_slopes_are_the_documented_powers_of_two():
    exponents = [-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5]
    assert torch.equal(alibi_slopes(12), torch.tensor([2.0**e for e in exponents], dtype=torch.float32))


@pytest.mark.parametrize("bad", [0, -3, 12.0, True, "12"])
def test_slopes_refuse_a_head_count_that_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        alibi_slopes(bad)


@pytest.mark.parametrize("heads", [1, 5, 8, 12])
def test_reference_with_alibi_equals_dnabert_s_attention(heads):
    head_dim = 16
    qkv, mask, (q, k, v), cu_seqlens = packed_inputs(LENGTHS, heads, head_dim, seed=heads)
    want = dnabert_s_attention(qkv, mask, heads)  # divides its scores by sqrt(D): ours takes q scaled
    got = reference_attention(q * head_dim**-0.5, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=alibi_slopes(heads))
    mx, mean = diff(got, want)
    assert mx <= 1e-12, f"{heads} heads: reference vs DNABERT-S attention: max abs diff {mx:.1e}, mean {mean:.1e}"
    # The bias matters here: without it the same inputs give another answer.
    mx, _ = diff(reference_attention(q * head_dim**-0.5, k, v, cu_seqlens, max(LENGTHS)), want)
    assert mx > 1e-3, f"{heads} heads: attention without ALiBi within {mx:.1e} of DNABERT-S's"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_reference_with_alibi_rounds_only_its_output_in_half_precision(dtype):
    """The bias (up to 300 here) and the softmax stay in float32: only the output is rounded."""
    heads, head_dim = 12, 64
    _, _, (q, k, v), cu_seqlens = packed_inputs(LENGTHS, heads, head_dim, seed=1)
    q, k, v = (t.to(dtype) for t in (q * head_dim**-0.5, k, v))
    slopes = alibi_slopes(heads)
    got = reference_attention(q, k, v, cu_seqlens, max(LENGTHS), alibi_slopes=slopes)
    want = reference_attention(q.double(), k.double(), v.double(), cu_seqlens, max(LENGTHS), alibi_slopes=slopes)
    assert got.dtype == dtype
    assert_within_one_rounding(got, want.to(dtype), dtype, f"reference attention with ALiBi in {dtype}")


def test_reference_refuses_slopes_of_the_wrong_shape_or_dtype():
    q = torch.randn(10, 4, 8)
    cu_seqlens = torch.tensor([0, 4, 10], dtype=torch.int32)
    for slopes in (alibi_slopes(3), alibi_slopes(4).double(), alibi_slopes(8)[::2]):
        with pytest.raises(ValueError, match=r"alibi_slopes must be contiguous \(4,\) float32"):
            reference_attention(q, q, q, cu_seqlens, 6, alibi_slopes=slopes)


def test_selection_for_alibi_never_gives_torch_varlen():
    with pytest.raises(ValueError, match=r"'torch-varlen' \(CLI: --attention torch-varlen\) cannot add the ALiBi bias"):
        select_attention("torch-varlen", "cuda", torch.bfloat16, alibi=True)
    # Here, on a machine without flash-attn or triton, "auto" would otherwise choose torch-varlen.
    assert select_attention("auto", "cuda", torch.bfloat16, alibi=True)[0] in ALIBI_BACKENDS
    assert select_attention("auto", "cpu", torch.float32, alibi=True)[0] == "reference"
    assert select_attention("reference", "cpu", torch.bfloat16, alibi=True)[0] == "reference"
