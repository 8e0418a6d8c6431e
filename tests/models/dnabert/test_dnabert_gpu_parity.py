"""PackedDNABERT in bfloat16 and float16 on the GPU against DNABERT-S's own code in float32, at DNABERT-S's real shape.

Random weights (nothing is downloaded) and VirNucPro's nucleotide slices of the bundled
contigs (500- and 300-bp chunks: 2,147 sequences, 157,036 tokens), tokenised by random:dnabert-s's
tokenizer. The embedding compared is DNABERT-S's: the mean of the last layer over every
token, [CLS] and [SEP] included. Run ``pytest -s -m gpu tests/models/dnabert`` to see the figures.

Two bounds. In bfloat16 our error must be at most ``REFERENCE_FACTOR`` times that of DNABERT-S's own
code run in bfloat16 (``reference_in_dtype``) on the same weights and slices (``precision``). The issue's
absolute bound, cosine >= ``MIN_COSINE`` on every slice, is out of bfloat16's reach on the shortest
slices: rounding the linear weights to bf16, all else float32, already costs 1 - cosine 1.2e-4 on
3- and 4-token slices (``benchmarks/results/bf16_floor.md``). Float16, on the same tensor cores, keeps
three more mantissa bits; in float16 the absolute bound holds, and is asserted.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from conftest import CONTIGS, requires_cuda, requires_flash_attn
from dnabert_reference import (
    REAL, nucleotide_slices, our_weights, packed_batches, padded_last_layers, reference_in_dtype, reference_model,
)  # fmt: skip
from precision import assert_within_reference_error, cosine_error

from virnucpro.models import ForwardOptions, mean_pool
from virnucpro.models.dnabert import PackedDNABERT, tokenizer

pytestmark = [pytest.mark.gpu, requires_cuda]

TOKENS_PER_BATCH = 16384
MIN_COSINE = 0.9999
REFERENCE_FACTOR = 2.0
ATTENTION = [
    "triton",
    "reference",
    pytest.param("flash-attn", marks=requires_flash_attn),
]


@pytest.fixture(scope="module")
def reference():
    """DNABERT-S's shape, its own initialiser plus N(0, 0.02) on every parameter, on the GPU in float32;
    the tokens of the slices (sorted by length, as batched code runs them), their float32 means, and the
    error of the means of the same code cast to bfloat16 (``reference_in_dtype``) against them."""
    model = reference_model(*REAL, seed=0, noise=0.02, device="cuda")
    tokens = tokenizer("random:dnabert-s")
    ids, lengths = tokens.encode(nucleotide_slices(CONTIGS))
    sequences = sorted(torch.from_numpy(ids).split(lengths.tolist()), key=len)
    means = [rows.mean(0) for batch in padded_last_layers(model, sequences, TOKENS_PER_BATCH) for rows in batch]
    expected = torch.stack(means)
    bf16_model = reference_in_dtype(model, torch.bfloat16)
    bf16_means = [
        rows.float().mean(0) for batch in padded_last_layers(bf16_model, sequences, TOKENS_PER_BATCH) for rows in batch
    ]
    del bf16_model
    yield model, sequences, expected, cosine_error(torch.stack(bf16_means), expected)
    del model
    torch.cuda.empty_cache()


def packed_means(packed: PackedDNABERT, sequences: list[torch.Tensor]) -> torch.Tensor:
    """(N, E) float32: the mean over every token of the last layer, packed batches of TOKENS_PER_BATCH."""
    means = []
    for input_ids, cu_seqlens, max_seqlen in packed_batches(sequences, TOKENS_PER_BATCH):
        input_ids, cu_seqlens = input_ids.to(packed.device), cu_seqlens.to(packed.device)
        reps = packed(input_ids, cu_seqlens, max_seqlen)["representations"][packed.num_layers]
        means.append(mean_pool(reps, cu_seqlens, bos=False, eos=False))
    return torch.cat(means)


@pytest.mark.parametrize("kernels", ["triton", "torch"])
@pytest.mark.parametrize("attention", ATTENTION)
def test_fp16_means_meet_the_bound_against_the_float32_reference(reference, attention, kernels):
    model, sequences, expected, _ = reference
    options = ForwardOptions(attention=attention, kernels=kernels)
    packed = PackedDNABERT(our_weights(model), dtype=torch.float16, device="cuda", options=options)
    assert packed.options.attention == attention and packed.options.kernels == kernels
    actual = packed_means(packed, sequences)
    assert torch.isfinite(actual).all()
    cosine = F.cosine_similarity(actual, expected.float(), dim=1)
    worst = int(cosine.argmin())
    figures = (
        f"DNABERT-S fp16 {attention}/{kernels}: {len(sequences)} sequences, cosine vs fp32 min {cosine.min():.6f} "
        f"(sequence {worst}, {len(sequences[worst])} tokens), mean {cosine.mean():.6f}; {cosine_error(actual, expected)}"
    )
    print(f"\n{figures}")
    assert cosine.min() >= MIN_COSINE, figures


@pytest.mark.parametrize("kernels", ["triton", "torch"])
@pytest.mark.parametrize("attention", ATTENTION)
def test_bf16_means_match_the_float32_reference(reference, attention, kernels):
    model, sequences, expected, reference_error = reference
    weights = our_weights(model)
    options = ForwardOptions(attention=attention, kernels=kernels)
    packed = PackedDNABERT(weights, dtype=torch.bfloat16, device="cuda", options=options)
    assert packed.options.attention == attention and packed.options.kernels == kernels
    actual = packed_means(packed, sequences)
    cosine = F.cosine_similarity(actual, expected.float(), dim=1)
    tokens, worst = sum(map(len, sequences)), int(cosine.argmin())
    print(
        f"\nDNABERT-S bf16 {attention}/{kernels}: {len(sequences)} sequences, {tokens} tokens, cosine vs fp32 "
        f"min {cosine.min():.6f} ({len(sequences[worst])} tokens) mean {cosine.mean():.6f}; "
        f"ours {cosine_error(actual, expected)}, "
        f"DNABERT-S's code in bf16 {reference_error} (1 - cosine)"
    )
    assert_within_reference_error(
        cosine_error(actual, expected), reference_error, REFERENCE_FACTOR, f"{attention}/{kernels}"
    )
