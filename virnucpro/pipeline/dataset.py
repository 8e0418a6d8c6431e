"""One DataLoader over every job of a run, so the GPU stays fed across sample boundaries.

Each job is a ``SequenceDataset`` over its inputs, batched exactly as a run on that job
alone; batches never span jobs. The workers share out the batches of all jobs in one
count, so the DataLoader, which takes from its workers round-robin, delivers them in
order: job by job, and within a job in input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import IterableDataset

from virnucpro.data import PackedBatch, Record, SequenceDataset, VarlenCollator
from virnucpro.data.sequence_dataset import worker_slot

__all__ = ["JobCollator", "JobsDataset"]


class JobsDataset(IterableDataset):
    """``(job index, batch of records)`` for every job's batches, in job order."""

    def __init__(self, datasets: Sequence[SequenceDataset]):
        super().__init__()
        self.datasets = tuple(datasets)

    def __iter__(self) -> Iterator[tuple[int, list[Record]]]:
        worker, num_workers = worker_slot()
        k = 0
        for job, dataset in enumerate(self.datasets):
            for batch in dataset.rank_stream():
                if k % num_workers == worker:
                    yield job, batch
                k += 1


class JobCollator:
    """``VarlenCollator`` over the batch of a ``(job, batch)`` pair; stateless, so safe in workers."""

    def __init__(self, collator: VarlenCollator):
        self.collator = collator

    def __call__(self, item: tuple[int, list[Record]]) -> tuple[int, PackedBatch]:
        job, records = item
        return job, self.collator(records)
