"""``SequenceDataset`` and ``VarlenCollator`` given arguments that do not fit, through real DataLoaders.

The reference for ``skip`` is the plain list of input positions left over,
computed here; a mask and the equivalent positions must give the same records
and the same batches.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from virnucpro.data import SequenceDataset, VarlenCollator

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
N_RECORDS = 41


@pytest.fixture(scope="module")
def fasta(tmp_path_factory) -> Path:
    rng = random.Random(4)
    path = tmp_path_factory.mktemp("misuse") / "proteins.faa"
    path.write_text(
        "".join(f">p{i}\n{''.join(rng.choices(AMINO_ACIDS, k=rng.randint(20, 200)))}\n" for i in range(N_RECORDS))
    )
    return path


def indices_collate(batch) -> list[int]:
    """Input positions of a record or of a list of records (module level: workers pickle it)."""
    return [r.index for r in batch] if isinstance(batch, list) else [batch.index]


# --- VarlenCollator under DataLoader(batch_size=k) over token-budgeted batches ---------------


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("num_workers", [0, 1])
def test_batches_of_batches_get_a_clear_error(fasta, batch_converter, batch_size, num_workers):
    ds = SequenceDataset(fasta, max_tokens=500, report=False)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        collate_fn=VarlenCollator(batch_converter),
        num_workers=num_workers,
        timeout=60 if num_workers else 0,
    )
    pattern = (
        r"VarlenCollator got a batch of lists[^\n]*SequenceDataset\(max_tokens=\.\.\.\) already yields whole batches"
        r"[^\n]*DataLoader\(batch_size=None\)"
    )
    with pytest.raises(ValueError, match=pattern):
        next(iter(loader))


def test_batch_size_none_is_the_fix(fasta, batch_converter):
    ds = SequenceDataset(fasta, max_tokens=500, report=False)
    batches = list(DataLoader(ds, batch_size=None, collate_fn=VarlenCollator(batch_converter)))
    assert [int(i) for b in batches for i in b.indices] == list(range(N_RECORDS))


# --- skip: a mask or input positions ----------------------------------------------------------


def loaded(fasta: Path, skip, token_mode: bool, num_workers: int = 2) -> list[list[int]]:
    ds = SequenceDataset(fasta, max_tokens=500 if token_mode else None, skip=skip, report=False)
    loader = DataLoader(
        ds,
        batch_size=None if token_mode else 4,
        collate_fn=indices_collate,
        num_workers=num_workers,
        timeout=60 if num_workers else 0,
    )
    return [sorted(b) if not token_mode else b for b in loader]


@pytest.mark.parametrize("token_mode", [False, True], ids=["records", "tokens"])
@pytest.mark.parametrize(
    "skip",
    [[3, 5], (3, 5), {5, 3}, np.array([5, 3]), np.array([3, 5], dtype=np.uint8), range(3, 6, 2), lambda: iter([3, 5])],
    ids=["list", "tuple", "set", "int64", "uint8", "range", "iterator"],
)
def test_skip_as_positions(fasta, skip, token_mode):
    skip = skip() if callable(skip) else skip  # a fresh iterator for each run
    got = sorted(i for b in loaded(fasta, skip, token_mode) for i in b)
    assert got == [i for i in range(N_RECORDS) if i not in (3, 5)], f"skip={skip!r}: got {got}"


@pytest.mark.parametrize("token_mode", [False, True], ids=["records", "tokens"])
def test_skip_as_a_mask_and_as_positions_agree(fasta, token_mode):
    rng = np.random.default_rng(0)
    mask = rng.random(N_RECORDS - 5) < 0.4  # shorter than the input: the last 5 are never skipped
    positions = np.flatnonzero(mask).tolist()
    expected = [i for i in range(N_RECORDS) if i not in positions]
    by_mask, by_list = loaded(fasta, mask, token_mode), loaded(fasta, positions, token_mode)
    assert sorted(i for b in by_mask for i in b) == expected
    assert by_mask == by_list, "a mask and the same positions must give the same batches"
    assert loaded(fasta, mask.tolist(), token_mode) == by_mask, "a list of bools is a mask"


@pytest.mark.parametrize(
    "skip", [[], np.array([], dtype=bool), [N_RECORDS, 10**12]], ids=["empty", "empty-mask", "past-end"]
)
def test_skip_that_skips_nothing(fasta, skip):
    assert sorted(i for b in loaded(fasta, skip, False, num_workers=0) for i in b) == list(range(N_RECORDS))


@pytest.mark.parametrize(
    ("skip", "pattern"),
    [
        (
            [3.0, 5.0],
            r"skip must be a boolean mask \(a numpy bool array\) or a collection of int input positions, "
            r"got float64 values such as 3\.0",
        ),
        (np.array([0.5]), r"got float64 values such as 0\.5"),
        (["3", "5"], r"got <U1 values such as '3'"),
        ([3, -1], r"skip holds the negative position -1; input positions count from 0"),
        (3, r"skip must be 1-D, .* got shape \(\)"),
        ([[3, 5]], r"skip must be 1-D, .* got shape \(1, 2\)"),
    ],
    ids=["floats", "float-array", "strings", "negative", "scalar", "2-d"],
)
def test_skip_refuses_anything_else(fasta, skip, pattern):
    with pytest.raises(ValueError, match=pattern):
        SequenceDataset(fasta, skip=skip)


def test_skip_is_copied_not_shared(fasta):
    mask = np.zeros(N_RECORDS, dtype=bool)
    ds = SequenceDataset(fasta, skip=mask, report=False)
    mask[:] = True  # the caller's array changing later must not change the dataset
    assert [r.index for r in ds.records()] == list(range(N_RECORDS))


def test_pairs_in_batch_converter_style_are_not_mistaken_for_batches(batch_converter):
    with pytest.raises(ValueError, match=r"takes Records or mappings with 'id' and 'sequence', got a tuple"):
        VarlenCollator(batch_converter)([("p1", "MKV"), ("p2", "QQ")])
