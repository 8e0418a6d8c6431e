"""Half-precision PackedESM2 on the GPU against fair-esm in float32, at the real 650M and 3B sizes.

Random weights (nothing is downloaded) and all 404 real proteins of PROTEOME, cut to
1022 residues. Run ``pytest -s -m gpu tests/models`` to see the figures.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda, requires_flash_attn, tiny_esm2
from esm.data import FastaBatchedDataset
from esm.model.esm2 import ESM2
from esm_reference import esm_extract_batches, fair_esm_batches, pack, read_proteome, sample_sequences

from virnucpro.models import ARCHITECTURES, ForwardOptions, PackedESM2, bos_pool, mean_pool, residue_rows

pytestmark = [pytest.mark.gpu, requires_cuda]

SIZES = {"650M": ARCHITECTURES["esm2_t33_650M_UR50D"], "3B": ARCHITECTURES["esm2_t36_3B_UR50D"]}
TOKEN_BUDGET = 8192  # esm-extract's toks_per_batch for fair-esm; PackedESM2 gets the same batches, packed
ATTENTION = [
    "triton",
    "torch-varlen",
    pytest.param("flash-attn", marks=requires_flash_attn),
]


def last_layer(
    model: ESM2, batch_converter, dataset: FastaBatchedDataset, groups: list[list[int]]
) -> list[torch.Tensor]:
    """fair-esm's padded forward in esm-extract's loop: per sequence, its last layer as float32,
    (its tokens, BOS and EOS included, E)."""
    out = [None] * len(dataset)
    for batch in fair_esm_batches(model, batch_converter, dataset, groups, [model.num_layers]):
        for i, rows in zip(batch.indices, batch.rows(model.num_layers, model.padding_idx)):
            out[i] = rows.float()
    return out


@pytest.fixture(scope="module", params=sorted(SIZES))
def reference(request, batch_converter):
    """A seeded random ESM-2 of one real size on the GPU, and its float32 last layer on PROTEOME."""
    layers, embed_dim, heads = SIZES[request.param]
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = ESM2(layers, embed_dim, heads, alphabet="ESM-1b", token_dropout=True).eval()
    sequences = [s[:1022] for s in read_proteome()]
    dataset = FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    groups = esm_extract_batches(dataset, TOKEN_BUDGET)
    expected = last_layer(model, batch_converter, dataset, groups)
    yield SimpleNamespace(
        size=request.param, model=model, sequences=sequences, dataset=dataset, groups=groups, expected=expected,
        half_error={},
    )  # fmt: skip
    del model, expected
    torch.cuda.empty_cache()


def fair_esm_half_error(reference, batch_converter, dtype: torch.dtype) -> float:
    """Max abs error of fair-esm's own forward in ``dtype`` (a converted copy) against its float32 forward."""
    if dtype not in reference.half_error:
        half = copy.deepcopy(reference.model).to(dtype)
        actual = last_layer(half, batch_converter, reference.dataset, reference.groups)
        reference.half_error[dtype] = max((a - e).abs().max().item() for a, e in zip(actual, reference.expected))
        del half, actual
        torch.cuda.empty_cache()
    return reference.half_error[dtype]


# (kernels, gelu): the default on CUDA in half precision first, then each part of it swapped out.
PATHS = [("triton", "tanh"), ("triton", "exact"), ("torch", "exact")]


@pytest.mark.parametrize("kernels,gelu", PATHS, ids=["-".join(p) for p in PATHS])
@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_matches_fair_esm_float32(reference, batch_converter, dtype, attention, kernels, gelu):
    options = ForwardOptions(attention=attention, kernels=kernels, gelu=gelu)
    packed = PackedESM2(reference.model, dtype=dtype, device="cuda", options=options)
    assert packed.options == ForwardOptions(attention=attention, kernels=kernels, gelu=gelu)
    cosines, worst = [], 0.0
    for group in reference.groups:
        input_ids, cu_seqlens, max_seqlen = pack(batch_converter, [reference.sequences[i] for i in group])
        cu_seqlens = cu_seqlens.cuda()
        reps = packed(input_ids.cuda(), cu_seqlens, max_seqlen)["representations"][packed.num_layers]
        expected = [reference.expected[i] for i in group]
        expected_means = torch.stack([rows[1:-1].mean(0) for rows in expected])
        cosines.append(F.cosine_similarity(mean_pool(reps, cu_seqlens), expected_means, dim=1))
        worst = max(worst, (reps.float() - torch.cat(expected)).abs().max().item())
    del packed
    torch.cuda.empty_cache()
    cosine = torch.cat(cosines)
    fair_esm = fair_esm_half_error(reference, batch_converter, dtype)
    report = (
        f"{reference.size} {dtype} attention={attention} kernels={kernels} gelu={gelu}, {len(cosine)} proteins: "
        f"mean-embedding cosine vs fp32 "
        f"min {cosine.min().item():.7f} mean {cosine.mean().item():.7f}; last-layer max abs error "
        f"{worst:.3e}, fair-esm's own in {dtype}: {fair_esm:.3e}"
    )
    print("\n" + report)
    assert cosine.min().item() >= 0.9999, report
    assert worst <= 2 * fair_esm, report


def is_sync_warning(message: str) -> bool:
    """How a host-device sync is found: torch's sync debug mode warns "called a synchronizing CUDA operation"."""
    return "synchroniz" in message.lower()


@pytest.mark.parametrize("attention", ATTENTION)
def test_forward_and_pooling_sync_with_the_host_at_most_once(batch_converter, attention):
    """Syncs are the sync debug mode's warnings that ``is_sync_warning`` accepts. An ``.item()`` under the
    same capture is the positive control: were the warning reworded or gone, the criterion would find no
    sync anywhere and the bound below would hold for nothing; the control then fails.

    The notice "Synchronization debug mode is a prototype feature ..." that torch gives once per process,
    when the mode is first switched on, matches the criterion too and is counted with the forward's: it
    was the one sync of ``benchmarks/results/gpu_tests.log`` (triton, the first parameter to run).
    """
    options = ForwardOptions(attention=attention)
    packed = PackedESM2(tiny_esm2(2, 64, 4), dtype=torch.bfloat16, device="cuda", options=options)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sample_sequences(16, seed=0))
    input_ids, cu_seqlens = input_ids.cuda(), cu_seqlens.cuda()
    packed(input_ids, cu_seqlens, max_seqlen)  # warm-up: first calls may initialise lazily
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            reps = packed(input_ids, cu_seqlens, max_seqlen)["representations"][2]
            mean_pool(reps, cu_seqlens), bos_pool(reps, cu_seqlens), residue_rows(reps, cu_seqlens)
            in_forward = len(caught)
            cu_seqlens[-1].item()  # the positive control: one sync
        finally:
            torch.cuda.set_sync_debug_mode("default")
    messages = [str(w.message) for w in caught]
    syncs = [m for m in messages[:in_forward] if is_sync_warning(m)]
    control = [m for m in messages[in_forward:] if is_sync_warning(m)]
    print(f"\n{attention}: {len(syncs)} host-device sync(s) in one forward + pooling: {syncs}; control: {control}")
    assert len(control) == 1, (
        f"one .item() on a CUDA tensor counted as {len(control)} syncs; its warnings: {messages[in_forward:]}. "
        "The criterion no longer finds syncs: update is_sync_warning to torch's wording"
    )
    assert len(syncs) <= 1, syncs


def test_forward_and_mean_pooling_are_bitwise_reproducible(batch_converter):
    packed = PackedESM2(tiny_esm2(2, 64, 4), dtype=torch.bfloat16, device="cuda")
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sample_sequences(64, seed=1))
    input_ids, cu_seqlens = input_ids.cuda(), cu_seqlens.cuda()
    first, second = (
        mean_pool(packed(input_ids, cu_seqlens, max_seqlen)["representations"][2], cu_seqlens) for _ in "ab"
    )
    assert torch.equal(first, second), f"max abs diff {(first - second).abs().max().item():.3g}"


def test_half_precision_on_cuda_defaults_to_the_fast_path():
    """What run_embed uses unless told otherwise is the path the parity test above checks first."""
    packed = PackedESM2(tiny_esm2(2, 64, 4), dtype=torch.bfloat16, device="cuda")
    assert (packed.options.kernels, packed.options.gelu) == PATHS[0]
    assert packed.options.attention == ("flash-attn" if importlib.util.find_spec("flash_attn") else "triton")
