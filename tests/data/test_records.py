"""Every record the data layer yields reads both ways: as a typed, frozen dataclass and as a read-only mapping.

The reference for the mapping is the dataclass itself: ``record[name]`` must be the
attribute ``name`` for every field (``dataclasses.fields``), in field order, and nothing
else. The records come from the library's own streams: ``SequenceDataset`` (plain,
truncated, windows, DNA translated), ``read_fasta``, ``read_dna`` and ``VarlenCollator``.
"""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import CONTIGS
from torch.utils.data import DataLoader

from virnucpro.data import FastaRecord, PackedBatch, Record, SequenceDataset, VarlenCollator, read_fasta
from virnucpro.data.dna import Protein, read_dna
from virnucpro.data.inputs import DnaInput

pytestmark = pytest.mark.filterwarnings(
    "ignore:This DataLoader will create:UserWarning",
    "ignore:cut .* into overlapping windows:UserWarning",
    "ignore:truncated .* sequences:UserWarning",
)

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def proteins(tmp_path_factory) -> Path:
    rng = random.Random(21)
    path = tmp_path_factory.mktemp("records") / "proteins.faa"
    lengths = [12, 45, 30, 7, 61]  # two over max_length=30 below
    sequences = ["".join(rng.choices(AMINO_ACIDS, k=n)) for n in lengths]
    path.write_text("".join(f">p{i} protein {i}\n{s}\n" for i, s in enumerate(sequences)))
    return path


def as_fields(obj) -> dict:
    """The reference: each dataclass field read as an attribute, in declaration order."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def assert_reads_as_a_mapping(obj, extra: dict | None = None) -> None:
    """``obj`` answers the read-only Mapping API with exactly its fields (plus ``extra``)."""
    expected = {**as_fields(obj), **(extra or {})}
    name = type(obj).__name__
    assert list(obj.keys()) == list(expected), f"{name}: keys {list(obj.keys())}, fields {list(expected)}"
    assert list(obj) == list(expected) and len(obj) == len(expected)
    assert dict(obj) == expected, f"{name}: dict() {dict(obj)} != fields {expected}"
    assert dict(obj.items()) == expected and list(obj.values()) == list(expected.values())
    for key, value in expected.items():
        assert key in obj and obj[key] is value and obj.get(key) is value, f"{name}[{key!r}]"
    assert "no_such_key" not in obj and obj.get("no_such_key", "default") == "default"
    with pytest.raises(KeyError) as info:
        obj["no_such_key"]
    assert "'no_such_key'" in str(info.value) and all(repr(k) in str(info.value) for k in expected), str(info.value)
    with pytest.raises(KeyError):
        obj[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, next(iter(expected)), None)
    with pytest.raises(TypeError):
        obj[next(iter(expected))] = None  # read-only
    # Not a registered Mapping: the DataLoader would rebuild it as a plain dict (field_mapping.py).
    assert not isinstance(obj, Mapping)


def test_plain_and_truncated_records(proteins):
    records = list(SequenceDataset(proteins, max_length=30))
    assert [r.truncated for r in records] == [False, True, False, False, True]
    for record in records:
        assert_reads_as_a_mapping(record)
        assert "is_window" not in record and "truncated" not in record  # derived: attributes only
        assert Record(**dict(record)) == record
        assert not hasattr(record, "__dict__"), "Record keeps its slots"
        assert pickle.loads(pickle.dumps(record)) == record


def test_window_records(proteins):
    records = list(SequenceDataset(proteins, max_length=30, on_overlength="window", window_stride=15))
    windows = [r for r in records if r.is_window]
    assert len(windows) >= 4 and all(type(r) is Record for r in records)
    for record in windows:
        assert_reads_as_a_mapping(record)
        assert record["window_start"] == record.window_start and record["window_stride"] == 15
        assert record["sequence"] == record.sequence and len(record["sequence"]) <= 30


def test_dna_derived_records():
    dataset = SequenceDataset(CONTIGS[0], kind=DnaInput(500), report=False)
    records = [r for _, r in zip(range(50), dataset.records())]
    assert records and all(type(r) is Record for r in records)
    for record in records:
        assert_reads_as_a_mapping(record)
        assert record["columns"] is record.columns and set(record["columns"]) == {"source_index", "chunk", "frame"}


def test_raw_fasta_records_and_translated_proteins(proteins):
    fasta = list(read_fasta(proteins))
    translated = [p for _, p in zip(range(20), read_dna(CONTIGS[0]))]
    assert fasta and translated
    for record in fasta:
        assert type(record) is FastaRecord
        assert_reads_as_a_mapping(record)
    for protein in translated:
        assert type(protein) is Protein
        assert_reads_as_a_mapping(protein)


def test_packed_batch_reads_as_the_plans_dict(proteins, batch_converter):
    batch = VarlenCollator(batch_converter)(list(SequenceDataset(proteins, max_length=30)))
    assert type(batch) is PackedBatch
    assert_reads_as_a_mapping(batch, extra={"num_sequences": batch.num_sequences})


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("max_tokens", [None, 60])
def test_dataloader_keeps_records_typed(proteins, num_workers, max_tokens):
    """Without a collate_fn the DataLoader converts Mappings into dicts; typed records pass as they are."""
    dataset = SequenceDataset(proteins, max_length=30, max_tokens=max_tokens, report=False)
    items = list(DataLoader(dataset, batch_size=None, num_workers=num_workers))
    records = [r for item in items for r in (item if isinstance(item, list) else [item])]
    assert all(type(r) is Record for r in records), {type(r).__name__ for r in records}
    assert [r["index"] for r in records] == list(range(5))
