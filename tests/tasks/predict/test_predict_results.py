"""VirNucPro's result files: ours byte for byte against VirNucPro's own writing code.

The reference is ``prediction.py``'s ``predict()`` (its softmax, its ``torch.max`` labels) and
its result writing (the loop that writes ``prediction_results.txt``, then pandas' ``read_csv``,
``groupby(...).apply(determine_virus)``, ``to_csv``), vendored verbatim in
``tests/reference/virnucpro_prediction.py``. ``predict`` is given an identity model and batches
of logits, so both sides start from the same logits.
"""

from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from predict_outputs import frames_of, write_fasta
from virnucpro.models.classifier import softmax_scores
from virnucpro.tasks.predict import (
    HIGHEST_FILE,
    RESULTS_FILE,
    RESULTS_HEADER,
    HighestScores,
    ResultsWriter,
    result_lines,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
from virnucpro_prediction import predict, write_results  # noqa: E402


def virnucpros(folder: Path, ids: list[str], logits: torch.Tensor) -> tuple[bytes, bytes]:
    """VirNucPro's two files for these frames: predict() in its 256-row batches, then its writing code."""
    batches = [(logits[start : start + 256], ids[start : start + 256]) for start in range(0, len(ids), 256)]
    folder.mkdir()
    with warnings.catch_warnings():  # pandas' notes about groupby.apply are not ours to fix
        warnings.simplefilter("ignore")
        seqids, predictions, probabilities = predict(torch.nn.Identity(), batches, torch.device("cpu"))
        write_results(f"{folder}/", seqids, predictions, probabilities)
    return (folder / RESULTS_FILE).read_bytes(), (folder / HIGHEST_FILE).read_bytes()


def ours(folder: Path, ids: list[str], logits: torch.Tensor, spans: list[int], **highest) -> tuple[bytes, bytes]:
    """Our two files, the frames arriving in spans of the given sizes."""
    scores = softmax_scores(logits).numpy()
    folder.mkdir()
    collected = HighestScores(**highest)
    with ResultsWriter(folder / RESULTS_FILE) as writer:
        start = 0
        for size in spans:
            writer.write(ids[start : start + size], scores[start : start + size])
            collected.add(ids[start : start + size], scores[start : start + size])
            start += size
    assert start == len(ids)
    collected.write(folder / HIGHEST_FILE)
    return (folder / RESULTS_FILE).read_bytes(), (folder / HIGHEST_FILE).read_bytes()


def assert_same_files(tmp_path: Path, ids: list[str], logits: torch.Tensor, spans: list[int], **highest) -> bytes:
    expected = virnucpros(tmp_path / "virnucpro", ids, logits)
    got = ours(tmp_path / "ours", ids, logits, spans, **highest)
    assert got[0] == expected[0], "prediction_results.txt differs"
    assert got[1] == expected[1], "prediction_results_highestscore.csv differs"
    return got[1]


def edge_cases() -> tuple[list[str], torch.Tensor]:
    """Ties, a chunk whose highest scores tie, 1.0 and tiny scores, ids of every shape and order."""
    rows = [
        ("x_chunk_10F1", (0.0, 0.0)),  # equal scores: torch.max takes "others"
        ("x_chunk_2F1", (1.5, -0.25)),
        ("x_chunk_2R1", (-0.25, 1.5)),  # with F1: highest score1 == highest score2 -> True
        ("x_chunk_1R3", (0.0, 100.0)),  # score1 ~ 4e-44, a float32 subnormal; score2 1.0
        ("x_chunk_11F2", (200.0, 0.0)),  # 1.0 and 0.0
        ("NODE_1_length_5000_cov_3.5_chunk_1F1", (-20.0, 3.5)),
        ("a_chunk_1F1", (1e-3, 0.0)),
        ("dup_chunk_1F1", (2.0, 0.0)),
        ("ä_chunk_1F1", (0.3, 0.2)),
        ("Z_chunk_1F1", (0.2, 0.3)),
        ("z_chunk_1R2", (5.0, 5.0)),
        ('q"uote_chunk_1F3', (0.0, 1.0)),  # a quote inside: pandas' csv writer quotes the field
        ("gi|123|ref|NC_1.1|_chunk_3R2", (1.0, 1.0000001)),
        ("dup_chunk_1R1", (0.0, 2.0)),  # the same chunk id again, after others
        ("x_chunk_2F3", (-0.25, 1.5)),
    ]
    ids = [frame for frame, _ in rows]
    return ids, torch.tensor([logits for _, logits in rows], dtype=torch.float32)


def test_edge_cases_match_virnucpro(tmp_path):
    ids, logits = edge_cases()
    csv = assert_same_files(tmp_path, ids, logits, [4, 1, 10])
    text = (tmp_path / "ours" / RESULTS_FILE).read_text(encoding="utf-8")
    # the edge cases are really there
    assert "x_chunk_10F1\tothers\t0.5\t0.5\n" in text and "\t1.0\t0.0\n" in text and "e-44\t1.0\n" in text
    assert csv.decode().splitlines()[1:] == [
        "NODE_1_length_5000_cov_3.5_chunk_1\tTrue",
        "Z_chunk_1\tTrue",
        "a_chunk_1\tFalse",
        "dup_chunk_1\tTrue",
        "gi|123|ref|NC_1.1|_chunk_3\tTrue",
        '"q""uote_chunk_1"\tTrue',
        "x_chunk_1\tTrue",
        "x_chunk_10\tTrue",  # a tie of 0.5 and 0.5: True
        "x_chunk_11\tFalse",
        "x_chunk_2\tTrue",
        "z_chunk_1\tTrue",
        "ä_chunk_1\tFalse",
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_random_frames_match_virnucpro(tmp_path, seed):
    rng = random.Random(seed)
    names = ["c", "contig_17", "NODE_2_length_900", "c1", "c_1", "C", "k.9"]
    ids = [f"{rng.choice(names)}_chunk_{rng.randint(1, 14)}{rng.choice('FR')}{rng.randint(1, 3)}" for _ in range(3000)]
    generator = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.01, 1.0, 8.0, 60.0])[torch.randint(0, 4, (len(ids), 1), generator=generator)]
    logits = torch.randn(len(ids), 2, generator=generator) * scale
    spans, left = [], len(ids)
    while left:
        spans.append(min(left, rng.randint(1, 400)))
        left -= spans[-1]
    # a few chunks in memory at a time: the sorted runs spilled to disk merge to the same file
    spill = tmp_path / "spill"
    spill.mkdir()
    assert_same_files(tmp_path, ids, logits, spans, spill_dir=spill, max_in_memory=7)
    assert list(spill.iterdir()) == []


def test_real_frames_match_virnucpro(tmp_path):
    frames = frames_of(write_fasta(tmp_path / "contigs.fa"))
    logits = torch.from_numpy(frames.scores).log()  # softmax(log p) is not p bit for bit: use it as logits
    assert_same_files(tmp_path, frames.ids, logits, [len(frames.ids)])


def test_empty_result_is_the_headers(tmp_path):
    expected_text = virnucpros(tmp_path / "virnucpro", [], torch.zeros(0, 2))[0]
    text, csv = ours(tmp_path / "ours", [], torch.zeros(0, 2), [])
    assert text == expected_text == RESULTS_HEADER.encode()
    # pandas would write "index\tSequence_ID\t..." here (and VirNucPro crashes before): ours is the header
    assert csv == b"Modified_ID\tIs_Virus\n"


def test_scores_that_virnucpro_never_prints_are_refused(tmp_path):
    ids = ["a_chunk_1F1", "a_chunk_1F2"]
    with pytest.raises(ValueError, match="frame 'a_chunk_1F2' has scores \\[0.5, nan\\]"):
        result_lines(ids, np.array([[0.5, 0.5], [0.5, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"must be a \(2, 2\) float32 array"):
        result_lines(ids, np.array([[0.5, 0.5], [0.5, 0.5]], dtype=np.float64))
    (tmp_path / RESULTS_FILE).write_text("x")
    with pytest.raises(FileExistsError):
        ResultsWriter(tmp_path / RESULTS_FILE)
