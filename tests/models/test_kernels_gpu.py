"""The Triton kernels against the torch path they replace, and inside the whole forward against fair-esm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda, tiny_esm2
from esm_reference import pack, padded_forward, sample_sequences

from virnucpro.models import PackedESM2
from virnucpro.models.kernels import add_layer_norm_torch, rotary_torch, select_kernels

pytestmark = [pytest.mark.gpu, requires_cuda]

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (embed dim, heads): tiny, esm2_t12_35M (head dim 24: half of it is not a power of two), 650M, 3B
SHAPES = [(64, 4), (480, 20), (1280, 20), (2560, 40)]


def ulp(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype`` at each value's magnitude (float32 input)."""
    exponent = torch.floor(torch.log2(values.abs().clamp_min(torch.finfo(dtype).tiny)))
    return torch.exp2(exponent) * torch.finfo(dtype).eps


def assert_within_one_rounding(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """got and want were rounded to ``dtype`` from float32 values computed in another order:
    they may differ by one unit in the last place of ``dtype``, plus float32 noise."""
    got, want = got.float(), want.float()
    slack = ulp(want, dtype) + 1e-6 * want.abs().max()
    excess = ((got - want).abs() - slack).max().item()
    assert excess <= 0, f"{what}: max abs diff {(got - want).abs().max().item():.3g} beyond one {dtype} ulp"


@pytest.fixture(scope="module")
def triton_kernels():
    return select_kernels("triton", "cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("embed_dim", [e for e, _ in SHAPES])
@pytest.mark.parametrize("with_delta", [True, False], ids=["add+norm", "norm"])
def test_add_layer_norm_matches_torch(triton_kernels, dtype, embed_dim, with_delta):
    g = torch.Generator("cuda").manual_seed(embed_dim)
    x = (3 * torch.randn(1001, embed_dim, device="cuda", generator=g) + 1).to(dtype)
    delta = torch.randn(1001, embed_dim, device="cuda", generator=g).to(dtype) if with_delta else None
    weight = torch.randn(embed_dim, device="cuda", generator=g).to(dtype)
    bias = torch.randn(embed_dim, device="cuda", generator=g).to(dtype)
    total, normed = triton_kernels.add_layer_norm(x, delta, weight, bias, 1e-5)
    # The sum, as the torch path rounds it; the LayerNorm of the unrounded sum, in float32.
    want_total = add_layer_norm_torch(x, delta, weight, bias, 1e-5)[0]
    exact = x.float() if delta is None else x.float() + delta.float()
    want_normed = F.layer_norm(exact, (embed_dim,), weight.float(), bias.float(), 1e-5).to(dtype)
    assert torch.equal(total, want_total), "the residual sum is one rounding of x + delta in both"
    assert_within_one_rounding(normed, want_normed, dtype, "LayerNorm")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("embed_dim,heads", SHAPES)
def test_rotary_matches_torch(triton_kernels, dtype, embed_dim, heads):
    g = torch.Generator("cuda").manual_seed(heads)
    lengths = [1, 2, 1024, 37, 600]
    positions = torch.cat([torch.arange(n) for n in lengths]).to(device="cuda", dtype=torch.int32)
    qkv = torch.randn(positions.numel(), 3 * embed_dim, device="cuda", generator=g).to(dtype)
    head_dim = embed_dim // heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device="cuda") / head_dim))
    angles = torch.arange(max(lengths), device="cuda", dtype=torch.float32)[:, None] * inv_freq
    args = (qkv, positions, angles.cos(), angles.sin(), heads)
    (q, k, v), (want_q, want_k, want_v) = triton_kernels.rotary(*args), rotary_torch(*args)
    assert_within_one_rounding(q, want_q, dtype, "rotated q")
    assert_within_one_rounding(k, want_k, dtype, "rotated k")
    assert torch.equal(v, want_v)
    assert q.is_contiguous() and k.is_contiguous() and q.shape == (positions.numel(), heads, head_dim)


def test_triton_forward_matches_fair_esm_at_every_layer_in_float32(batch_converter):
    """float32 on the GPU with exact attention: the Triton path and its (x, delta) residual carry
    against fair-esm's padded forward, every layer, as the CPU test does for the torch path."""
    torch.manual_seed(0)
    model = tiny_esm2(4, 64, 4).cuda()
    sequences = sample_sequences(12, seed=3, long=True)
    packed = PackedESM2(model, attention="reference", kernels="triton", gelu="exact")
    assert packed.kernels == "triton"
    layers = list(range(model.num_layers + 1))
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    got = packed(input_ids.cuda(), cu_seqlens.cuda(), max_seqlen, repr_layers=layers)["representations"]
    want = padded_forward(model, batch_converter, sequences, layers)
    for layer in layers:
        diff = (got[layer] - torch.cat(want[layer]).cuda()).abs().max().item()
        assert diff <= 1e-5, f"layer {layer}: max abs diff {diff:.3g}"
