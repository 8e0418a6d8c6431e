"""The Triton kernels against the torch path they replace and against fair-esm; inside the forward against fair-esm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda, tiny_esm2
from esm.rotary_embedding import RotaryEmbedding
from esm_reference import pack, padded_forward, sample_sequences

from virnucpro.models import ForwardOptions, PackedESM2
from virnucpro.models.common.attention import reference_attention, select_attention
from virnucpro.models.common.kernels import add_layer_norm_torch, rotary_torch, select_kernels

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
    d = (got - want).abs()
    excess = (d - slack).max().item()
    assert excess <= 0, (
        f"{what}: max abs diff {d.max().item():.3g} (mean {d.mean().item():.3g}) beyond one {dtype} ulp by {excess:.3g}"
    )


@pytest.fixture(scope="module")
def triton_kernels():
    return select_kernels("triton", "cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("embed_dim", [e for e, _ in SHAPES])
@pytest.mark.parametrize("with_delta", [True, False], ids=["add+norm", "norm"])
@pytest.mark.parametrize("params", ["model-dtype", "float32"])  # ESM-2's, DNABERT's LayerNorm parameters
def test_add_layer_norm_matches_torch(triton_kernels, dtype, embed_dim, with_delta, params):
    g = torch.Generator("cuda").manual_seed(embed_dim)
    x = (3 * torch.randn(1001, embed_dim, device="cuda", generator=g) + 1).to(dtype)
    delta = torch.randn(1001, embed_dim, device="cuda", generator=g).to(dtype) if with_delta else None
    params_dtype = dtype if params == "model-dtype" else torch.float32
    weight = torch.randn(embed_dim, device="cuda", generator=g).to(params_dtype)
    bias = torch.randn(embed_dim, device="cuda", generator=g).to(params_dtype)
    total, normed = triton_kernels.add_layer_norm(x, delta, weight, bias, 1e-5)
    # The sum, as the torch path rounds it; the LayerNorm of the unrounded sum, in float32.
    want_total, torch_normed = add_layer_norm_torch(x, delta, weight, bias, 1e-5)
    exact = x.float() if delta is None else x.float() + delta.float()
    want_normed = F.layer_norm(exact, (embed_dim,), weight.float(), bias.float(), 1e-5).to(dtype)
    assert torch.equal(total, want_total), "the residual sum is one rounding of x + delta in both"
    assert_within_one_rounding(normed, want_normed, dtype, "LayerNorm")
    if params == "float32":  # the torch kernel then normalises the float32 sum too, as the Triton kernel does
        assert torch.equal(torch_normed, want_normed), "torch kernel, float32 parameters: LayerNorm of the float32 sum"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("embed_dim", [e for e, _ in SHAPES])
def test_add_layer_norm_of_a_float32_stream_matches_torch(triton_kernels, dtype, embed_dim):
    """ESM-2's float32 residual stream (``residual="float32"``): x float32, delta and the LayerNorm's
    parameters and output in the compute dtype; the sum stays float32, unrounded."""
    g = torch.Generator("cuda").manual_seed(embed_dim)
    x = 3 * torch.randn(1001, embed_dim, device="cuda", generator=g) + 1
    delta = torch.randn(1001, embed_dim, device="cuda", generator=g).to(dtype)
    weight = torch.randn(embed_dim, device="cuda", generator=g).to(dtype)
    bias = torch.randn(embed_dim, device="cuda", generator=g).to(dtype)
    total, normed = triton_kernels.add_layer_norm(x, delta, weight, bias, 1e-5, out_dtype=dtype)
    want_total, torch_normed = add_layer_norm_torch(x, delta, weight, bias, 1e-5, out_dtype=dtype)
    exact = x + delta.float()
    want_normed = F.layer_norm(exact, (embed_dim,), weight.float(), bias.float(), 1e-5).to(dtype)
    assert total.dtype == torch.float32 and normed.dtype == torch_normed.dtype == dtype
    assert torch.equal(total, exact) and torch.equal(want_total, exact), "the float32 sum, never rounded"
    assert_within_one_rounding(normed, want_normed, dtype, "LayerNorm of the float32 stream")
    assert torch.equal(torch_normed, want_normed)


def fair_esm_rotary(qkv: torch.Tensor, lengths: list[int], heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k of the fused (T, 3E) projection rotated by fair-esm's own ``RotaryEmbedding``, sequence by
    sequence (positions from 0 in each), as (T, H, D) float64.

    fair-esm builds its tables in its module's dtype: built on this device in float32, as in a float32
    model, they are the tables PackedESM2 uses; the rotation itself runs in float64, on float64 inputs,
    so that only the final rounding to the kernel's dtype remains between this and an exact kernel.
    """
    total = qkv.shape[0]
    q, k, _ = qkv.double().view(total, 3, heads, -1).unbind(1)  # (T, H, D) each
    with torch.device(qkv.device):
        rotary = RotaryEmbedding(q.shape[-1])
    # fair-esm rotates (batch * heads, length, head dim): here one sequence's heads at a time.
    pairs = [rotary(a.transpose(0, 1), b.transpose(0, 1)) for a, b in zip(q.split(lengths), k.split(lengths))]
    return torch.cat([a.transpose(0, 1) for a, _ in pairs]), torch.cat([b.transpose(0, 1) for _, b in pairs])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("embed_dim,heads", SHAPES)
def test_rotary_matches_fair_esm_and_torch(triton_kernels, dtype, embed_dim, heads):
    g = torch.Generator("cuda").manual_seed(heads)
    lengths = [1, 2, 1024, 37, 600]
    positions = torch.cat([torch.arange(n) for n in lengths]).to(device="cuda", dtype=torch.int32)
    total, head_dim = positions.numel(), embed_dim // heads
    qkv = torch.randn(total, 3 * embed_dim, device="cuda", generator=g).to(dtype)
    original = qkv.clone()  # what v must hold, made before any kernel runs
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device="cuda") / head_dim))
    angles = torch.arange(max(lengths), device="cuda", dtype=torch.float32)[:, None] * inv_freq
    args = (qkv, positions, angles.cos(), angles.sin(), heads)
    (q, k, v), (torch_q, torch_k, torch_v) = triton_kernels.rotary(*args), rotary_torch(*args)
    fair_q, fair_k = (t.to(dtype) for t in fair_esm_rotary(original, lengths, heads))
    assert_within_one_rounding(q, fair_q, dtype, "rotated q vs fair-esm")
    assert_within_one_rounding(k, fair_k, dtype, "rotated k vs fair-esm")
    assert_within_one_rounding(torch_q, fair_q, dtype, "torch rotary q vs fair-esm")
    assert_within_one_rounding(torch_k, fair_k, dtype, "torch rotary k vs fair-esm")
    assert_within_one_rounding(q, torch_q, dtype, "rotated q vs torch")
    assert_within_one_rounding(k, torch_k, dtype, "rotated k vs torch")
    want_v = original[:, 2 * embed_dim :].reshape(total, heads, head_dim)
    assert torch.equal(qkv, original), "rotary wrote into its input"
    assert torch.equal(v, want_v) and torch.equal(torch_v, want_v), "v is not the third block of qkv"
    assert v.data_ptr() == qkv[:, 2 * embed_dim :].data_ptr(), "v is a copy, not a view of qkv"
    assert q.is_contiguous() and k.is_contiguous() and q.shape == (total, heads, head_dim)


def test_triton_forward_matches_fair_esm_at_every_layer_in_float32(batch_converter):
    """float32 on the GPU with exact attention: the Triton path and its (x, delta) residual carry
    against fair-esm's padded forward, every layer, as the CPU test does for the torch path."""
    torch.manual_seed(0)
    model = tiny_esm2(4, 64, 4).cuda()
    sequences = sample_sequences(12, seed=3, long=True)
    packed = PackedESM2(model, options=ForwardOptions(attention="reference", kernels="triton", gelu="exact"))
    assert packed.options.kernels == "triton"
    layers = list(range(model.num_layers + 1))
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    got = packed(input_ids.cuda(), cu_seqlens.cuda(), max_seqlen, repr_layers=layers)["representations"]
    want = padded_forward(model, batch_converter, sequences, layers)
    for layer in layers:
        diff = (got[layer] - torch.cat(want[layer]).cuda()).abs().max().item()
        assert diff <= 1e-5, f"layer {layer}: max abs diff {diff:.3g}"


HALF_DTYPES = [torch.bfloat16, torch.float16]
# Relative error (Frobenius, per sequence and head) allowed against exact float32 attention:
# 2^-8 for bf16 and 2^-11 for fp16, twice each dtype's unit roundoff.
ATTENTION_TOLERANCE = {torch.bfloat16: 2**-8, torch.float16: 2**-11}


def exact_attention_error(out: torch.Tensor, q, k, v, cu_seqlens, alibi_slopes=None) -> float:
    """Largest relative error (per sequence and head) of ``out`` against float32 attention over
    the same rounded inputs (with the ALiBi bias of ``alibi_slopes``, if given)."""
    max_seqlen = int(cu_seqlens.diff().max())
    want = reference_attention(q.float(), k.float(), v.float(), cu_seqlens, max_seqlen, alibi_slopes=alibi_slopes)
    bounds = cu_seqlens.tolist()
    return max(
        ((out[s:e].float() - want[s:e]).norm(dim=(0, 2)) / want[s:e].norm(dim=(0, 2))).max().item()
        for s, e in zip(bounds[:-1], bounds[1:])
    )


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize(
    "head_dim", [16, 24, 32, 64, 128]
)  # every ESM-2 size: 8M 16, 35M 24, 150M 32, 650M/3B 64, 15B 128
def test_triton_attention_matches_exact_attention(dtype, head_dim):
    # Lengths around the 64-row tiles, a lone token, and the longest ESM-2 input.
    lengths = [1, 2, 63, 64, 65, 128, 129, 1024, 300, 7]
    cu_seqlens = F.pad(torch.tensor(lengths).cumsum(0), (1, 0)).to(device="cuda", dtype=torch.int32)
    heads, total = 3, sum(lengths)
    g = torch.Generator("cuda").manual_seed(head_dim)
    # Scores of a few units, as in a trained model; v a strided view, as PackedESM2 passes it.
    q = (2 * torch.randn(total, heads, head_dim, device="cuda", generator=g) / head_dim**0.25).to(dtype)
    k = (2 * torch.randn(total, heads, head_dim, device="cuda", generator=g) / head_dim**0.25).to(dtype)
    v = torch.randn(total, 2, heads, head_dim, device="cuda", generator=g).to(dtype)[:, 1]
    _, attend = select_attention("triton", "cuda", dtype)
    out = attend(q, k, v, cu_seqlens, max(lengths))
    assert out.shape == q.shape and out.dtype == dtype
    error = exact_attention_error(out, q, k, v, cu_seqlens)
    print(f"\ntriton attention, {dtype}, head dim {head_dim}: max relative error {error:.2e}")
    # FlashAttention-2 on the same inputs: both round the probabilities and the output to dtype.
    _, flash = select_attention("torch-varlen", "cuda", dtype)
    flash_error = exact_attention_error(flash(q, k, v, cu_seqlens, max(lengths)), q, k, v, cu_seqlens)
    print(f"torch-varlen (FlashAttention-2): max relative error {flash_error:.2e}")
    assert error <= ATTENTION_TOLERANCE[dtype]
    assert error <= 1.5 * flash_error


def test_triton_attention_handles_many_tiny_sequences():
    """70,000 sequences of 1 to 3 tokens: more than the 65,535 a CUDA grid's second axis holds,
    where FlashAttention-2 puts sequences; here they share the first with the query blocks."""
    lengths = torch.randint(1, 4, (70_000,), generator=torch.Generator().manual_seed(0))
    cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(device="cuda", dtype=torch.int32)
    total = int(lengths.sum())
    q, k, v = torch.randn(3, total, 2, 16, device="cuda", dtype=torch.bfloat16).unbind(0)
    out = select_attention("triton", "cuda", torch.bfloat16)[1](q, k, v, cu_seqlens, int(lengths.max()))
    assert exact_attention_error(out, q, k, v, cu_seqlens[:2001]) <= ATTENTION_TOLERANCE[torch.bfloat16]
    singles = (lengths == 1).nonzero().flatten()[:100].cuda()
    rows = cu_seqlens[singles].long()
    assert torch.equal(out[rows], v[rows]), "a 1-token sequence attends only to itself"
