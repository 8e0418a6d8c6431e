"""VirNucPro's two result files, byte for byte, written as frames stream in.

``prediction_results.txt`` (``ResultsWriter``): what ``prediction.py`` writes, one row per
frame in input order: ``Sequence_ID``, ``virus`` if score2 > score1 else ``others`` (its
``torch.max`` takes the first of equal scores), then the two scores as ``str`` of NumPy
float32 values (``'\\t'.join(map(str, probability))`` on a float32 row, as its loop does).

``prediction_results_highestscore.csv`` (``HighestScores``): what ``prediction.py`` makes of
that file with pandas (``read_csv``, ``Modified_ID = Sequence_ID.str[:-2]``, ``groupby``
with ``determine_virus``, ``to_csv(sep="\\t")``), computed here without pandas: per
``Modified_ID`` (the frame id less its last two characters: the chunk id), ``True`` when the
highest score2 >= the highest score1 (a tie is True), rows sorted as pandas' groupby sorts
its keys: by code point ("x_chunk_10" before "x_chunk_2"). Comparing the float32 values is
comparing what pandas parses back: distinct float32 values print as distinct decimals of at
most 9 digits, whose float64 parses keep their order. Fields are quoted as pandas' CSV writer
quotes them (csv's QUOTE_MINIMAL). One difference, on purpose: with no frame at all, pandas
writes a nonsense header (``index``, then the input's columns; VirNucPro crashes before);
here the file is the header ``Modified_ID\\tIs_Virus``.

Both write to a new file (never through an existing path), UTF-8, ``\\n`` line ends. Memory
is bounded: ``HighestScores`` keeps at most ``max_in_memory`` chunks, spilling sorted runs
to a folder the caller owns, then merges them.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

__all__ = [
    "HIGHEST_FILE",
    "HIGHEST_HEADER",
    "RESULTS_FILE",
    "RESULTS_HEADER",
    "HighestScores",
    "ResultsWriter",
    "checked_scores",
    "chunk_id",
    "chunk_is_virus",
    "result_lines",
]

RESULTS_FILE = "prediction_results.txt"
HIGHEST_FILE = "prediction_results_highestscore.csv"
RESULTS_HEADER = "Sequence_ID\tPrediction\tscore1\tscore2\n"
HIGHEST_HEADER = ("Modified_ID", "Is_Virus")


def chunk_id(frame_id: str) -> str:
    """VirNucPro's ``Modified_ID``: the frame id without its frame suffix (its last two characters, "F1".."R3")."""
    return frame_id[:-2]


def chunk_is_virus(max_score1: float, max_score2: float) -> bool:
    """VirNucPro's ``determine_virus``: a chunk is viral when its highest score2 >= its highest score1."""
    return max_score2 >= max_score1


def checked_scores(scores: np.ndarray, ids: Sequence[object]) -> np.ndarray:
    """``scores`` after checking it is ``(len(ids), 2)`` float32 and finite; ``ValueError`` naming the first bad row.

    Args:
        scores: (N, 2) float32: what VirNucPro prints (its probabilities are float32). A NaN or
            infinity means the features or the classifier are broken upstream.
        ids: N names for the rows, used in messages only (frame ids, or e.g. ``range(N)``).
    """
    if not isinstance(scores, np.ndarray) or scores.dtype != np.float32 or scores.shape != (len(ids), 2):
        got = f"{scores.dtype} {scores.shape}" if isinstance(scores, np.ndarray) else type(scores).__name__
        raise ValueError(f"scores must be a ({len(ids)}, 2) float32 array (one row per frame), got {got}")
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"frame {ids[first]!r} has scores {scores[first].tolist()}, and {int(bad.sum())} frame(s) of this span "
            "are not finite: the features or the classifier are broken; none of them was written"
        )
    return scores


def result_lines(ids: Sequence[str], scores: np.ndarray) -> str:
    """The rows of ``prediction_results.txt`` for these frames, as VirNucPro's loop writes them.

    Args:
        ids: N frame ids (``<record>_chunk_<k><F1..R3>``), in input order.
        scores: (N, 2) float32, finite: score1 ("others"), score2 ("virus") per frame.
    """
    checked_scores(scores, ids)
    lines = []
    for frame, probability in zip(ids, scores):
        label = "virus" if probability[1] > probability[0] else "others"
        lines.append(f"{frame}\t{label}\t" + "\t".join(map(str, probability)) + "\n")
    return "".join(lines)


def _new_text_file(path: str | os.PathLike) -> TextIO:
    """``path`` created exclusively (never written through an existing file), UTF-8, no newline translation."""
    return open(path, "x", encoding="utf-8", newline="")


class ResultsWriter:
    """``prediction_results.txt``, appended span by span; the header is written at creation."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = _new_text_file(path)
        self._file.write(RESULTS_HEADER)
        self.frames = 0

    def write(self, ids: Sequence[str], scores: np.ndarray) -> None:
        """Append these frames (``result_lines``' arguments); spans arrive in input order."""
        self._file.write(result_lines(ids, scores))
        self.frames += len(ids)

    def close(self) -> None:
        """Flush to disk and close."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HighestScores:
    """Per-chunk highest scores, collected span by span, written as ``prediction_results_highestscore.csv``.

    Args:
        spill_dir: an existing folder the caller owns, for sorted runs when more than
            ``max_in_memory`` chunks are held (removed by ``write``); None: never spill.
        max_in_memory: chunks held in memory before a run is spilled (about 200 bytes each).
    """

    def __init__(self, spill_dir: str | os.PathLike | None = None, *, max_in_memory: int = 1_000_000) -> None:
        if max_in_memory < 1:
            raise ValueError(f"max_in_memory must be >= 1, got {max_in_memory}")
        self._spill_dir = None if spill_dir is None else Path(spill_dir)
        self._limit = max_in_memory
        self._held: dict[str, tuple[float, float]] = {}
        self._runs: list[Path] = []

    def add(self, ids: Sequence[str], scores: np.ndarray) -> None:
        """Take these frames' scores ((N, 2) float32, finite) under their chunk ids."""
        held = self._held
        for frame, (score1, score2) in zip(ids, checked_scores(scores, ids).tolist()):
            key = chunk_id(frame)
            old = held.get(key)
            held[key] = (score1, score2) if old is None else (max(old[0], score1), max(old[1], score2))
            if len(held) > self._limit and self._spill_dir is not None:
                self._spill()

    def rows(self) -> Iterator[tuple[str, bool]]:
        """(Modified_ID, Is_Virus) for every chunk, sorted by code point; each chunk once."""
        runs = [self._read_run(path) for path in self._runs]
        merged = heapq.merge(*runs, sorted(self._held.items()), key=lambda item: item[0])
        for key, group in itertools.groupby(merged, key=lambda item: item[0]):
            maxima = [value for _, value in group]
            yield key, chunk_is_virus(max(m[0] for m in maxima), max(m[1] for m in maxima))

    def write(self, path: str | os.PathLike) -> int:
        """Write the CSV to ``path`` (a new file), remove the spilled runs; returns the number of chunk rows."""
        count = 0
        try:
            with _new_text_file(path) as handle:
                # pandas' to_csv writes through the csv module with these settings
                writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
                writer.writerow(HIGHEST_HEADER)
                for key, virus in self.rows():
                    writer.writerow((key, virus))
                    count += 1
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            for run in self._runs:
                run.unlink(missing_ok=True)
            self._runs.clear()
        return count

    def _spill(self) -> None:
        fd, name = tempfile.mkstemp(dir=self._spill_dir, prefix=".highest-run.", suffix=".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as run:
            # JSON keeps any id and every float exactly (repr round-trips)
            run.writelines(json.dumps([key, *value]) + "\n" for key, value in sorted(self._held.items()))
        self._runs.append(Path(name))
        self._held.clear()  # the same dict: add() holds it

    @staticmethod
    def _read_run(path: Path) -> Iterator[tuple[str, tuple[float, float]]]:
        with path.open(encoding="utf-8") as run:
            for line in run:
                key, score1, score2 = json.loads(line)
                yield key, (score1, score2)
