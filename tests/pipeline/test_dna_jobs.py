"""``embed --dna`` against ``translate`` followed by ``embed``, and exact-once over workers, ranks and shards.

The translation itself is tested against VirNucPro's own functions in ``tests/data/test_dna.py``;
here the reference is our own ``translate`` output, embedded as protein FASTA.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from cli_helpers import run_cli
from conftest import CONTIGS
from torch.utils.data import DataLoader

import virnucpro
from virnucpro.data import DnaInput, SequenceDataset, VarlenCollator
from virnucpro.data.dna import read_dna

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def model(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def contigs():
    return [path for path in CONTIGS if "KK037166" in path.name or "SRR492066" in path.name]


def test_embed_dna_equals_translate_then_embed(capsys, tmp_path, model, contigs):
    proteins = tmp_path / "p.faa"
    assert run_cli(capsys, "translate", *contigs, "-o", proteins, "--chunk-size", "300").code == 0
    via_protein = tmp_path / "p.h5"
    assert run_cli(capsys, "embed", proteins, "-o", via_protein, "--model", model, "--max-tokens", "4000").code == 0
    direct = tmp_path / "d.h5"
    args = ("embed", "--dna", *contigs, "-o", direct, "--model", model, "--max-tokens", "4000", "--chunk-size", "300")
    assert run_cli(capsys, *args).code == 0
    a, b = virnucpro.read_embeddings(direct), virnucpro.read_embeddings(via_protein)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    expected = list(read_dna(contigs, chunk_size=300))
    assert a.columns["source_index"].tolist() == [p.source for p in expected]
    assert a.columns["chunk"].tolist() == [p.chunk for p in expected]
    assert a.columns["frame"].tolist() == [p.frame for p in expected]
    assert a.attrs["input_kind"] == "dna" and a.attrs["input_chunk_size"] == 300
    assert a.attrs["input_frames"] == "stop-free" and "VirNucPro" in a.attrs["input_translation"]


def test_dna_options_need_dna(capsys, tmp_path, model, contigs):
    result = run_cli(capsys, "embed", contigs[0], "-o", tmp_path / "o.h5", "--model", model, "--chunk-size", "300")
    assert result.code == 1 and "--dna" in result.err


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 0), (1, 3), (2, 2), (3, 1)])
def test_translated_proteins_come_out_exactly_once(contigs, batch_converter, world_size, num_workers):
    expected = [p.id for p in read_dna(contigs, chunk_size=500)]
    got = []
    for rank in range(world_size):
        dataset = SequenceDataset(contigs, max_tokens=3000, rank=rank, world_size=world_size, kind=DnaInput(500))
        loader = DataLoader(
            dataset, batch_size=None, collate_fn=VarlenCollator(batch_converter), num_workers=num_workers
        )
        got += [(int(i), sid) for batch in loader for i, sid in zip(batch.indices, batch.sequence_ids)]
    positions = Counter(i for i, _ in got)
    assert sorted(positions) == list(range(len(expected))) and set(positions.values()) == {1}, positions
    assert [sid for _, sid in sorted(got)] == expected


def test_dna_shards_then_assemble_equal_one_run(capsys, tmp_path, model, contigs):
    common = ("--dna", *contigs, "--model", model, "--max-tokens", "4000")
    one = tmp_path / "one.h5"
    assert run_cli(capsys, "embed", *common, "-o", one).code == 0
    out = tmp_path / "sharded.h5"
    for i in range(3):
        assert run_cli(capsys, "embed", *common, "-o", out, "--shard", f"{i}/3").code == 0
    assert run_cli(capsys, "assemble", out).code == 0
    a, b = virnucpro.read_embeddings(one), virnucpro.read_embeddings(out)
    assert a.ids.tolist() == b.ids.tolist()
    for name in ("source_index", "chunk", "frame", "lengths"):
        np.testing.assert_array_equal(a.columns[name], b.columns[name])
    diff = np.abs(a.embeddings - b.embeddings).max()
    assert diff <= 1e-6, f"max abs diff {diff:.3g}"
