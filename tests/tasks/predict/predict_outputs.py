"""Made-up ``virnucpro predict`` outputs for the result, contigs and plot tests.

Real DNA (pieces of the example contigs, plus an empty record, an all-N one, a duplicated id
and an id holding "_chunk_") is chunked and translated by ``virnucpro.data.dna`` exactly as
VirNucPro does; the scores are a softmax of random logits (float32), as a classifier gives.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from virnucpro.data.dna import Translator, chunk_bounds
from virnucpro.data.fasta import read_fasta
from virnucpro.models.classifier import softmax_scores
from virnucpro.tasks.predict import (
    CONTIGS_FILE,
    HIGHEST_FILE,
    PROVENANCE_FILE,
    RESULTS_FILE,
    ContigRecord,
    ContigTable,
    HighestScores,
    ResultsWriter,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "data"
# (source file, start, length, id): lengths around the chunk size, and long ones
PIECES = [
    ("MIIJ01000039.fna.gz", 0, 12_000, "NODE_1_length_12000_cov_3.5"),
    ("KK037166.fna.gz", 0, 299, "short"),
    ("KK037166.fna.gz", 500, 0, "empty"),
    ("SRR492066.fna.gz", 1000, 5_000, "dup"),
    ("KK037166.fna.gz", 1000, 301, "x"),
    ("NNNN", 0, 700, "all_N"),
    ("SRR492066.fna.gz", 9000, 3_400, "dup"),
    ("MIIJ01000039.fna.gz", 20_000, 1_000, "weird_chunk_7"),
    ("KK037166.fna.gz", 3000, 4_000, "gi|123|ref|NC_1.1|"),
]


@dataclass(frozen=True)
class Frames:
    """Every scored frame in input order, and every record."""

    ids: list[str]
    sources: np.ndarray  # (N,) int64
    chunks: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N, 2) float32
    records: list[ContigRecord]


def write_fasta(path: Path) -> Path:
    """The PIECES as one FASTA file."""
    lines = []
    for name, start, length, record_id in PIECES:
        if name == "NNNN":
            sequence = "N" * length
        else:
            with gzip.open(EXAMPLES / name, "rt") as handle:
                sequence = "".join(line.strip() for line in handle if not line.startswith(">"))
        lines.append(f">{record_id} piece of {name}\n{sequence[start : start + length]}\n")
    path.write_text("".join(lines))
    return path


def frames_of(fasta: Path, chunk_size: int = 300, seed: int = 0) -> Frames:
    """The frames VirNucPro would score for ``fasta``, with random classifier-like scores."""
    translate = Translator(chunk_size)
    proteins, records = [], []
    for source, record in enumerate(read_fasta(fasta)):
        length = len(record.sequence)
        records.append(ContigRecord(record.id, length, len(chunk_bounds(length, chunk_size))))
        proteins.extend(translate(record, source))
    generator = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.05, 1.0, 4.0, 30.0])[torch.randint(0, 4, (len(proteins), 1), generator=generator)]
    logits = torch.randn(len(proteins), 2, generator=generator) * scale
    return Frames(
        [protein.id for protein in proteins],
        np.array([protein.source for protein in proteins], dtype=np.int64),
        np.array([protein.chunk for protein in proteins], dtype=np.int64),
        softmax_scores(logits).numpy(),
        records,
    )


def write_output(out: Path, frames: Frames, chunk_size: int = 300, span: int = 37) -> Path:
    """An output folder as ``virnucpro predict`` leaves it, the frames written in spans of ``span``."""
    out.mkdir(parents=True, exist_ok=True)
    highest, table = HighestScores(), ContigTable(out / CONTIGS_FILE)
    table.add_records(frames.records)
    with ResultsWriter(out / RESULTS_FILE) as results:
        for start in range(0, len(frames.ids), span):
            part = slice(start, start + span)
            results.write(frames.ids[part], frames.scores[part])
            highest.add(frames.ids[part], frames.scores[part])
            table.add_frames(frames.sources[part], frames.chunks[part], frames.scores[part])
    highest.write(out / HIGHEST_FILE)
    table.finish()
    (out / PROVENANCE_FILE).write_text(json.dumps({"chunk_size": chunk_size}))
    return out
