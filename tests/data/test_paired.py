"""``PairedCollator``: translated frames packed for ESM-2 and DNABERT-S at once.

References: the protein side must be exactly ``VarlenCollator``'s packing of the same records;
the DNA side, DNABERT-S's own tokenizer (transformers' ``PreTrainedTokenizerFast`` on the same
tokenizer.json) applied to VirNucPro's DNA slice of each frame, the slices being what
``virnucpro.data.dna`` (tested against VirNucPro's ``identify_seq``) pairs with each protein.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import CONTIGS
from transformers import PreTrainedTokenizerFast

from virnucpro.data import DnaInput, PairedCollator, SequenceDataset, VarlenCollator
from virnucpro.data.dna import read_dna
from virnucpro.data.paired import pieces
from virnucpro.models import family_for

ESM = family_for("random:esm2_t6_8M_UR50D").tokenizer("random:esm2_t6_8M_UR50D")
DNABERT = family_for("random:dnabert-s").tokenizer("random:dnabert-s")


@pytest.fixture(scope="module")
def batches():
    dataset = SequenceDataset(
        CONTIGS, max_tokens=700, tokenizer=ESM, kind=DnaInput(300, nucleotides=True), report=False
    )
    return list(dataset.batches())


def test_both_sides_hold_the_same_frames_in_order_with_virnucpros_slices(tmp_path, batches):
    reference = PreTrainedTokenizerFast(tokenizer_file=str(_saved(tmp_path)))
    collate = pickle.loads(pickle.dumps(PairedCollator(ESM, DNABERT)))  # as the DataLoader's workers get it
    proteins = list(read_dna(CONTIGS, 300))
    assert sum(map(len, batches)) == len(proteins) > 1000
    seen = 0
    for records in batches:
        paired = collate(records)
        expected = VarlenCollator(ESM)(records)
        assert torch.equal(paired.protein.input_ids, expected.input_ids)
        assert torch.equal(paired.protein.cu_seqlens, expected.cu_seqlens)
        assert paired.protein.sequence_ids == [r.id for r in records]
        slices = [p.nucleotide for p in proteins[seen : seen + len(records)]]
        assert [r.nucleotide for r in records] == slices
        ids = [t for piece in paired.nucleotide for t in _split(piece)]
        assert ids == reference(slices)["input_ids"], "DNA tokens differ from DNABERT-S's own tokenizer"
        assert [i for piece in paired.nucleotide for i in piece.sequence_ids] == paired.protein.sequence_ids
        assert all(
            piece.num_tokens <= paired.protein.num_tokens or piece.num_sequences == 1 for piece in paired.nucleotide
        )
        assert paired.num_completed == len(records)
        seen += len(records)


def test_slices_longer_than_the_protein_budget_are_cut_into_pieces():
    lengths = np.array([5, 5, 20, 3, 3, 3])
    assert pieces(lengths, 10) == [(0, 2), (2, 3), (3, 6)]
    assert pieces(lengths, 100) == [(0, 6)]
    assert pieces(np.array([], dtype=np.int64), 10) == []


def test_a_record_without_its_dna_slice_is_refused_by_name(batches):
    dataset = SequenceDataset(CONTIGS[0], max_tokens=700, tokenizer=ESM, kind=DnaInput(300), report=False)
    records = next(iter(dataset.batches()))
    with pytest.raises(ValueError, match=rf"record '{records[0].id}' .*carries no DNA slice.*nucleotides=True"):
        PairedCollator(ESM, DNABERT)(records)


def _saved(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(DNABERT.to_str())
    return path


def _split(batch) -> list[list[int]]:
    cu = batch.cu_seqlens.tolist()
    ids = batch.input_ids.tolist()
    return [ids[a:b] for a, b in zip(cu[:-1], cu[1:])]
