"""Pooling of packed rows against esm-extract's definitions on fair-esm's padded output.

esm-extract (fair-esm's scripts/extract.py), for sequence i with ``len`` residues:
``bos = t[i, 0]``, ``per_tok = t[i, 1 : len + 1]``, ``mean = t[i, 1 : len + 1].mean(0)``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import tiny_esm2
from esm_reference import diff, pack, padded_forward, sample_sequences

from virnucpro.models import PackedESM2, bos_pool, get_pooling, mean_pool, residue_rows


@pytest.fixture(scope="module")
def forward(batch_converter):
    """(packed last layer, cu_seqlens, fair-esm's padded last layer per sequence) of one batch."""
    model = tiny_esm2(3, 64, 4, seed=3)
    sequences = sample_sequences(16, seed=3)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    reps = PackedESM2(model)(input_ids, cu_seqlens, max_seqlen)["representations"][3]
    return reps, cu_seqlens, padded_forward(model, batch_converter, sequences, [3])[3]


def test_mean_pool_matches_esm_extract_mean(forward):
    reps, cu_seqlens, expected = forward
    actual = mean_pool(reps, cu_seqlens)
    assert actual.dtype == torch.float32 and actual.shape == (len(expected), reps.shape[1])
    mx, mean = diff(actual, torch.stack([t[1:-1].mean(0) for t in expected]))
    assert mx <= 1e-4, f"mean_pool vs esm-extract mean: max abs diff {mx:.1e}, mean {mean:.1e}"


def test_bos_pool_matches_esm_extract_bos(forward):
    reps, cu_seqlens, expected = forward
    mx, mean = diff(bos_pool(reps, cu_seqlens), torch.stack([t[0] for t in expected]))
    assert mx <= 1e-4, f"bos_pool vs esm-extract bos: max abs diff {mx:.1e}, mean {mean:.1e}"


def test_residue_rows_match_esm_extract_per_tok(forward):
    reps, cu_seqlens, expected = forward
    rows, residue_cu_seqlens = residue_rows(reps, cu_seqlens)
    lengths = [len(t) - 2 for t in expected]
    assert residue_cu_seqlens.tolist() == [0, *itertools.accumulate(lengths)]
    mx, mean = diff(rows, torch.cat([t[1:-1] for t in expected]))
    assert mx <= 1e-4, f"residue_rows vs esm-extract per_tok: max abs diff {mx:.1e}, mean {mean:.1e}"


@pytest.mark.parametrize("bos, eos", [(True, True), (True, False), (False, True), (False, False)])
def test_pooling_without_bos_or_eos(bos, eos):
    torch.manual_seed(0)
    lengths = [3, 1 + bos + eos, 7, 2 + bos + eos]
    reps = torch.randn(sum(lengths), 5, dtype=torch.bfloat16)
    cu_seqlens = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
    slices = [reps[s + bos : e - eos] for s, e in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist())]

    rows, residue_cu_seqlens = residue_rows(reps, cu_seqlens, bos=bos, eos=eos)
    assert torch.equal(rows, torch.cat(slices))
    assert residue_cu_seqlens.tolist() == [0, *itertools.accumulate(len(s) for s in slices)]
    mx, mean = diff(mean_pool(reps, cu_seqlens, bos=bos, eos=eos), torch.stack([s.float().mean(0) for s in slices]))
    assert mx <= 1e-6, f"mean_pool(bos={bos}, eos={eos}): max abs diff {mx:.1e}, mean {mean:.1e}"


def test_family_mean_over_every_token_includes_the_special_rows(forward):
    reps, cu_seqlens, expected = forward
    every = get_pooling("mean", include_special_tokens=True)
    mx, mean = diff(every.pool(reps, cu_seqlens), torch.stack([t.mean(0) for t in expected]))
    assert mx <= 1e-4, f"mean over every token vs the padded rows' mean: max abs diff {mx:.1e}, mean {mean:.1e}"
    assert every.window_pool is None and not every.per_token
    residues_only = get_pooling("mean", include_special_tokens=False)
    assert torch.equal(residues_only.pool(reps, cu_seqlens), mean_pool(reps, cu_seqlens))
    assert get_pooling("bos", include_special_tokens=True) is get_pooling("bos")
