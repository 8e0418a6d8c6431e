"""FP8 PackedESM2 on the GPU against fair-esm in float32, at the real 650M and 3B sizes, every lever.

Random weights (seeded, built on the GPU) and all 404 real proteins of PROTEOME cut to 1022
residues, as ``test_gpu_parity``; then the same with outliers injected (``esm2.outliers``):
LayerNorm channels scaled 20-100x, and "massive activations" in the residual stream. Each
model's reference is fair-esm's own float32 forward of it. The default levers must keep the
per-sequence cosine of mean embeddings >= 0.997 on the random model; every other figure is
printed, for the run's own self-check (``fp8_selfcheck_cosine``) to judge on real weights.
Run ``pytest -s -m gpu tests/models/esm2/test_fp8_parity.py`` to see the table.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from esm.model.esm2 import ESM2
from esm.data import FastaBatchedDataset
from esm_reference import esm_extract_batches, pack, read_proteome
from test_gpu_parity import SIZES, TOKEN_BUDGET, last_layer

from virnucpro.models import ForwardOptions, Fp8Levers, PackedESM2, mean_pool
from virnucpro.models.esm2.outliers import OUTLIERS, with_outliers

pytestmark = [pytest.mark.gpu, requires_cuda]

DEFAULT_FLOOR = 0.997
ALL_FP8 = {"bf16_attention": False}
VARIANTS: dict[str, ForwardOptions] = {"bf16": ForwardOptions()} | {
    name: ForwardOptions(matmul="fp8", fp8=levers)
    for name, levers in {
        "fp8 all, no fold": Fp8Levers(fold=None, **ALL_FP8),
        "fp8 all, fold 1": Fp8Levers(fold=1.0, **ALL_FP8),
        "fp8 all, fold 0.5": Fp8Levers(fold=0.5, **ALL_FP8),
        "fp8 all, ends bf16": Fp8Levers(bf16_ends=True, **ALL_FP8),
        "fp8 all, fc2 bf16": Fp8Levers(bf16_fc2=True, **ALL_FP8),
        "fp8 default": Fp8Levers(),
        "fp8 default, ends bf16": Fp8Levers(bf16_ends=True),
    }.items()
}


def cosines(packed: PackedESM2, packs, expected: list[torch.Tensor]) -> torch.Tensor:
    """Per-sequence cosine of mean embeddings against ``expected`` (N_group, E) per pack."""
    out = []
    for (input_ids, cu_seqlens, max_seqlen), want in zip(packs, expected):
        reps = packed(input_ids, cu_seqlens, max_seqlen)["representations"][packed.num_layers]
        out.append(F.cosine_similarity(mean_pool(reps, cu_seqlens), want, dim=1))
    return torch.cat(out)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_fp8_levers_against_fair_esm_float32(batch_converter, size):
    layers, embed_dim, heads = SIZES[size]
    torch.manual_seed(0)
    with torch.device("cuda"):
        base = ESM2(layers, embed_dim, heads, alphabet="ESM-1b", token_dropout=True).eval()
    sequences = [s[:1022] for s in read_proteome()]
    dataset = FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    groups = esm_extract_batches(dataset, TOKEN_BUDGET)
    packs = []
    for group in groups:
        input_ids, cu_seqlens, max_seqlen = pack(batch_converter, [sequences[i] for i in group])
        packs.append((input_ids.cuda(), cu_seqlens.cuda(), max_seqlen))
    rows = []
    for kind in ("random", *OUTLIERS):
        model = base if kind == "random" else with_outliers(base, kind)
        reference = last_layer(model, batch_converter, dataset, groups)
        expected = [torch.stack([reference[i][1:-1].mean(0) for i in group]) for group in groups]
        del reference
        for name, options in VARIANTS.items():
            packed = PackedESM2(model, dtype=torch.bfloat16, device="cuda", options=options)
            cosine = cosines(packed, packs, expected)
            rows.append((kind, name, cosine.min().item(), cosine.mean().item()))
            print(f"\n{size} {kind:10s} {name:24s} cosine vs fp32 min {rows[-1][2]:.6f} mean {rows[-1][3]:.6f}")
            del packed
        del model, expected
        torch.cuda.empty_cache()
    report = f"{size}, {len(sequences)} proteins:\n" + "\n".join(
        f"  {kind:10s} {name:24s} min {low:.6f} mean {mean:.6f}" for kind, name, low, mean in rows
    )
    print("\n" + report)
    default = next(low for kind, name, low, _ in rows if (kind, name) == ("random", "fp8 default"))
    assert default >= DEFAULT_FLOOR, report
