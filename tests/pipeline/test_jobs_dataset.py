"""The run's one DataLoader over every job: each record once, jobs in order, records in input order, with
byte-pair groups (each encoded by one worker) as with ESM-2's per-batch items."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast

import virnucpro.data.sequence_dataset as sequence_dataset
from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer
from virnucpro.pipeline.dataset import JobCollator, JobsDataset, flatten


@pytest.fixture(scope="module")
def bpe():
    return dnabert_tokenizer("random:dnabert-s")


def write(path: Path, count: int, seed: int, letters: str) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(f">r{i}\n{''.join(rng.choices(letters, k=rng.randint(1, 300)))}\n" for i in range(count)))
    return path


def load(datasets: list[SequenceDataset], tokenizer, workers: int) -> list[tuple[int, list[int], int]]:
    """(job, input positions, tokens) of every batch the pipeline's loader delivers, in order."""
    loader = DataLoader(
        JobsDataset(datasets), batch_size=None, collate_fn=JobCollator(VarlenCollator(tokenizer)), num_workers=workers
    )
    return [(job, batch.indices.tolist(), batch.num_tokens) for job, batch in flatten(iter(loader))]


@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("lanes", [1, 2])
def test_byte_pair_groups_give_every_record_once_in_order(tmp_path, bpe, monkeypatch, workers, lanes):
    monkeypatch.setattr(sequence_dataset, "GROUP_CHARACTERS_PER_TOKEN", 2)  # many groups of a few batches
    files = [write(tmp_path / "a.fna", 300, 1, "ACGTN"), write(tmp_path / "b.fna", 120, 2, "ACGT")]
    skip = [{0, 1, 2, 57, 299}, set()]
    reference = PreTrainedTokenizerFast(tokenizer_file=str(_saved(bpe, tmp_path)))
    for rank in range(lanes):
        datasets = [
            SequenceDataset(f, max_tokens=400, tokenizer=bpe, skip=s, rank=rank, world_size=lanes, report=False)
            for f, s in zip(files, skip)
        ]
        assert all(d.grouped for d in datasets)
        batches = load(datasets, bpe, workers)
        jobs = [job for job, _, _ in batches]
        assert jobs == sorted(jobs), "jobs out of order"
        for job, skipped in enumerate(skip):
            got = [i for j, indices, _ in batches if j == job for i in indices]
            want = [i for i in range(300 if job == 0 else 120) if i % lanes == rank and i not in skipped]
            assert got == want, f"job {job}, rank {rank}: {len(got)} records delivered, {len(want)} expected"
        sequences = {(job, i): s for job, f in enumerate(files) for i, s in enumerate(_sequences(f))}
        for job, indices, tokens in batches:
            counted = sum(len(ids) for ids in reference([sequences[job, i] for i in indices])["input_ids"])
            assert tokens == counted and (len(indices) == 1 or tokens <= 400), (job, indices, tokens, counted)


@pytest.mark.parametrize("workers", [0, 2])
def test_per_character_items_are_the_datasets_own_batches(tmp_path, workers):
    files = [write(tmp_path / "a.faa", 200, 3, "ACDEFGHIKLMNPQRSTVWY"), write(tmp_path / "b.faa", 50, 4, "MKV")]
    datasets = [SequenceDataset(f, max_tokens=900, report=False, allow_nucleotide_like=True) for f in files]
    assert not any(d.grouped for d in datasets)
    want = [(job, [r.index for r in b]) for job, d in enumerate(datasets) for b in d.batches()]
    assert [(job, indices) for job, indices, _ in load(datasets, datasets[0].tokenizer, workers)] == want


def _saved(tokenizer, folder: Path) -> Path:
    path = folder / "tokenizer.json"
    path.write_text(tokenizer.to_str())
    return path


def _sequences(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if not line.startswith(">")]
