"""``virnucpro predict --dtype fp8``: ESM-2's matmuls in FP8, self-checked against bf16, on the CPU.

torch's ``_scaled_mm`` does the FP8 arithmetic on the CPU inside ``cpu_fp8_for_tests`` (slowly, as
``embed``'s self-check tests run it). The reference is our own fp32 run of the same input: the FP8
run calls every frame the same except near ties; a broken FP8 scale stops the run, leaving no output.
The same comparison on a GPU at real sizes is ``test_predict_gpu.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from predict_models import FAST, contig, make_models, write_fasta

from virnucpro.models.common import fp8
from virnucpro.models.common.fp8 import cpu_fp8_for_tests
from virnucpro.models.common.matmul import Linear
from virnucpro.pipeline import SelfCheck
from virnucpro.tasks.predict import PROVENANCE_FILE, RESULTS_FILE, PredictConfig, run_predict

pytestmark = pytest.mark.slow

CHUNK = 300


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp8")
    models = make_models(root / "models", CHUNK, esm_shape=FAST["esm"], dnabert_shape=FAST["dnabert"])
    fasta = write_fasta(root / "dna.fna", [("piece", contig("MIIJ01000039.fna.gz")[200_000:212_000])])
    return models, fasta


def config(models, fasta: Path, out: Path, dtype: str, check: SelfCheck = SelfCheck()) -> PredictConfig:
    return PredictConfig(
        inputs=(fasta,), classifier=models.classifier, chunk_size=CHUNK, output=out, model=str(models.esm_file),
        dnabert=str(models.dnabert_folder), dtype=dtype, fp8_check=check, device="cpu", max_tokens=600,
        workers=0, progress=False,
    )  # fmt: skip


def scores(out: Path) -> np.ndarray:
    rows = [line.split("\t")[2:] for line in (out / RESULTS_FILE).read_text().splitlines()[1:]]
    return np.array(rows, dtype=np.float32)


def test_fp8_calls_the_frames_as_fp32_does_and_records_its_self_check(tmp_path, setup):
    models, fasta = setup
    run_predict(config(models, fasta, tmp_path / "fp32", "fp32"))
    with cpu_fp8_for_tests():
        summary = run_predict(config(models, fasta, tmp_path / "fp8", "fp8", SelfCheck(every=2, min_cosine=0.9)))
    assert "FP8 self-check cosine vs bf16 min" in summary.line(), summary.line()
    low, mean = summary.checks
    provenance = json.loads((tmp_path / "fp8" / PROVENANCE_FILE).read_text())
    assert provenance["esm2_forward"]["matmul"] == "fp8" and provenance["dnabert_forward"]["matmul"] == "native"
    assert provenance["fp8_selfcheck_min_cosine"] == pytest.approx(low) and 0.9 <= low <= mean <= 1.0
    reference, ours = scores(tmp_path / "fp32"), scores(tmp_path / "fp8")
    assert len(reference) > 30
    off = (reference[:, 1] > reference[:, 0]) != (ours[:, 1] > ours[:, 0])
    margin = np.abs(reference[:, 1] - reference[:, 0])
    assert not (off & (margin >= 0.01)).any(), (
        f"calls differ beyond near ties; scores max diff {np.abs(reference - ours).max():.3g}"
    )


def test_a_broken_fp8_scale_stops_the_run_leaving_no_output(tmp_path, setup, monkeypatch):
    models, fasta = setup
    prepare = fp8.Fp8Matmul.prepare_weight

    def broken(self, weights, biases, role):
        layer = prepare(self, weights, biases, role)
        return Linear(layer.weight, layer.bias, layer.scale * 8) if role == "fc1" else layer  # a wrong scale

    monkeypatch.setattr(fp8.Fp8Matmul, "prepare_weight", broken)
    with cpu_fp8_for_tests(), pytest.raises(RuntimeError, match=r"FP8 self-check.*--dtype bf16"):
        run_predict(config(models, fasta, tmp_path / "out", "fp8", SelfCheck(every=1, min_cosine=0.99)))
    assert not (tmp_path / "out").exists()
