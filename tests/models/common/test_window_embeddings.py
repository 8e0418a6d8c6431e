"""Proteins longer than max_length, embedded as overlapping windows, against fair-esm run on each window.

The reference is written here, apart from virnucpro: the window rule of the issue (starts
0, S, 2S, ... while start + W < L, then L - W), each window run on its own through
fair-esm's padded forward (``padded_forward``), every residue's rows averaged over the
windows that cover it; ``mean`` is the mean of those, ``bos`` the mean of the windows' BOS
rows, ``per-token`` the merged rows. Ours is the library path a user of the DataLoader API
takes: ``SequenceDataset(on_overlength="window", max_tokens=...)`` + ``VarlenCollator`` in a
real DataLoader, ``PackedESM2`` (fp32, reference attention), ``window_partials`` and
``WindowMerger``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_esm2
from window_reference import AMINO_ACIDS, LAYERS, LENGTHS, W, reference
from torch.utils.data import DataLoader

from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models import POOLINGS, ForwardOptions, PackedESM2, RowGroup, WindowMerger, window_partials

pytestmark = pytest.mark.filterwarnings(
    "ignore:This DataLoader will create:UserWarning", "ignore:cut .* into overlapping windows:UserWarning"
)

MAX_TOKENS = 100  # three windows (W + 2 tokens each) to a batch; the longest proteins exceed it alone
TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these batches are tiny, and on a shared CPU two threads spinning for
    each other made this module ten times slower (it changes no result: fp32 tolerances only)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, batch_converter):
    """(fasta path, sequences, fair-esm model, packed model)."""
    rng = random.Random(7)
    sequences = ["".join(rng.choices(AMINO_ACIDS, k=n)) for n in LENGTHS]
    path = tmp_path_factory.mktemp("windows") / "mixed.faa"
    path.write_text("".join(f">p{i} length {len(s)}\n{s}\n" for i, s in enumerate(sequences)))
    model = tiny_esm2(3, 64, 4, seed=5)
    packed = PackedESM2(model, dtype=torch.float32, options=ForwardOptions(attention="reference"))
    return path, sequences, model, packed


@pytest.fixture(scope="module")
def expected(setup, batch_converter):
    """{stride: reference per protein}, computed once per stride."""
    path, sequences, model, _ = setup
    cache: dict[int, list[dict[str, np.ndarray]]] = {}

    def get(stride: int) -> list[dict[str, np.ndarray]]:
        if stride not in cache:
            cache[stride] = reference(model, batch_converter, sequences, stride)
        return cache[stride]

    return get


def embed(
    path: Path, packed, converter, pooling: str, *, workers: int = 0, stride: int | None = None,
    on_overlength: str = "window", max_tokens: int | None = MAX_TOKENS, rank: int = 0, world_size: int = 1,
) -> tuple[list[RowGroup], Counter]:  # fmt: skip
    """Our rows through the DataLoader API: the complete record groups per batch, and how many
    batches each input position's records (windows) came in."""
    dataset = SequenceDataset(
        path, max_length=W, max_tokens=max_tokens, on_overlength=on_overlength, window_stride=stride,
        rank=rank, world_size=world_size,
    )  # fmt: skip
    loader = DataLoader(dataset, batch_size=None, collate_fn=VarlenCollator(converter), num_workers=workers)
    mode, merger = POOLINGS[pooling], WindowMerger(POOLINGS[pooling].per_token)
    groups, batches_of = [], Counter()
    for batch in loader:
        reps = packed(batch.to("cpu"), repr_layers=LAYERS)["representations"]
        rows = torch.stack([window_partials(mode, reps[layer], batch) for layer in LAYERS], dim=1)
        groups.append(merger.add(RowGroup.from_batch(batch, rows.numpy())))
        batches_of.update(set(batch.indices.tolist()))
    merger.finish()
    return groups, batches_of


def per_record(groups: list[RowGroup], per_token: bool) -> list[tuple[int, np.ndarray, int]]:
    """(index, rows, residues) of every record, in the order they came."""
    out = []
    for g in groups:
        bounds = np.concatenate([[0], np.cumsum(g.residues if per_token else np.ones(len(g), np.int64))])
        out += [(int(g.indices[i]), g.rows[bounds[i] : bounds[i + 1]], int(g.residues[i])) for i in range(len(g))]
    return out


def check(records: list[tuple[int, np.ndarray, int]], expected, sequences, pooling: str, what: str) -> None:
    per_token = POOLINGS[pooling].per_token
    for index, rows, residues in records:
        want = expected[index][pooling]
        assert residues == len(sequences[index]), f"{what}: record {index} has {residues} residues, not L"
        got = rows if per_token else rows[0]
        assert got.shape == want.shape, f"{what}: record {index} (L={len(sequences[index])}) shape {got.shape}"
        d = np.abs(got.astype(np.float64) - want)
        assert d.max() <= TOLERANCE, (
            f"{what}: record {index} (L={len(sequences[index])}) vs fair-esm per window: "
            f"max abs diff {d.max():.2e}, mean {d.mean():.2e}"
        )


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_windows_match_fair_esm_per_window(setup, expected, batch_converter, pooling, workers):
    path, sequences, _, packed = setup
    groups, batches_of = embed(path, packed, batch_converter, pooling, workers=workers)
    records = per_record(groups, POOLINGS[pooling].per_token)
    assert [r[0] for r in records] == list(range(len(sequences))), "one row group per record, in input order"
    check(records, expected(W // 2), sequences, pooling, f"pooling={pooling}, workers={workers}")
    spread = [i for i, n in batches_of.items() if n > 1]
    assert spread, "no protein's windows spanned several batches: the test does not test that"


@pytest.mark.parametrize("stride", [1, 7, W])
@pytest.mark.parametrize("pooling", ["mean", "per-token"])
def test_window_strides(setup, expected, batch_converter, pooling, stride):
    path, sequences, _, packed = setup
    groups, _ = embed(path, packed, batch_converter, pooling, stride=stride, max_tokens=20 * (W + 2))
    records = per_record(groups, POOLINGS[pooling].per_token)
    assert [r[0] for r in records] == list(range(len(sequences)))
    check(records, expected(stride), sequences, pooling, f"pooling={pooling}, stride={stride}")


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_embed_every_protein_exactly_once(setup, expected, batch_converter, world_size, workers):
    path, sequences, _, packed = setup
    records = []
    for rank in range(world_size):
        groups, _ = embed(path, packed, batch_converter, "bos", workers=workers, rank=rank, world_size=world_size)
        mine = per_record(groups, per_token=False)
        assert all(i % world_size == rank for i, _, _ in mine), f"rank {rank} got another rank's record"
        records += mine
    assert sorted(r[0] for r in records) == list(range(len(sequences))), "every record exactly once"
    check(records, expected(W // 2), sequences, "bos", f"world_size={world_size}, workers={workers}")


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_short_proteins_are_bitwise_as_with_truncate(setup, batch_converter, pooling, tmp_path):
    """A file of proteins with L <= W: the same batches, and the same rows bit for bit."""
    _, sequences, _, packed = setup
    short = tmp_path / "short.faa"
    short.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(sequences) if len(s) <= W))
    window, _ = embed(short, packed, batch_converter, pooling, max_tokens=60)
    truncate, _ = embed(short, packed, batch_converter, pooling, max_tokens=60, on_overlength="truncate")
    assert len(window) == len(truncate) > 1
    for a, b in zip(window, truncate):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.rows, b.rows), f"pooling={pooling}"


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_plain_records_in_a_batch_with_windows_are_bitwise_pool(setup, batch_converter, pooling):
    """``window_partials`` selects ``pool``'s own rows for plain records, even beside windows."""
    path, _, _, packed = setup
    (batch,) = [
        b for b in map(VarlenCollator(batch_converter), _mixed_batches(path)) if 0 < b.num_windows < b.num_sequences
    ][:1]
    mode = POOLINGS[pooling]
    reps = packed(batch, repr_layers=[3])["representations"][3]
    got, plain = window_partials(mode, reps, batch), mode.pool(reps, batch.cu_seqlens)
    keep = (batch.window_counts == 1).tolist()
    if mode.per_token:
        keep = [k for k, n in zip(keep, batch.residues.tolist()) for _ in range(n)]
    keep_t = torch.tensor(keep)
    assert got.dtype == torch.float32 and torch.equal(got[keep_t], plain[keep_t].float()), f"pooling={pooling}"


def _mixed_batches(path: Path) -> list:
    return list(SequenceDataset(path, max_length=W, max_tokens=MAX_TOKENS, on_overlength="window").batches())


def test_pooling_without_window_pool_is_refused(setup, batch_converter):
    path, _, _, packed = setup
    batch = next(b for b in map(VarlenCollator(batch_converter), _mixed_batches(path)) if b.num_windows)
    mode = POOLINGS["mean"]._replace(name="custom", window_pool=None)
    reps = packed(batch, repr_layers=[1])["representations"][1]
    refused = r"pooling='custom' \(CLI: --pooling custom\) cannot merge windows.*--on-overlength truncate"
    with pytest.raises(ValueError, match=refused):
        window_partials(mode, reps, batch)
