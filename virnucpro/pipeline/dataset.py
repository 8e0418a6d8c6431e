"""One DataLoader over every job of a run, so the GPU stays fed across sample boundaries.

Each job is a ``SequenceDataset`` over its inputs; batches never span jobs. The workers share
out the items of all jobs in one count, so the DataLoader, which takes from its workers
round-robin, delivers them in order: job by job, and within a job in input order.

An item is a list of batches. For a per-character tokenizer (ESM-2) it holds one batch, and a
job is batched exactly as a run on that job alone; every worker budgets every record (a
length and a sum each). For a byte-pair tokenizer budgeting means encoding, so an item is one
of the job's ``rank_groups``: only the worker that owns it encodes and budgets it
(``SequenceDataset.batches_of``), and its batches are those of the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from torch.utils.data import IterableDataset

from virnucpro.data import PackedBatch, Record, SequenceDataset, VarlenCollator
from virnucpro.data.sequence_dataset import worker_slot

__all__ = ["JobCollator", "JobsDataset", "flatten"]


class JobsDataset(IterableDataset):
    """``(job index, batches of records)`` for every job's items, in job order."""

    def __init__(self, datasets: Sequence[SequenceDataset]):
        super().__init__()
        self.datasets = tuple(datasets)

    def __iter__(self) -> Iterator[tuple[int, list[list[Record]]]]:
        worker, num_workers = worker_slot()
        k = 0
        for job, dataset in enumerate(self.datasets):
            if dataset.grouped:
                for group in dataset.rank_groups():
                    if k % num_workers == worker:
                        yield job, dataset.batches_of(group)  # encoded here, by this worker alone
                    k += 1
                continue
            for batch in dataset.rank_stream():
                if k % num_workers == worker:
                    yield job, [batch]
                k += 1


class JobCollator:
    """``VarlenCollator`` over each batch of a ``(job, batches)`` item; stateless, so safe in workers."""

    def __init__(self, collator: VarlenCollator):
        self.collator = collator

    def __call__(self, item: tuple[int, list[list[Record]]]) -> tuple[int, list[PackedBatch]]:
        job, batches = item
        return job, [self.collator(records) for records in batches]


def flatten(items: Iterable[tuple[int, list[PackedBatch]]]) -> Iterator[tuple[int, PackedBatch]]:
    """``(job, batch)`` for every batch of the loader's ``(job, batches)`` items, in order."""
    for job, batches in items:
        for batch in batches:
            yield job, batch
