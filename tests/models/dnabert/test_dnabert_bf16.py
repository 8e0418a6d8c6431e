"""PackedDNABERT in bfloat16 on the CPU against DNABERT-S's own code in float32, with DNABERT-S's own
code in bfloat16 as the yardstick (``precision``), and in float16 against the issue's absolute bound;
``test_dnabert_gpu_parity`` does both at the real shape.

Short sequences (3 to 10 tokens) dominate: the mean of a few tokens averages little of the rounding
away, and they gave the worst figures on the GPU.
"""

from __future__ import annotations

import torch
from dnabert_reference import REAL, our_weights, packed_batches, reference_in_dtype, reference_model
from precision import assert_within_reference_error, cosine_error

from virnucpro.models import ForwardOptions, mean_pool
from virnucpro.models.dnabert import PackedDNABERT

#: (layers, hidden, heads, intermediate): small, with DNABERT-S's 12 heads (ALiBi slopes of a non-power of two).
SHAPE = (4, 192, 12, 384)
LENGTHS = (3, 3, 4, 5, 6, 7, 8, 10, 20, 50)  # [CLS] and [SEP] included
#: Our bf16 error at most half the reference's own: we keep LayerNorm parameters and the embedding
#: table in float32 and normalise float32 sums, where its code, cast whole, rounds them to bf16.
#: Measured here: 0.25x (max) and 0.13x (mean); with bf16 LayerNorm parameters it was 1.05x and 0.92x.
FACTOR = 0.5


#: The issue's bound on every sequence's mean: 1 - cosine against float32 at most this.
MAX_COSINE_ERROR = 1e-4


def short_sequences() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [
        torch.cat([torch.tensor([1]), torch.randint(5, 4096, (n - 2,), generator=generator), torch.tensor([2])])
        for n in LENGTHS
    ]


@torch.no_grad()
def packed_means(model, sequences: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    packed = PackedDNABERT(
        our_weights(model), dtype=dtype, device="cpu", options=ForwardOptions(attention="reference", kernels="torch")
    )
    [(input_ids, cu_seqlens, max_seqlen)] = packed_batches(sequences, 1 << 20)
    reps = packed(input_ids, cu_seqlens, max_seqlen)["representations"][packed.num_layers]
    return mean_pool(reps, cu_seqlens, bos=False, eos=False)


def test_bf16_mean_error_is_at_most_half_the_bf16_references():
    model = reference_model(*SHAPE, seed=0, noise=0.02)
    sequences = short_sequences()
    bf16_model = reference_in_dtype(model, torch.bfloat16)
    with torch.no_grad():
        expected = torch.stack([model(s[None])[0][0].mean(0) for s in sequences])
        reference = torch.stack([bf16_model(s[None])[0][0].float().mean(0) for s in sequences])
    actual = packed_means(model, sequences, torch.bfloat16)
    ours, theirs = cosine_error(actual, expected), cosine_error(reference, expected)
    print(f"\nDNABERT bf16 on the CPU: ours {ours}; DNABERT-S's code in bf16 {theirs}")
    assert_within_reference_error(ours, theirs, FACTOR, "DNABERT bf16 mean embeddings")


def test_fp16_meets_the_bound_where_bf16_cannot():
    """At DNABERT-S's real shape the shortest slices stay within the bound in float16; in bf16 the same
    forward misses it (which also shows that these inputs can tell the two apart)."""
    model = reference_model(*REAL, seed=0, noise=0.02)
    sequences = short_sequences()
    with torch.no_grad():
        expected = torch.stack([model(s[None])[0][0].mean(0) for s in sequences])
    half, bf16 = (
        cosine_error(packed_means(model, sequences, dtype), expected) for dtype in (torch.float16, torch.bfloat16)
    )
    print(f"\nDNABERT on the CPU, 3-50 tokens: fp16 {half}; bf16 {bf16}")
    assert half.max <= MAX_COSINE_ERROR < bf16.max, f"fp16 {half}; bf16 {bf16}"
