"""The FP8 run's self-check through ``run_embed``: recorded in the output, and stopping a run whose FP8
embeddings drift from bf16. On the CPU, torch's ``_scaled_mm`` does the FP8 arithmetic (slowly) inside
``cpu_fp8_for_tests``; the same run on a GPU is in tests/models/esm2/test_fp8_parity.py."""

from __future__ import annotations

import pytest
from cli_helpers import proteins, run_cli, write_fasta
from conftest import requires_cuda

import virnucpro
from virnucpro.models.common import fp8
from virnucpro.models.common.fp8 import cpu_fp8_for_tests
from virnucpro.models.common.matmul import Linear
from virnucpro.pipeline import SelfCheck
from virnucpro.tasks.embed import EmbedConfig, run_embed

pytestmark = pytest.mark.slow


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, requires_cuda])]


def _config(tmp_path, model, check: SelfCheck, device: str) -> EmbedConfig:
    fasta = write_fasta(tmp_path / "in.faa", proteins(12))
    return EmbedConfig(
        inputs=(fasta,), output=tmp_path / "o.h5", model=str(model), dtype="fp8", device=device,
        max_tokens=1500, workers=0, progress=False, fp8_check=check,
    )  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_fp8_run_records_its_self_check(tmp_path, tiny_checkpoint, device):
    with cpu_fp8_for_tests():
        summary = run_embed(_config(tmp_path, tiny_checkpoint, SelfCheck(every=2, min_cosine=0.9), device))
    assert "FP8 self-check cosine vs bf16 min" in summary.line()
    low, mean = summary.fp8_check
    attrs = virnucpro.read_embeddings(tmp_path / "o.h5").attrs
    assert attrs["matmul"] == "fp8" and attrs["fp8_selfcheck_min_cosine"] == pytest.approx(low)
    assert 0.9 <= low <= mean <= 1.0 and attrs["fp8_selfcheck_rows"] > 0


@pytest.mark.parametrize("device", DEVICES)
def test_a_broken_scale_stops_the_run(tmp_path, tiny_checkpoint, monkeypatch, device):
    prepare = fp8.Fp8Matmul.prepare_weight

    def broken(self, weights, biases, role):
        layer = prepare(self, weights, biases, role)
        return Linear(layer.weight, layer.bias, layer.scale * 8) if role == "fc1" else layer  # a wrong scale

    monkeypatch.setattr(fp8.Fp8Matmul, "prepare_weight", broken)
    with cpu_fp8_for_tests(), pytest.raises(RuntimeError, match=r"FP8 self-check.*--dtype bf16"):
        run_embed(_config(tmp_path, tiny_checkpoint, SelfCheck(every=1, min_cosine=0.99), device))
    assert not (tmp_path / "o.h5").exists()


def test_fp8_without_fp8_tensor_cores_is_refused_before_anything_is_written(capsys, tmp_path, tiny_checkpoint):
    fasta = write_fasta(tmp_path / "in.faa", proteins(3))
    result = run_cli(capsys, "embed", fasta, "-o", tmp_path / "o.h5", "--model", tiny_checkpoint, "--dtype", "fp8")
    assert result.code == 1 and "FP8 tensor cores" in result.err and "--dtype bf16" in result.err
    assert "matmul=" not in result.err, "a CLI user reads flags, not the library's arguments"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.faa"]
