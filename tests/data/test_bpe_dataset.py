"""``SequenceDataset`` and ``VarlenCollator`` with a byte-pair tokenizer (DNABERT-S's layout) on nucleotide FASTA.

The reference is transformers' fast tokenizer reading the same tokenizer.json (what VirNucPro
runs for DNABERT-S): token ids per record, and so the token budgets, drawn here by a plain loop.
"""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast

from virnucpro.data import NUCLEOTIDE, PROTEIN, Encoded, Normaliser, SequenceDataset, VarlenCollator
from virnucpro.data.fasta import FastaRecord
from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer


@pytest.fixture(scope="module")
def bpe():
    return dnabert_tokenizer("random:dnabert-s")


@pytest.fixture(scope="module")
def reference(bpe, tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    path.write_text(bpe.to_str())
    return PreTrainedTokenizerFast(tokenizer_file=str(path))


def dna_records(count: int, seed: int) -> list[tuple[str, str]]:
    """Random DNA, mixed case, some N runs and ambiguity codes, 1 to 700 bases."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        n = rng.choice([1, 2, rng.randint(3, 700)])
        seq = "".join(rng.choices("ACGTACGTACGTacgtNRY", k=n))
        out.append((f"dna{i}", seq))
    return out


def write(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{rid} x\n{seq[:60]}\n{seq[60:]}\n" for rid, seq in records))
    return path


def reference_batches(reference, records: list[tuple[str, str]], max_tokens: int) -> list[list[int]]:
    """Input positions per batch: greedy budgets over transformers' token counts."""
    counts = [len(ids) for ids in reference([s.upper() for _, s in records])["input_ids"]]
    batches, tokens = [[]], 0
    for index, count in enumerate(counts):
        if batches[-1] and tokens + count > max_tokens:
            batches.append([])
            tokens = 0
        batches[-1].append(index)
        tokens += count
    return [b for b in batches if b]


@pytest.mark.parametrize("max_tokens", [40, 700, 5000])
def test_budgets_count_real_tokens_and_batches_hold_transformers_tokens(tmp_path, bpe, reference, max_tokens):
    records = dna_records(150, seed=max_tokens)
    dataset = SequenceDataset(write(tmp_path / "dna.fna", records), max_tokens=max_tokens, tokenizer=bpe)
    assert dataset.kind is NUCLEOTIDE
    batches = list(dataset.batches())
    assert [[r.index for r in b] for b in batches] == reference_batches(reference, records, max_tokens)
    want = reference([s.upper() for _, s in records])["input_ids"]
    collate = VarlenCollator(bpe)
    for batch in batches:
        assert isinstance(batch, Encoded)
        packed = collate(batch)
        cu = packed.cu_seqlens.tolist()
        got = [packed.input_ids[cu[i] : cu[i + 1]].tolist() for i in range(len(batch))]
        assert got == [want[r.index] for r in batch]
        assert packed.residues.tolist() == [len(records[r.index][1]) for r in batch]  # bases, not tokens
        assert int(packed.max_seqlen) == max(cu[i + 1] - cu[i] for i in range(len(batch)))
        assert len(batch) == 1 or packed.num_tokens <= max_tokens


def test_a_batch_carrying_its_tokens_collates_as_one_encoded_afresh(tmp_path, bpe):
    batches = list(
        SequenceDataset(write(tmp_path / "d.fna", dna_records(60, 1)), max_tokens=900, tokenizer=bpe).batches()
    )
    collate = VarlenCollator(bpe)
    for batch in batches:
        carried, fresh = collate(batch), collate(list(batch))
        for key in ("input_ids", "cu_seqlens", "residues", "lengths", "indices"):
            assert torch.equal(carried[key], fresh[key]), key


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 0), (1, 2), (3, 2)])
def test_every_record_once_in_order_through_workers_and_ranks_with_skip(tmp_path, bpe, world_size, num_workers):
    records = dna_records(200, seed=7)
    path = write(tmp_path / "d.fna", records)
    skip = {3, 4, 5, 50, 199}
    seen = []
    for rank in range(world_size):
        dataset = SequenceDataset(path, max_tokens=500, tokenizer=bpe, skip=skip, rank=rank, world_size=world_size)
        loader = DataLoader(dataset, batch_size=None, collate_fn=VarlenCollator(bpe), num_workers=num_workers)
        indices = [i for batch in loader for i in batch.indices.tolist()]
        assert indices == sorted(indices), f"rank {rank} out of order"
        seen += indices
    assert sorted(seen) == [i for i in range(200) if i not in skip]


def test_dna_is_upper_cased_and_long_records_are_not_taken_for_a_mistake(tmp_path, bpe, reference):
    seq = "acgtnRYacgt" * 40  # 440 letters, all nucleotide codes: a protein run would refuse it
    (record,) = SequenceDataset(write(tmp_path / "d.fna", [("a", seq)]), tokenizer=bpe).records()
    assert record.sequence == seq.upper()
    packed = VarlenCollator(bpe)([record])
    assert packed.input_ids.tolist() == reference([seq.upper()])["input_ids"][0]


@pytest.mark.parametrize(
    ("sequence", "char", "position", "fix"),
    [
        ("ACGTXACGT", "X", 5, "fix the input"),
        ("ACGU", "U", 4, "write its U as T"),
        ("ACG-T", "-", 4, "fix the input"),
        ("ACGT*", "*", 5, "fix the input"),
        ("AC GT\nAEC", "E", 6, "fix the input"),
    ],
)
def test_a_character_outside_the_iupac_codes_is_named(tmp_path, bpe, sequence, char, position, fix):
    path = tmp_path / "bad.fna"
    path.write_text(f">ok\nACGT\n>bad_one desc\n{sequence}\n")
    with pytest.raises(ValueError) as info:
        list(SequenceDataset(path, tokenizer=bpe).records())
    message = str(info.value)
    assert str(path) in message and "'bad_one'" in message and repr(char) in message, message
    assert re.search(rf"position {position}\b", message) and "IUPAC" in message and fix in message, message


def test_an_iupac_code_the_tokenizer_lacks_is_named():
    normalise = Normaliser(100, residues="ACGTN", nucleotides=True)
    assert normalise(FastaRecord(Path("x.fna"), 1, "a", "acgtn")) == ("ACGTN", 5)
    with pytest.raises(ValueError, match=r"record 1 .*'a'.*nucleotide code 'R' at position 3.*reads A C G T N"):
        normalise(FastaRecord(Path("x.fna"), 1, "a", "ACRT"))


def test_over_length_dna_is_truncated_and_counted_or_refused(tmp_path, bpe):
    path = write(tmp_path / "d.fna", [("long", "ACGT" * 30), ("short", "ACGT")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(SequenceDataset(path, max_length=50, tokenizer=bpe).records())
    assert [(len(r.sequence), r.length, r.truncated) for r in records] == [(50, 120, True), (4, 4, False)]
    assert any("truncated 1 sequences" in str(w.message) for w in caught)
    assert VarlenCollator(bpe)(records).num_truncated == 1
    with pytest.raises(
        ValueError, match=r"'long'\) has 120 bases, more than max_length=50; pass on_overlength='truncate'"
    ):
        list(SequenceDataset(path, max_length=50, tokenizer=bpe, on_overlength="raise").records())


def test_windows_are_refused_for_byte_pairs(tmp_path, bpe):
    with pytest.raises(ValueError, match=r"on_overlength='window'.*DNABERT-S's tokens span several characters"):
        SequenceDataset(write(tmp_path / "d.fna", [("a", "ACGT")]), tokenizer=bpe, on_overlength="window")


def test_input_kind_and_tokenizer_must_read_the_same_sequences(tmp_path, bpe):
    path = write(tmp_path / "d.fna", [("a", "ACGT")])
    with pytest.raises(ValueError, match=r"gives protein sequences, but DNABERT-S's tokenizer reads nucleotide"):
        SequenceDataset(path, tokenizer=bpe, kind=PROTEIN)
    with pytest.raises(ValueError, match=r"gives nucleotide sequences, but ESM's tokenizer reads protein"):
        SequenceDataset(path, kind=NUCLEOTIDE)
    with pytest.raises(ValueError, match=r"invalid='X' replaces unknown protein residues"):
        SequenceDataset(path, tokenizer=bpe, invalid="X")


def test_budget_chunks_do_not_move_batch_boundaries(tmp_path, bpe, reference, monkeypatch):
    import virnucpro.data.sequence_dataset as module

    records = dna_records(120, seed=3)
    path = write(tmp_path / "d.fna", records)
    want = reference_batches(reference, records, 600)
    for chunk in (1, 7, 1000):
        monkeypatch.setattr(module, "BUDGET_CHUNK", chunk)
        batches = list(SequenceDataset(path, max_tokens=600, tokenizer=bpe).batches())
        assert [[r.index for r in b] for b in batches] == want, f"BUDGET_CHUNK={chunk}"
        ids = np.concatenate([b.ids for b in batches])
        assert ids.tolist() == [
            t for i in range(len(records)) for t in reference([records[i][1].upper()])["input_ids"][0]
        ]
