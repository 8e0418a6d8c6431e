"""Windows of proteins longer than max_length in the data layer: the rule, the records, the batches.

The reference for the window rule is the issue's text written out as a loop, and coverage
is counted by brute force over its windows. Records are checked against the normalised
input: the windows of a protein, put back at their starts, are its sequence.
"""

from __future__ import annotations

import random
import warnings
from collections import defaultdict

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from virnucpro.data import Normaliser, Record, SequenceDataset, VarlenCollator, coverage, read_fasta, window_starts
from virnucpro.data.batch import DEVICE_FIELDS

pytestmark = pytest.mark.filterwarnings(
    "ignore:This DataLoader will create:UserWarning", "ignore:cut .* into overlapping windows:UserWarning"
)

W = 20
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
LENGTHS = [5, W, W + 1, 2 * W - 1, 1, 2 * W, 3 * W + 4, 9, 7 * W + 3, W - 1, W + 2, 12]


def reference_starts(length: int, width: int, stride: int) -> list[int]:
    """The issue's rule: 0, S, 2S, ... while start + W < L, then L - W; one window if L <= W."""
    if length <= width:
        return [0]
    starts, start = [], 0
    while start + width < length:
        starts.append(start)
        start += stride
    return [*starts, length - width]


@pytest.fixture(scope="module")
def proteins(tmp_path_factory) -> tuple[object, list[str]]:
    rng = random.Random(11)
    sequences = ["".join(rng.choices(AMINO_ACIDS, k=n)) for n in LENGTHS]
    path = tmp_path_factory.mktemp("windows") / "mixed.faa"
    path.write_text("".join(f">p{i} protein {i}\n{s.lower() if i % 3 else s}*\n" for i, s in enumerate(sequences)))
    return path, sequences


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length, width, stride, starts",
    [
        (21, 20, 10, [0, 1]),  # L = W + 1: the last window starts at 1
        (20, 20, 10, [0]),  # L = W: one ordinary sequence
        (3, 20, 10, [0]),
        (40, 20, 20, [0, 20]),  # stride = W: windows touch, the last ends at L
        (41, 20, 20, [0, 20, 21]),
        (24, 20, 1, [0, 1, 2, 3, 4]),  # stride 1: every start up to L - W
        (39, 20, 10, [0, 10, 19]),
        (40, 20, 10, [0, 10, 20]),
        (2, 1, 1, [0, 1]),
    ],
)
def test_window_starts_edge_cases(length, width, stride, starts):
    assert window_starts(length, width, stride) == starts == reference_starts(length, width, stride)


def test_window_starts_and_coverage_match_brute_force():
    for length in range(1, 80):
        for width in (1, 2, 5, 16):
            for stride in range(1, width + 1):
                starts = window_starts(length, width, stride)
                assert starts == reference_starts(length, width, stride), (length, width, stride)
                assert starts[-1] + min(width, length) == length and all(b > a for a, b in zip(starts, starts[1:]))
                counts = np.zeros(length, dtype=np.int64)
                for start in starts:
                    counts[start : start + width] += 1
                got = coverage(length, width, stride)
                assert got.dtype == np.int64 and np.array_equal(got, counts), (length, width, stride, got, counts)


@pytest.mark.parametrize("stride", [0, -1, W + 1, 2.5, True, "10"])
def test_bad_stride_names_the_option_and_the_flag(proteins, stride):
    refused = r"window_stride \(CLI: --window-stride\) must be an int in 1\.\.20, the window width"
    with pytest.raises(ValueError, match=refused):
        window_starts(50, W, stride)
    with pytest.raises(ValueError, match=r"window_stride.*--window-stride"):
        SequenceDataset(proteins[0], max_length=W, on_overlength="window", window_stride=stride)


def test_stride_without_windows_and_unknown_overlength_are_refused(proteins):
    with pytest.raises(ValueError, match=r"window_stride=5 needs on_overlength='window'.*--on-overlength window"):
        SequenceDataset(proteins[0], max_length=W, window_stride=5)
    with pytest.raises(ValueError, match=r"on_overlength \(CLI: --on-overlength\) must be one of .*'window'"):
        SequenceDataset(proteins[0], on_overlength="windows")


def test_raise_names_window_as_a_fix(proteins):
    with pytest.raises(ValueError, match=r"on_overlength='window' \(CLI: --on-overlength window\)"):
        list(SequenceDataset(proteins[0], max_length=W, on_overlength="raise").records())


# --- records --------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [None, 1, 7, W])
def test_windows_are_consecutive_records_that_rebuild_the_protein(proteins, stride):
    path, sequences = proteins
    dataset = SequenceDataset(path, max_length=W, on_overlength="window", window_stride=stride)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(dataset.records())
    step = W // 2 if stride is None else stride
    windowed = sum(len(s) > W for s in sequences)
    assert [str(w.message) for w in caught] == [
        f"cut {windowed} sequences longer than max_length={W} residues into overlapping windows of {W} "
        f"residues, {step} apart (one output row each, merged from its windows)"
    ]
    by_index: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        by_index[r.index].append(r)
    assert [r.index for r in records] == sorted(r.index for r in records), "windows of a protein are consecutive"
    for index, sequence in enumerate(sequences):
        mine = by_index[index]
        starts = reference_starts(len(sequence), W, step)
        assert [r.window_start for r in mine] == starts
        assert {(r.id, r.number, r.length, r.window_count) for r in mine} == {
            (f"p{index}", index + 1, len(sequence), len(starts))
        }
        assert all(not r.truncated for r in mine)
        if len(sequence) <= W:
            assert mine[0].sequence == sequence and not mine[0].is_window and mine[0].window_stride == 0
            continue
        assert all(r.is_window and r.window_stride == step and len(r.sequence) == W for r in mine)
        rebuilt = [""] * len(sequence)
        for r in mine:
            rebuilt[r.window_start : r.window_start + W] = r.sequence
        assert "".join(rebuilt) == sequence


def test_normaliser_keeps_overlength_sequences_whole_and_counts_them(proteins):
    path, sequences = proteins
    normalise = Normaliser(W, "window")
    got = [normalise(raw) for raw in read_fasta(path)]
    assert got == [(s, len(s)) for s in sequences]
    assert normalise.windowed == sum(len(s) > W for s in sequences) and normalise.truncated == 0


def test_short_proteins_are_the_records_of_truncate(proteins):
    path, sequences = proteins
    window = [r for r in SequenceDataset(path, max_length=W, on_overlength="window").records() if not r.is_window]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truncate = [r for r in SequenceDataset(path, max_length=W).records() if len(sequences[r.index]) <= W]
    assert window == truncate and len(window) == sum(len(s) <= W for s in sequences)


def test_replaced_residues_are_counted_once_per_protein(tmp_path):
    path = tmp_path / "x.faa"
    path.write_text(">long\n" + "MKJV" * 15 + "\n>short\nMKJ\n")
    records = list(SequenceDataset(path, max_length=W, on_overlength="window", invalid="X", report=False).records())
    assert [r.replaced for r in records if r.index == 0] == [15, 0, 0, 0, 0]
    batch = VarlenCollator(_converter())(records)
    assert batch.num_replaced == 16 and batch.replaced.tolist() == [15, 0, 0, 0, 0, 1]


# --- batches --------------------------------------------------------------------------------


def test_budget_counts_every_window_and_a_protein_over_the_budget_still_works(proteins):
    path, sequences = proteins
    max_tokens = 3 * (W + 2) + 5
    batches = list(SequenceDataset(path, max_length=W, max_tokens=max_tokens, on_overlength="window").batches())
    assert all(sum(len(r.sequence) + 2 for r in b) <= max_tokens for b in batches)
    assert any(len(s) + 2 > max_tokens for s in sequences), "no protein longer than the budget"
    spans = defaultdict(set)
    for k, b in enumerate(batches):
        for r in b:
            spans[r.index].add(k)
    assert any(len(v) > 1 for v in spans.values()), "no protein's windows span several batches"
    records = [r for b in batches for r in b]
    assert records == list(SequenceDataset(path, max_length=W, on_overlength="window").records())


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("world_size", [2, 3])
def test_windows_exactly_once_and_never_split_across_ranks(proteins, world_size, workers):
    path, sequences = proteins
    seen: dict[tuple[int, int], int] = {}
    for rank in range(world_size):
        dataset = SequenceDataset(
            path, max_length=W, max_tokens=60, on_overlength="window", rank=rank, world_size=world_size
        )
        loader = DataLoader(dataset, batch_size=None, collate_fn=VarlenCollator(_converter()), num_workers=workers)
        stream = [
            (i, s) for b in loader for i, s in zip(b.indices.tolist(), b.window_starts.tolist())
        ]  # this rank's windows, in the order they arrive
        assert stream == sorted(stream), f"rank {rank}: windows out of order"
        for key in stream:
            assert key not in seen, f"window {key} on ranks {seen[key]} and {rank}"
            seen[key] = rank
    expected = {(i, s) for i, seq in enumerate(sequences) for s in reference_starts(len(seq), W, W // 2)}
    assert set(seen) == expected
    assert all(rank == index % world_size for (index, _), rank in seen.items())


def test_skip_leaves_out_every_window_of_a_protein(proteins):
    path, sequences = proteins
    long = [i for i, s in enumerate(sequences) if len(s) > W]
    dataset = SequenceDataset(path, max_length=W, max_tokens=70, on_overlength="window", skip=long[:2])
    left = {r.index for b in dataset.rank_stream() for r in b}
    assert left == set(range(len(sequences))) - set(long[:2])


def test_collator_weights_and_window_fields(proteins):
    path, sequences = proteins
    records = list(SequenceDataset(path, max_length=W, on_overlength="window", window_stride=7).records())
    batch = VarlenCollator(_converter())(records)
    assert batch.window_starts.tolist() == [r.window_start for r in records]
    assert batch.window_counts.tolist() == [r.window_count for r in records]
    assert batch.num_windows == sum(r.is_window for r in records) and batch.num_truncated == 0
    assert batch.residue_weights.dtype == torch.float32 and batch.residue_weights.shape == batch.input_ids.shape
    cu = batch.cu_seqlens.tolist()
    for k, r in enumerate(records):
        weights = batch.residue_weights[cu[k] : cu[k + 1]]
        assert weights[0] == 0 and weights[-1] == 0, "BOS and EOS are never merged"
        if r.is_window:
            counts = np.zeros(r.length)
            for start in reference_starts(r.length, W, 7):
                counts[start : start + W] += 1
            want = torch.from_numpy(1 / counts[r.window_start : r.window_start + W]).float()
        else:
            want = torch.ones(len(r.sequence))
        assert torch.equal(weights[1:-1], want), f"record {k}"
    assert batch["residue_weights"] is batch.residue_weights
    moved = batch.to("cpu")
    assert all(getattr(moved, name) is not None for name in DEVICE_FIELDS)


def test_collator_refuses_to_truncate_a_window(proteins, alphabet):
    path, _ = proteins
    records = [r for r in SequenceDataset(path, max_length=W, on_overlength="window").records() if r.is_window]
    with pytest.raises(ValueError, match="truncation_seq_length=10 would cut windows"):
        VarlenCollator(alphabet.get_batch_converter(truncation_seq_length=10))(records[:2])


def _converter():
    import esm

    return esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter()
