"""ESM-2's residual stream in float32 (``ForwardOptions(residual="float32")``, CLI ``--residual``).

In bf16 the residual stream's rounding is most of the error of a short protein's mean embedding
(``benchmarks/results/bf16_floor.md``). Carried in float32 it must bring that error down against
fair-esm's own float32 forward on the same weights, and change nothing where it does not apply.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_esm2
from esm_reference import pack, padded_forward

from virnucpro.models import ForwardOptions, PackedESM2, mean_pool

# esm2_t12_35M's shape; random weights
LAYERS, EMBED_DIM, HEADS = 12, 480, 20
# Mostly 1- and 2-residue proteins: a mean of one residue averages no rounding away
LENGTHS = [1] * 8 + [2] * 4 + [3, 5, 8, 20, 50, 200]
CPU = {"attention": "reference", "kernels": "torch"}


def proteins(lengths: list[int], seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(n)) for n in lengths]


def test_float32_stream_cuts_bf16_error_against_fair_esm(batch_converter):
    model = tiny_esm2(LAYERS, EMBED_DIM, HEADS, seed=1)
    sequences = proteins(LENGTHS, seed=0)
    expected = torch.stack(
        [rows[1:-1].mean(0) for rows in padded_forward(model, batch_converter, sequences, [LAYERS])[LAYERS]]
    )
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    errors = {}
    for residual in ("compute", "float32"):
        packed = PackedESM2(model, dtype=torch.bfloat16, options=ForwardOptions(**CPU, residual=residual))
        assert packed.options.residual == residual
        reps = packed(input_ids, cu_seqlens, max_seqlen, repr_layers=[0, LAYERS // 2, LAYERS])["representations"]
        assert {rows.dtype for rows in reps.values()} == {torch.bfloat16}, "representations come out in bf16"
        errors[residual] = 1 - F.cosine_similarity(mean_pool(reps[LAYERS], cu_seqlens).float(), expected, dim=1)
    rounded, carried = errors["compute"], errors["float32"]
    figures = (
        f"1 - cosine vs fair-esm fp32: bf16 stream max {rounded.max():.2e} mean {rounded.mean():.2e}, "
        f"float32 stream max {carried.max():.2e} mean {carried.mean():.2e}"
    )
    print(f"\n{figures}")
    # Measured at this shape: 0.37 of the max, 0.43 of the mean (2.3e-5 vs 6.2e-5, 1.6e-5 vs 3.8e-5)
    assert carried.max() <= 0.6 * rounded.max() and carried.mean() <= 0.6 * rounded.mean(), figures


def test_float32_stream_is_the_plain_forward_outside_half_precision(batch_converter):
    model = tiny_esm2(2, 64, 4, seed=2)
    batch = pack(batch_converter, proteins([1, 7, 30], seed=1))
    plain = PackedESM2(model, options=ForwardOptions(**CPU))
    carried = PackedESM2(model, options=ForwardOptions(**CPU, residual="float32"))
    assert carried.options.residual == "compute", "float32 compute has a float32 stream already"
    assert carried.options.as_dict() == plain.options.as_dict()
    a, b = (m(*batch, repr_layers=[0, 1, 2])["representations"] for m in (plain, carried))
    assert all(torch.equal(a[layer], b[layer]) for layer in a)


def test_residual_option_is_named_in_the_fingerprint_only_when_float32():
    assert "residual" not in ForwardOptions().resolve("cpu", torch.bfloat16).as_dict(), "old runs' keys are kept"
    assert ForwardOptions(residual="float32").resolve("cpu", torch.bfloat16).as_dict()["residual"] == "float32"
    with pytest.raises(ValueError, match=r"residual \(CLI: --residual\) must be one of .*, got 'fp32'"):
        ForwardOptions(residual="fp32")


def test_float32_stream_is_refused_where_it_does_not_apply():
    with pytest.raises(ValueError, match=r"residual='float32' \(CLI: --residual float32\) is for bf16/fp16 matmuls"):
        ForwardOptions(matmul="fp8", residual="float32")
    from dnabert_reference import our_weights, reference_model

    from virnucpro.models.dnabert import PackedDNABERT

    weights = our_weights(reference_model(1, 32, 2, 64, seed=0))
    with pytest.raises(ValueError, match=r"residual='float32' .* is ESM-2's option: DNABERT's post-LayerNorm"):
        PackedDNABERT(weights, dtype=torch.bfloat16, options=ForwardOptions(residual="float32"))
