"""``contigs.tsv``, ours: one row per input DNA record, in input order, summarising its chunks' calls.

VirNucPro calls chunks, not records (``prediction_results_highestscore.csv``); this table
only counts and summarises those calls per record, and adds no verdict of its own. A chunk's
call is VirNucPro's: viral when its highest score2 >= its highest score1, over its frames.
Columns (tab-separated, header first):

* ``id``: the record's id; ``length``: its bases; ``chunks``: the chunks VirNucPro cuts it into
  (0 for an empty record);
* ``scored_chunks``: chunks with at least one stop-free frame, hence scores (the others have
  no row in VirNucPro's files and are never called viral); ``frames``: frames scored, i.e. the
  record's rows in ``prediction_results.txt``, which follow each other in input order;
* ``virus_chunks``: chunks called viral; ``virus_fraction``: ``virus_chunks / chunks`` (Python's
  float repr; empty when ``chunks`` is 0);
* ``max_virus_score``: the highest score2 of any of its frames; ``mean_virus_score``: the mean,
  over its scored chunks, of each chunk's highest score2; both printed as NumPy prints a
  float32, empty when no chunk was scored.

Rows follow records, not ids: two records with one id are two rows (VirNucPro's CSV merges
their chunks of equal number under one ``Modified_ID``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .results import checked_scores, chunk_is_virus

__all__ = ["CONTIGS_FILE", "CONTIG_COLUMNS", "ContigRecord", "ContigTable"]

CONTIGS_FILE = "contigs.tsv"
CONTIG_COLUMNS = (
    "id",
    "length",
    "chunks",
    "scored_chunks",
    "frames",
    "virus_chunks",
    "virus_fraction",
    "max_virus_score",
    "mean_virus_score",
)


@dataclass(frozen=True, slots=True)
class ContigRecord:
    """One input DNA record: its id, its length in bases and the number of chunks VirNucPro cuts it into."""

    id: str
    length: int
    chunks: int


@dataclass(slots=True)
class _Tally:
    """One record's scored chunks so far."""

    frames: int = 0
    scored_chunks: int = 0
    virus_chunks: int = 0
    max_virus: float = -math.inf
    sum_virus: float = 0.0
    last_chunk: int = 0


class ContigTable:
    """Writes ``contigs.tsv`` from two streams in input order: the records, and the scored frames.

    Either stream may run ahead: a row is written once its record is known and the frames have
    moved past it (or ``finish``). Memory holds the records and tallies not yet written.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open(path, "x", encoding="utf-8", newline="")  # a new file, never an existing one
        self._file.write("\t".join(CONTIG_COLUMNS) + "\n")
        self._records: dict[int, ContigRecord] = {}
        self._given = 0  # records given so far
        self._written = 0  # rows written so far
        self._tallies: dict[int, _Tally] = {}
        self._open: list | None = None  # [source, chunk, frames, highest score1, highest score2]
        self._frontier = 0  # every frame of the records before this one has arrived

    def add_records(self, records: Iterable[ContigRecord]) -> None:
        """The next records in input order (every record, those without frames too)."""
        for record in records:
            self._records[self._given] = record
            self._given += 1
        self._flush()

    def add_frames(self, sources: Sequence[int], chunks: Sequence[int], scores: np.ndarray) -> None:
        """The next scored frames in input order.

        Args:
            sources: (N,) 0-based index of each frame's record among all input records.
            chunks: (N,) 1-based chunk number of each frame within its record.
            scores: (N, 2) float32, finite: score1, score2 per frame.
        """
        if len(chunks) != len(sources):
            raise ValueError(f"sources and chunks must have one value per frame, got {len(sources)} and {len(chunks)}")
        values = checked_scores(scores, range(len(sources))).tolist()
        for source, chunk, (score1, score2) in zip(np.asarray(sources).tolist(), np.asarray(chunks).tolist(), values):
            current = self._open
            if current is not None and (source, chunk) == (current[0], current[1]):
                current[2] += 1
                current[3], current[4] = max(current[3], score1), max(current[4], score2)
                continue
            if current is not None and (source, chunk) < (current[0], current[1]):
                raise ValueError(
                    f"frames out of input order: record {source} chunk {chunk} came after "
                    f"record {current[0]} chunk {current[1]}"
                )
            if source < 0 or chunk < 1:
                raise ValueError(f"frame of record {source}, chunk {chunk}: expected a record >= 0 and a chunk >= 1")
            self._close_chunk()
            self._open, self._frontier = [source, chunk, 1, score1, score2], source
        self._flush()

    def finish(self) -> int:
        """Write the remaining rows and close the file; returns the rows written.

        Raises ``ValueError`` if frames named a record that was never given.
        """
        self._close_chunk()
        self._frontier = math.inf
        self._flush()
        if self._tallies:
            raise ValueError(
                f"frames of record(s) {sorted(self._tallies)[:5]} arrived, but only {self._given} records were given"
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._written

    def _close_chunk(self) -> None:
        if self._open is None:
            return
        source, chunk, frames, score1, score2 = self._open
        tally = self._tallies.setdefault(source, _Tally())
        tally.frames += frames
        tally.scored_chunks += 1
        tally.virus_chunks += chunk_is_virus(score1, score2)
        tally.max_virus = max(tally.max_virus, score2)
        tally.sum_virus += score2
        tally.last_chunk = chunk
        self._open = None

    def _flush(self) -> None:
        while self._written < self._given and self._written < self._frontier:
            index = self._written
            record = self._records.pop(index)
            self._file.write(_row(record, self._tallies.pop(index, _Tally()), index))
            self._written += 1


def _row(record: ContigRecord, tally: _Tally, index: int) -> str:
    if tally.last_chunk > record.chunks:
        raise ValueError(
            f"record {index} ({record.id!r}) has {record.chunks} chunk(s), "
            f"but frames of its chunk {tally.last_chunk} arrived"
        )
    fraction = repr(tally.virus_chunks / record.chunks) if record.chunks else ""
    scored = tally.scored_chunks > 0
    highest = str(np.float32(tally.max_virus)) if scored else ""
    mean = str(np.float32(tally.sum_virus / tally.scored_chunks)) if scored else ""
    fields = (record.id, record.length, record.chunks, tally.scored_chunks, tally.frames, tally.virus_chunks)
    return "\t".join(map(str, fields)) + f"\t{fraction}\t{highest}\t{mean}\n"
