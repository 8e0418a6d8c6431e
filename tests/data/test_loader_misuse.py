"""``SequenceDataset`` and ``VarlenCollator`` given arguments that do not fit, through real DataLoaders.

The reference for ``skip`` is the plain list of input positions left over,
computed here; a mask and the equivalent positions must give the same records
and the same batches.
"""

from __future__ import annotations

import random
from pathlib import Path

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


def test_pairs_in_batch_converter_style_are_not_mistaken_for_batches(batch_converter):
    with pytest.raises(ValueError, match=r"takes Records or mappings with 'id' and 'sequence', got a tuple"):
        VarlenCollator(batch_converter)([("p1", "MKV"), ("p2", "QQ")])
