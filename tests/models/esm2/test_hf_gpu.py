"""A transformers-layout ESM-2 through virnucpro in bfloat16 on the GPU against transformers' EsmModel in float32.

At the real 650M and 3B sizes, random weights (transformers' own initialisation, nothing
downloaded): the model is built from its config on the GPU, saved with ``save_pretrained``, read
back through ``load_model`` (memory-mapped safetensors) and run by ``PackedESM2`` in bfloat16 over
packed proteins of 1 to 1,022 residues; transformers runs each protein alone in float32. Needs
transformers, not Biopython. Run ``pytest -s -m gpu tests/models/esm2/test_hf_gpu.py`` to see the figures.

Two bounds. Our error must be at most ``REFERENCE_FACTOR`` times that of transformers' EsmModel itself
cast to bfloat16, on the same weights and proteins (``precision``), with either residual stream. The
issue's absolute bound, cosine >= ``MIN_COSINE`` on every protein, holds with the residual stream in
float32 (``ForwardOptions(residual="float32")``, CLI ``--residual float32``). The default bf16 stream
misses it on 1-residue proteins, as transformers' own bf16 does (min 0.99986 on both; the rounded
stream is most of that error, ``benchmarks/results/bf16_floor.md``); the test prints its figure.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from hf_models import esm_config, random_proteins
from precision import assert_within_reference_error, cosine_error

from virnucpro.models import ARCHITECTURES, ForwardOptions, PackedESM2, load_model, mean_pool
from virnucpro.models.esm2 import alphabet

pytestmark = [pytest.mark.gpu, requires_cuda]

SIZES = {"650M": ARCHITECTURES["esm2_t33_650M_UR50D"], "3B": ARCHITECTURES["esm2_t36_3B_UR50D"]}
MIN_COSINE = 0.9999
REFERENCE_FACTOR = 2.0
TOKEN_BUDGET = 8192  # tokens per packed batch


def protein_lengths(count: int, seed: int) -> list[int]:
    """1 and 1,022 residues, and ``count`` - 2 lengths between, log-uniform (short proteins dominate)."""
    rng = random.Random(seed)
    return [1, 1022] + [round(2 ** rng.uniform(0, 10)) for _ in range(count - 2)]


def packed_means(model, tokens: list[torch.Tensor], residual: str) -> torch.Tensor:
    """(N, E) float32: each protein's mean last layer from a bfloat16 PackedESM2 on CUDA, packed in batches."""
    packed = PackedESM2(model, dtype=torch.bfloat16, device="cuda", options=ForwardOptions(residual=residual))
    assert packed.options.residual == residual
    means, batch = [], []
    for ids in tokens + [None]:
        if ids is None or batch and sum(len(t) for t in batch) + len(ids) > TOKEN_BUDGET:
            lengths = torch.tensor([len(t) for t in batch])
            cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32).cuda()
            with torch.no_grad():
                reps = packed(torch.cat(batch).cuda(), cu_seqlens, int(lengths.max()), repr_layers=[model.num_layers])
            means.append(mean_pool(reps["representations"][model.num_layers], cu_seqlens).cpu())
            batch = []
        if ids is not None:
            batch.append(ids)
    return torch.cat(means)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_bf16_packed_forward_matches_transformers_fp32(tmp_path, size):
    from transformers import EsmModel

    layers, embed_dim, heads = SIZES[size]
    torch.manual_seed(0)
    with torch.device("cuda"):
        reference = EsmModel(esm_config(layers, embed_dim, heads), add_pooling_layer=False).to("cuda").eval()
    reference.save_pretrained(tmp_path / "hf")
    converter = alphabet().get_batch_converter()
    proteins = random_proteins(protein_lengths(64, seed=1), seed=2, masks=10)
    tokens = [converter([(str(i), p)])[2][0] for i, p in enumerate(proteins)]
    assert torch.get_float32_matmul_precision() == "highest"  # a float32 reference, not TF32
    with torch.no_grad():
        expected = torch.stack(
            [reference(ids.unsqueeze(0).cuda()).last_hidden_state[0, 1:-1].mean(0).cpu() for ids in tokens]
        )
        reference = reference.to(torch.bfloat16)  # transformers' own bf16 error: the yardstick for ours
        reference_bf16 = torch.stack(
            [reference(ids.unsqueeze(0).cuda()).last_hidden_state[0, 1:-1].float().mean(0).cpu() for ids in tokens]
        )
    del reference
    torch.cuda.empty_cache()

    model, _ = load_model(tmp_path / "hf", dtype=None)  # the file's float32 tensors, mapped
    theirs = cosine_error(reference_bf16, expected)
    print(f"\n{size}, {len(proteins)} proteins of 1 to 1,022 residues: transformers bf16 {theirs}")
    cosines = {}
    for residual in ("compute", "float32"):
        actual = packed_means(model, tokens, residual)
        cosines[residual] = cosine = F.cosine_similarity(actual, expected, dim=1)
        ours = cosine_error(actual, expected)
        print(
            f"  {residual} residual stream: per-sequence cosine min {cosine.min():.6f}, mean {cosine.mean():.6f}; {ours}"
        )
        assert_within_reference_error(ours, theirs, REFERENCE_FACTOR, f"{size}, {residual} residual stream")
    cosine = cosines["float32"]
    shortest = len(proteins[int(cosine.argmin())])
    assert cosine.min() >= MIN_COSINE, f"{size}, float32 stream: min {cosine.min():.6f} ({shortest} residues)"
