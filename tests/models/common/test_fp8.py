"""FP8 matmuls: quantisation bounds, the folding lever, the refusal off Hopper, the whole forward on
the CPU (through ``cpu_fp8_for_tests``); on CUDA, the Triton kernels against the torch reference.

e4m3 keeps 3 mantissa bits: a value rounds to within 2^-4 of its magnitude, or to within half
the subnormal step 2^-9 (of the scaled value) below 2^-6. Run ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda, tiny_esm2
from esm_reference import pack, padded_forward, sample_sequences

from virnucpro.models import ForwardOptions, Fp8Levers, PackedESM2, auto_max_tokens, fp8_selfcheck_cosine, mean_pool
from virnucpro.models.common.fp8 import (
    E4M3_MAX,
    MIN_AMAX,
    Fp8Matmul,
    block_matmuls,
    cpu_fp8_for_tests,
    fold_layer_norm,
    gelu_quantise_torch,
    layer_norm_quantise_torch,
    quantise_rows,
)
from virnucpro.models.common.kernels import select_kernels
from virnucpro.models.common.matmul import NativeMatmul, Norm, Quantised
from virnucpro.models.esm2.memory import CPU_MAX_TOKENS
from virnucpro.models.esm2.outliers import outlier_layers, with_outliers

gpu = pytest.mark.gpu
HALF_STEP, HALF_SUBNORMAL = 2**-4, 2**-10  # of the value, of the scale


def dequantise(q: Quantised) -> torch.Tensor:
    return q.codes.double() * q.scale.double()


def rows_at_many_scales(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """float32 rows from 1e-4 to 1e4 in size, one of zeros, one spanning 10 orders of magnitude."""
    x = torch.randn(rows, cols, generator=generator) * torch.logspace(-4, 4, rows)[:, None]
    x[1] = 0
    x[2] = torch.randn(cols, generator=generator) * torch.logspace(-7, 3, cols)
    return x


def assert_quantised(q: Quantised, x: torch.Tensor, what: str) -> None:
    """q codes x (float64-comparable) to e4m3's rounding bound, with the layout ``_scaled_mm`` takes."""
    rows, cols = x.shape
    assert q.codes.dtype == torch.float8_e4m3fn and q.codes.shape == (rows, cols) and q.codes.is_contiguous()
    assert q.scale.dtype == torch.float32 and q.scale.shape == (rows, 1) and q.scale.is_contiguous()
    x = x.double()
    error = (dequantise(q) - x).abs()
    bound = torch.maximum(HALF_STEP * x.abs(), HALF_SUBNORMAL * q.scale.double()) * (1 + 1e-6)
    excess = error - bound
    assert excess.max() <= 0, (
        f"{what}: max abs error {error.max():.3g}, mean {error.mean():.3g}, "
        f"{int((excess > 0).sum())} elements beyond half an e4m3 step"
    )


def test_quantise_round_trip_is_within_half_an_e4m3_step():
    g = torch.Generator().manual_seed(0)
    x = rows_at_many_scales(65, 320, g)
    q = quantise_rows(x)
    assert_quantised(q, x, "quantise_rows")
    largest = q.codes.float().abs().amax(1)
    assert torch.equal(largest[x.abs().amax(1) > 0], torch.full_like(largest[x.abs().amax(1) > 0], E4M3_MAX)), (
        "each row's largest element codes to ±448"
    )
    assert q.codes[1].float().abs().max() == 0 and q.scale[1].item() == pytest.approx(MIN_AMAX / E4M3_MAX)
    assert torch.equal(quantise_rows(x.bfloat16()).scale, quantise_rows(x.bfloat16().float()).scale)


def cpu_fp8(levers: Fp8Levers = Fp8Levers(), gelu: str = "exact") -> Fp8Matmul:
    return Fp8Matmul("cpu", select_kernels("torch", "cpu"), gelu, levers)


def test_weights_are_scaled_per_output_channel():
    g = torch.Generator().manual_seed(1)
    blocks = [torch.randn(48, 64, generator=g) * torch.logspace(-2, 2, 48)[:, None] for _ in range(3)]
    biases = [torch.randn(48, generator=g) for _ in range(3)]
    layer = cpu_fp8().prepare_weight(blocks, biases, role="qkv")
    weight = torch.cat(blocks)
    assert layer.weight.shape == (144, 64) and layer.weight.is_contiguous()
    assert layer.scale.shape == (1, 144) and layer.scale.dtype == torch.float32 and layer.scale.is_contiguous()
    want_scale = weight.abs().amax(1) / E4M3_MAX
    assert torch.allclose(layer.scale[0], want_scale, rtol=2**-22, atol=0), "scale = amax of its row / 448"
    assert_quantised(Quantised(layer.weight, layer.scale.view(-1, 1)), weight, "weights")
    assert torch.equal(layer.bias, torch.cat(biases).bfloat16())
    kept = cpu_fp8(Fp8Levers(bf16_fc2=True)).prepare_weight(blocks[:1], biases[:1], role="fc2")
    assert kept.weight.dtype == torch.bfloat16 and kept.scale is None
    with pytest.raises(ValueError, match="divisible by 16"):
        cpu_fp8().prepare_weight([torch.randn(40, 24)], [torch.randn(40)], role="out")


def reference_product(x: Quantised, layer) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 x @ W.T + b of the dequantised values, and sum |x| |W| (the accumulation's scale)."""
    xd, wd = dequantise(x), layer.weight.double() * layer.scale.double().view(-1, 1)
    return xd @ wd.T + layer.bias.double(), xd.abs() @ wd.abs().T


@pytest.mark.parametrize("epilogue", [True, False], ids=["bias-in-epilogue", "bias-added-after"])
@pytest.mark.parametrize("form", ["bf16", "quantised"])
def test_linear_is_the_float32_product_of_the_dequantised_values(form, epilogue):
    g = torch.Generator().manual_seed(2 + epilogue)
    mm = cpu_fp8()
    mm.bias_in_epilogue = epilogue
    layer = mm.prepare_weight([torch.randn(96, 128, generator=g) / 11], [torch.randn(96, generator=g)], role="out")
    x = (torch.randn(77, 128, generator=g) * torch.logspace(-2, 2, 77)[:, None]).bfloat16()
    q = quantise_rows(x)
    got = mm.linear(x if form == "bf16" else q, layer)
    assert got.dtype == torch.bfloat16 and got.shape == (77, 96)
    want, magnitude = reference_product(q, layer)
    # One bf16 rounding of the result (two when the bias is added after); float32 accumulation
    # of K = 128 products, at most K units of float32 roundoff (2^-24) of sum |x| |W|.
    roundings = 1 if epilogue else 2
    error = (got.double() - want).abs()
    bound = roundings * 2**-8 * (want.abs() + layer.bias.double().abs()) + 2**-17 * magnitude
    assert (error - bound).max() <= 0, f"max abs error {error.max():.3g}, mean {error.mean():.3g}"


def test_linear_gelu_quantises_the_gelu_for_fc2_or_keeps_bf16():
    g = torch.Generator().manual_seed(4)
    w, b = [torch.randn(256, 64, generator=g) / 8], [torch.randn(256, generator=g)]
    x = torch.randn(50, 64, generator=g).bfloat16()
    for gelu in ("exact", "tanh"):
        mm = cpu_fp8(gelu=gelu)
        fc1 = mm.prepare_weight(w, b, role="fc1")
        out = mm.linear_gelu(x, fc1)
        want, magnitude = reference_product(quantise_rows(x), fc1)
        gelu_want = F.gelu(want, approximate="tanh" if gelu == "tanh" else "none")
        # the product's bf16 rounding through GELU (slope < 1.13), then half an e4m3 step
        error = (dequantise(out) - gelu_want).abs()
        bound = HALF_STEP * gelu_want.abs() * 1.1 + 1.2 * (2**-8 * want.abs() + 2**-18 * magnitude)
        bound = bound + HALF_SUBNORMAL * out.scale.double()
        assert (error - bound).max() <= 0, f"{gelu}: max abs error {error.max():.3g}"
        kept = cpu_fp8(Fp8Levers(bf16_fc2=True), gelu).linear_gelu(x, fc1)
        assert torch.equal(kept, F.gelu(mm.linear(x, fc1), approximate="tanh" if gelu == "tanh" else "none"))


def test_layer_norm_quantise_normalises_the_float32_sum():
    g = torch.Generator().manual_seed(5)
    x, delta = (torch.randn(33, 96, generator=g).bfloat16() for _ in "ab")
    weight, bias = torch.randn(96, generator=g).bfloat16(), torch.randn(96, generator=g).bfloat16()
    total, q = layer_norm_quantise_torch(x, delta, weight, bias, 1e-5)
    assert torch.equal(total, x + delta)
    normed = F.layer_norm(x.double() + delta.double(), (96,), weight.double(), bias.double(), 1e-5)
    assert_quantised(q, normed, "LayerNorm")
    same, q_alone = layer_norm_quantise_torch(x, None, weight, bias, 1e-5)
    assert same is x and torch.equal(q_alone.codes.view(torch.uint8), quantise_rows(F.layer_norm(
        x.float(), (96,), weight.float(), bias.float(), 1e-5)).codes.view(torch.uint8))  # fmt: skip


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_folding_a_layer_norm_leaves_the_float32_function_unchanged(alpha):
    g = torch.Generator().manual_seed(6)
    dim = 96
    gamma = 1 + 0.1 * torch.randn(dim, generator=g)
    gamma[:6] *= torch.tensor([20.0, -35.0, 50.0, 70.0, -85.0, 100.0])  # outlier channels, two negative
    gamma[6] = 0.0
    norm = Norm(gamma, torch.randn(dim, generator=g), 1e-5)
    weights = [torch.randn(dim, dim, generator=g) / dim**0.5 for _ in range(3)]
    biases = [torch.randn(dim, generator=g) for _ in range(3)]
    before = [t.clone() for t in (norm.weight, norm.bias, *weights, *biases)]
    folded, folded_weights, folded_biases = fold_layer_norm(norm, weights, biases, alpha)
    assert all(torch.equal(a, b) for a, b in zip(before, (norm.weight, norm.bias, *weights, *biases)))
    x = 3 * torch.randn(200, dim, generator=g) + 1
    for w, b, fw, fb in zip(weights, biases, folded_weights, folded_biases):
        want = F.linear(F.layer_norm(x, (dim,), norm.weight, norm.bias, 1e-5), w, b)
        got = F.linear(F.layer_norm(x, (dim,), folded.weight, folded.bias, 1e-5), fw, fb)
        diff = (got - want).abs().max().item()
        assert diff <= 1e-5 * want.abs().max().item(), f"alpha {alpha}: max abs diff {diff:.3g}"
    assert torch.equal(folded.bias, torch.zeros(dim))
    if alpha == 1.0:
        assert torch.equal(folded.weight.abs()[gamma != 0], torch.ones(dim - 1)), "plain folding: |gamma'| = 1"


def test_fp8_is_refused_off_gpus_with_fp8_tensor_cores():
    elsewhere = r"compute capability >= 8\.9.*this is cpu; use matmul='native' \(CLI: --dtype bf16\)"
    with pytest.raises(ValueError, match=elsewhere):
        ForwardOptions(matmul="fp8").resolve("cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="FP8 tensor cores"):
        PackedESM2(tiny_esm2(1, 32, 2), dtype=torch.bfloat16, options=ForwardOptions(matmul="fp8"))
    not_bf16 = r"dtype=torch\.bfloat16 \(the CLI's --dtype fp8 does\)"
    with cpu_fp8_for_tests(), pytest.raises(ValueError, match=not_bf16):
        ForwardOptions(matmul="fp8").resolve("cpu", torch.float32)
    with pytest.raises(ValueError, match="FP8 tensor cores"):  # the test path closes again
        ForwardOptions(matmul="fp8").resolve("cpu", torch.bfloat16)


def test_levers_are_checked_and_recorded():
    with pytest.raises(ValueError, match=r"fold=1\.5"):
        Fp8Levers(fold=1.5)
    with pytest.raises(TypeError, match="bf16_fc2"):
        Fp8Levers(bf16_fc2="yes")
    with pytest.raises(TypeError, match="Fp8Levers"):
        ForwardOptions(fp8="fold=1")
    assert ForwardOptions().as_dict() == {"attention": "auto", "kernels": "auto", "gelu": "auto", "matmul": "native"}
    levers = Fp8Levers(fold=0.5, bf16_ends=True, bf16_attention=False, bf16_fc2=True, fast_accum=True)
    assert ForwardOptions(matmul="fp8", fp8=levers).as_dict()["fp8"] == (
        "fold=0.5,ends=bf16,attention=fp8,fc2=bf16,accum=fast"
    )
    assert Fp8Levers(fold=None).describe().startswith("fold=none,")


@pytest.mark.parametrize("ends,attention", [(False, False), (True, False), (False, True), (True, True)])
def test_each_block_half_gets_the_matmul_its_levers_choose(ends, attention):
    levers = Fp8Levers(bf16_ends=ends, bf16_attention=attention)
    halves = block_matmuls(
        "fp8", levers, 4, torch.bfloat16, torch.device("cpu"), select_kernels("torch", "cpu"), "exact"
    )
    names = [(a.name, m.name) for a, m in halves]
    inner = ("native" if attention else "fp8", "fp8")
    assert names == [("native", "native") if ends and i in (0, 3) else inner for i in range(4)]
    assert all(isinstance(a, NativeMatmul) for a, _ in halves) == attention


LEVERS = {
    "all-fp8": Fp8Levers(fold=None, bf16_attention=False),
    "all-fp8+fold0.5": Fp8Levers(fold=0.5, bf16_attention=False),
    "default": Fp8Levers(),
    "default+ends+fc2+fast-accum": Fp8Levers(bf16_ends=True, bf16_fc2=True, fast_accum=True),
}


def test_fp8_forward_on_the_cpu_stays_close_to_fair_esm(batch_converter):
    """The whole FP8 path through PackedESM2 (torch arithmetic, torch's CPU _scaled_mm), every lever:
    a wrong layout or scale would leave nothing of the embedding; FP8's rounding leaves it close."""
    model = tiny_esm2(3, 64, 4, seed=7)
    sequences = sample_sequences(12, seed=7)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    want = torch.stack([rows[1:-1].mean(0) for rows in padded_forward(model, batch_converter, sequences, [3])[3]])
    for name, levers in LEVERS.items():
        with cpu_fp8_for_tests():
            options = ForwardOptions(attention="reference", matmul="fp8", fp8=levers)
            packed = PackedESM2(model, dtype=torch.bfloat16, options=options)
        assert packed.options.matmul == "fp8" and packed.options.fp8 == levers
        reps = packed(input_ids, cu_seqlens, max_seqlen)["representations"][3]
        assert reps.dtype == torch.bfloat16 and torch.isfinite(reps).all()
        cosine = F.cosine_similarity(mean_pool(reps, cu_seqlens), want, dim=1)
        print(f"\ntiny fp8 {name}: cosine vs fair-esm fp32 min {cosine.min():.6f} mean {cosine.mean():.6f}")
        assert cosine.min() >= 0.99, f"{name}: min cosine {cosine.min():.6f}, mean {cosine.mean():.6f}"


def test_fp8_with_every_block_kept_in_bf16_is_the_bf16_model(batch_converter):
    model = tiny_esm2(2, 64, 4, seed=8)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sample_sequences(6, seed=8))
    native = PackedESM2(model, dtype=torch.bfloat16, options=ForwardOptions(attention="reference"))
    with cpu_fp8_for_tests():
        options = ForwardOptions(attention="reference", matmul="fp8", fp8=Fp8Levers(bf16_ends=True))
        ends = PackedESM2(model, dtype=torch.bfloat16, options=options)
    want, got = (p(input_ids, cu_seqlens, max_seqlen)["representations"][2] for p in (native, ends))
    assert torch.equal(got, want), f"max abs diff {(got.float() - want.float()).abs().max():.3g}"


def test_selfcheck_cosine_and_the_memory_model_on_the_cpu():
    g = torch.Generator().manual_seed(9)
    a = torch.randn(10, 32, generator=g)
    low, mean = fp8_selfcheck_cosine(a, a.bfloat16())
    assert low.ndim == 0 and low.item() == pytest.approx(1.0, abs=1e-2) and mean >= low
    low, _ = fp8_selfcheck_cosine(a + 0.5 * torch.randn(10, 32, generator=g), a)
    assert low < 0.99
    with pytest.raises(ValueError, match="same sequences"):
        fp8_selfcheck_cosine(a, a[:5])
    assert auto_max_tokens(tiny_esm2(1, 32, 2), torch.bfloat16, torch.device("cpu"), 1, matmul="fp8") == CPU_MAX_TOKENS


@pytest.mark.parametrize("kind", ["norm-scale", "massive"])
def test_outlier_models_are_edited_copies(kind):
    model = tiny_esm2(8, 64, 4, seed=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    edited = with_outliers(model, kind)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the model is left unchanged"
    changed = {k for k, v in edited.state_dict().items() if not torch.equal(v, before[k])}
    names = ("self_attn_layer_norm.weight", "final_layer_norm.weight")
    if kind == "massive":
        names = ("self_attn.out_proj.weight", "fc2.weight", "fc2.bias")  # out_proj's bias starts at zero
    assert changed == {f"layers.{i}.{n}" for i in outlier_layers(8) for n in names}
    ratio = edited.layers[2].fc2.weight / model.layers[2].fc2.weight
    if kind == "massive":
        assert ratio.amax().item() == pytest.approx(100, rel=1e-5) and (ratio != 1).any(1).sum() == 6


# ---- CUDA: the Triton kernels against the torch arithmetic they replace ----

WIDTHS = [64, 1280, 2560, 5120, 10240]  # tiny, 650M/3B E, 650M/3B 4E


def e4m3_step(codes: torch.Tensor) -> torch.Tensor:
    """The spacing of e4m3 at each code's magnitude (subnormal step 2^-9 below 2^-6)."""
    return torch.exp2(torch.floor(torch.log2(codes.abs().clamp_min(2**-6))) - 3)


def assert_within_one_step(got: Quantised, want: Quantised, what: str) -> None:
    """Two quantisations of float32 rows computed in different orders: scales within float32 rounding,
    codes at most one e4m3 step apart."""
    a, b = got.codes.float(), want.codes.float()
    step = e4m3_step(torch.maximum(a.abs(), b.abs()))
    differ = (a - b).abs()
    scale_error = ((got.scale - want.scale).abs() / want.scale).max().item()
    assert (differ <= step).all(), (
        f"{what}: max code diff {differ.max():.3g}, {int((differ > step).sum())} beyond a step"
    )
    assert scale_error <= 2**-18, f"{what}: scales differ by {scale_error:.3g} relative"
    print(f"\n{what}: {int((differ > 0).sum())} of {differ.numel()} codes one step apart, scales {scale_error:.2g}")


def cuda_rows(rows: int, cols: int, seed: int) -> torch.Tensor:
    return rows_at_many_scales(rows, cols, torch.Generator().manual_seed(seed)).to("cuda", torch.bfloat16)


@gpu
@requires_cuda
@pytest.mark.parametrize("cols", WIDTHS)
def test_quantise_kernel_is_bitwise_the_torch_arithmetic(cols):
    from virnucpro.models.common import _triton_fp8

    x = cuda_rows(1001, cols, cols)
    got, want = _triton_fp8.quantise_rows(x), quantise_rows(x)
    if torch.cuda.get_device_capability() < (9, 0):  # Triton rounds through float16 there (_triton_fp8)
        return assert_within_one_step(got, want, f"quantise {cols} on sm_89")
    differ = int((got.codes.view(torch.uint8) != want.codes.view(torch.uint8)).sum())
    assert differ == 0, f"{differ} codes differ, max diff {(got.codes.float() - want.codes.float()).abs().max():.3g}"
    assert torch.equal(got.scale, want.scale), f"scales differ by {(got.scale - want.scale).abs().max():.3g}"


@gpu
@requires_cuda
@pytest.mark.parametrize("gelu", ["exact", "tanh"])
@pytest.mark.parametrize("cols", WIDTHS)
def test_gelu_quantise_kernel_matches_torch(gelu, cols):
    from virnucpro.models.common import _triton_fp8

    y = cuda_rows(1001, cols, cols + 1)
    assert_within_one_step(_triton_fp8.gelu_quantise(y, gelu), gelu_quantise_torch(y, gelu), f"GELU {gelu} {cols}")


@gpu
@requires_cuda
@pytest.mark.parametrize("with_delta", [True, False], ids=["add+norm", "norm"])
@pytest.mark.parametrize("cols", WIDTHS[:3])
def test_add_layer_norm_quantise_kernel_matches_torch(with_delta, cols):
    from virnucpro.models.common import _triton_fp8

    g = torch.Generator("cuda").manual_seed(cols)
    x = (3 * torch.randn(1001, cols, device="cuda", generator=g) + 1).bfloat16()
    delta = torch.randn(1001, cols, device="cuda", generator=g).bfloat16() if with_delta else None
    weight, bias = (torch.randn(cols, device="cuda", generator=g).bfloat16() for _ in "wb")
    total, got = _triton_fp8.add_layer_norm_quantise(x, delta, weight, bias, 1e-5)
    want_total, want = layer_norm_quantise_torch(x, delta, weight, bias, 1e-5)
    assert torch.equal(total, want_total), "the residual sum is one rounding of x + delta in both"
    assert_within_one_step(got, want, f"LayerNorm {cols} delta={with_delta}")


@gpu
@requires_cuda
@pytest.mark.parametrize("epilogue", [True, False], ids=["bias-in-epilogue", "bias-added-after"])
@pytest.mark.parametrize(
    "rows,cols,out", [(1001, 1280, 5120), (4097, 5120, 1280), (37, 2560, 7680), (3, 10240, 2560), (190, 10240, 2560)]
)
def test_scaled_mm_on_the_gpu_is_the_product_of_the_dequantised_values(epilogue, rows, cols, out):
    # exact accumulation: the bound below is the tensor cores'; fast accumulation is judged end to end
    mm = Fp8Matmul("cuda", select_kernels("triton", "cuda"), "tanh", Fp8Levers(fast_accum=False))
    print(f"\n_scaled_mm takes the bias with row-wise scales here: {mm.bias_in_epilogue}")
    if epilogue and not mm.bias_in_epilogue:
        pytest.skip("this torch's _scaled_mm refuses a bias with row-wise scales; the fallback adds it after")
    mm.bias_in_epilogue = epilogue
    g = torch.Generator("cuda").manual_seed(rows)
    layer = mm.prepare_weight([torch.randn(out, cols, device="cuda", generator=g) / cols**0.5],
                              [torch.randn(out, device="cuda", generator=g)], role="fc1")  # fmt: skip
    x = torch.randn(rows, cols, device="cuda", generator=g).bfloat16()
    q = quantise_rows(x)
    got = mm.linear(q, layer)
    want, magnitude = reference_product(q, layer)
    error = (got.double() - want).abs()
    rounding = (1 if epilogue else 2) * 2**-8 * (want.abs() + layer.bias.double().abs())
    # Hopper's FP8 tensor cores accumulate with about 14 mantissa bits between promotions to
    # float32: allow 2^-12 of sum |x| |W|, far below what a wrong layout or scale would give.
    accumulation = ((error - rounding).clamp_min(0) / magnitude).max().item()
    print(f"accumulation error beyond the bf16 rounding: {accumulation:.3g} of sum |x| |W|")
    assert accumulation <= 2**-12, f"max abs error {error.max():.3g}, mean {error.mean():.3g}"


def fp8_model(model, kernels: str, attention: str = "triton") -> PackedESM2:
    options = ForwardOptions(attention=attention, kernels=kernels, matmul="fp8", fp8=LEVERS["all-fp8"])
    return PackedESM2(model, dtype=torch.bfloat16, device="cuda", options=options)


@gpu
@requires_cuda
def test_triton_and_torch_fp8_paths_agree_on_the_gpu(batch_converter):
    model = tiny_esm2(4, 64, 4, seed=11)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sample_sequences(32, seed=11, long=True))
    input_ids, cu_seqlens = input_ids.cuda(), cu_seqlens.cuda()
    triton, torch_ = (fp8_model(model, k) for k in ("triton", "torch"))
    assert triton.options.kernels == "triton" and torch_.options.kernels == "torch"
    a, b = (mean_pool(p(input_ids, cu_seqlens, max_seqlen)["representations"][4], cu_seqlens) for p in (triton, torch_))
    cosine = F.cosine_similarity(a, b, dim=1)
    print(f"\nfp8 triton vs torch kernels: cosine min {cosine.min():.7f} mean {cosine.mean():.7f}")
    assert cosine.min() >= 0.999, f"min cosine {cosine.min():.7f}"


@gpu
@requires_cuda
def test_fp8_forward_and_pooling_sync_with_the_host_at_most_once(batch_converter):
    import warnings

    packed = fp8_model(tiny_esm2(2, 64, 4), "triton")
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sample_sequences(16, seed=0))
    input_ids, cu_seqlens = input_ids.cuda(), cu_seqlens.cuda()
    packed(input_ids, cu_seqlens, max_seqlen)  # warm-up: kernels compile, lazy initialisation
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            mean_pool(packed(input_ids, cu_seqlens, max_seqlen)["representations"][2], cu_seqlens)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    print(f"\nfp8: {len(syncs)} host-device sync(s) in one forward + pooling: {syncs}")
    assert len(syncs) <= 1, syncs
