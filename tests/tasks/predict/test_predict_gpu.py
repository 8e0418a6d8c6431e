"""``virnucpro predict`` in bf16 (and FP8) on a GPU against VirNucPro's own fp32 flow, at real sizes.

VirNucPro's models at their real shapes with random weights (ESM-2 3B, DNABERT-S, a 3328 -> 512 -> 2
classifier saved as its train.py saves it: ``predict_models.real_models``), on the bundled contigs
and made-up coding DNA, over 5,000 frames of 500-bp chunks. The reference is ``make_predictdata``
with VirNucPro's own functions, fp32, on the same GPU (``tests/reference/virnucpro_flow.py``).

Required, for our bf16 run against VirNucPro's fp32 flow and for our FP8 run against our bf16 run:
per-frame labels agree for at least 99.9 % of frames and every disagreement is a near tie
(|score2 - score1| < 0.01 in the reference); the same for the per-chunk verdicts of
``prediction_results_highestscore.csv`` (the reference chunk's highest score2 minus its highest
score1). The figures are printed (``pytest -s``).

    pytest -s -m gpu tests/tasks/predict/test_predict_gpu.py
"""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONTIGS, requires_cuda
from feature_parity import feature_figures
from predict_models import coding_dna, real_models, write_fasta

from virnucpro.data.dna import read_dna
from virnucpro.data.fasta import read_fasta
from virnucpro.tasks.predict import HIGHEST_FILE, RESULTS_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
from virnucpro_flow import run_virnucpro  # noqa: E402

pytestmark = [pytest.mark.gpu, requires_cuda]

CHUNK = 500
MIN_FRAMES = 5000
AGREE = 0.999  # labels (and chunk verdicts) that must agree
NEAR_TIE = 0.01  # every disagreement must be this close in the reference
DNABERT_WIDTH = 768  # DNABERT-S's columns come first in the features, as merge_data joins them


def read_results(folder: Path) -> tuple[list[str], np.ndarray]:
    """(frame ids, (N, 2) float32 scores) of a prediction_results.txt, labels derived as VirNucPro's."""
    rows = [line.split("\t") for line in (folder / RESULTS_FILE).read_text().splitlines()[1:]]
    return [r[0] for r in rows], np.array([r[2:] for r in rows], dtype=np.float32).reshape(-1, 2)


def read_verdicts(folder: Path) -> dict[str, str]:
    with open(folder / HIGHEST_FILE, newline="") as handle:
        return {row["Modified_ID"]: row["Is_Virus"] for row in csv.DictReader(handle, delimiter="\t")}


def chunk_margins(ids: list[str], scores: np.ndarray) -> dict[str, float]:
    """Per chunk (frame id less its frame): highest score2 minus highest score1, VirNucPro's verdict margin."""
    best: dict[str, list[float]] = {}
    for frame, (score1, score2) in zip(ids, scores.tolist()):
        held = best.setdefault(frame[:-2], [score1, score2])
        held[0], held[1] = max(held[0], score1), max(held[1], score2)
    return {chunk: s2 - s1 for chunk, (s1, s2) in best.items()}


def compare(name: str, ours: Path, reference: Path) -> dict[str, float]:
    """The agreement figures of ``ours`` against ``reference``; printed, and asserted."""
    ids, scores = read_results(ours)
    ref_ids, ref_scores = read_results(reference)
    assert ids == ref_ids, f"{name}: frames differ ({len(ids)} vs {len(ref_ids)})"
    labels, ref_labels = scores[:, 1] > scores[:, 0], ref_scores[:, 1] > ref_scores[:, 0]
    margin = np.abs(ref_scores[:, 1] - ref_scores[:, 0])
    frames_off = labels != ref_labels
    verdicts, ref_verdicts = read_verdicts(ours), read_verdicts(reference)
    assert verdicts.keys() == ref_verdicts.keys()
    margins = chunk_margins(ref_ids, ref_scores)
    chunks_off = [chunk for chunk in ref_verdicts if verdicts[chunk] != ref_verdicts[chunk]]
    diff = np.abs(scores - ref_scores)
    figures = {
        "frames": len(ids),
        "frame_agreement": 1 - frames_off.mean(),
        "frame_disagreements": int(frames_off.sum()),
        "frame_disagreement_max_margin": float(margin[frames_off].max()) if frames_off.any() else 0.0,
        "chunks": len(ref_verdicts),
        "chunk_agreement": 1 - len(chunks_off) / len(ref_verdicts),
        "chunk_disagreements": len(chunks_off),
        "chunk_disagreement_max_margin": max((abs(margins[c]) for c in chunks_off), default=0.0),
        "score_max_abs_diff": float(diff.max()),
        "score_mean_abs_diff": float(diff.mean()),
    }
    print(f"\n{name}: " + ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))
    assert figures["frame_agreement"] >= AGREE, figures
    assert figures["frame_disagreement_max_margin"] < NEAR_TIE, figures
    assert figures["chunk_agreement"] >= AGREE, figures
    assert figures["chunk_disagreement_max_margin"] < NEAR_TIE, figures
    return figures


def predict(fasta: Path, out: Path, models, *extra: str) -> None:
    cmd = [
        sys.executable, "-m", "virnucpro", "predict", str(fasta), "-o", str(out), *models.args(),
        "--chunk-size", str(CHUNK), "--device", "cuda", "--no-progress", *extra,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout.strip())


def test_bf16_and_fp8_agree_with_virnucpros_fp32_flow(tmp_path):
    models = real_models(tmp_path / "models", CHUNK)
    records = [(r.id, r.sequence) for path in CONTIGS for r in read_fasta(path)] + coding_dna(4700, CHUNK, seed=1)
    fasta = write_fasta(tmp_path / "input.fasta", records)
    frames = sum(1 for _ in read_dna(fasta, CHUNK))
    assert frames >= MIN_FRAMES, frames
    predict(fasta, tmp_path / "bf16", models, "--save-features", "features.h5")
    predict(fasta, tmp_path / "fp8", models, "--dtype", "fp8")
    work = tmp_path / "virnucpro_work"
    work.mkdir()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        reference = run_virnucpro(fasta, CHUNK, models.classifier, work, **models.flow(), device="cuda")
    # which model's features moved the scores, and how hard the classifier amplifies them (printed only)
    figures = feature_figures(tmp_path / "bf16" / "features.h5", reference, models.classifier, DNABERT_WIDTH)
    print("\nbf16 features vs VirNucPro fp32: " + ", ".join(f"{k} {v:.6g}" for k, v in figures.items()))
    compare("bf16 vs VirNucPro fp32", tmp_path / "bf16", reference)
    compare("fp8 vs bf16", tmp_path / "fp8", tmp_path / "bf16")
