"""``virnucpro embed --on-overlength window`` against fair-esm run on each window (``window_reference.py``),
and exact-once with windowed proteins present: shards, and a run killed in the middle of a long protein."""

from __future__ import annotations

import random
import signal

import numpy as np
import pytest
from cli_helpers import part_dir, run_cli, same_file, spawn, wait_for_commit, write_fasta
from conftest import tiny_esm2
from window_reference import AMINO_ACIDS, LAYERS, LENGTHS, W, reference

import virnucpro
from virnucpro.models import save_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:cut .* into overlapping windows:UserWarning")]

WINDOW = ("--max-length", str(W), "--on-overlength", "window", "--max-tokens", "100")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """(folder, the mixed FASTA, its sequences, the fair-esm model, its checkpoint)."""
    folder = tmp_path_factory.mktemp("windows")
    rng = random.Random(7)
    sequences = ["".join(rng.choices(AMINO_ACIDS, k=n)) for n in LENGTHS]
    fasta = write_fasta(folder / "mixed.faa", [(f"p{i}", s) for i, s in enumerate(sequences)])
    model = tiny_esm2(3, 64, 4, seed=5)
    save_checkpoint(model, folder / "m.pt")
    return folder, fasta, sequences, model, folder / "m.pt"


@pytest.mark.parametrize("pooling", ["mean", "bos", "per-token"])
def test_windowed_embeddings_match_fair_esm_per_window(capsys, tmp_path, job, batch_converter, pooling):
    _, fasta, sequences, model, checkpoint = job
    out = tmp_path / "o.h5"
    layers = [str(layer) for layer in LAYERS]
    args = ("embed", fasta, "-o", out, "--model", checkpoint, *WINDOW, "--pooling", pooling, "--layers", *layers)
    result = run_cli(capsys, *args, "--workers", "2")
    windowed = sum(n > W for n in LENGTHS)
    assert result.code == 0 and f"embedded in windows {windowed}" in result.out, result
    got = virnucpro.read_embeddings(out)
    assert got.columns["lengths"].tolist() == got.columns["input_lengths"].tolist() == LENGTHS
    assert got.attrs["windowed"] == windowed and got.attrs["truncated"] == 0 and got.attrs["window_stride"] == W // 2
    want = reference(model, batch_converter, sequences, W // 2)
    worst = 0.0
    for i in range(len(sequences)):
        rows = got.embeddings[got.offsets[i] : got.offsets[i + 1]] if pooling == "per-token" else got.embeddings[i]
        worst = max(worst, float(np.abs(rows - want[i][pooling]).max()))
    assert worst <= 1e-5, f"{pooling}: max abs diff {worst:.2e} against fair-esm per window"


def test_shards_with_windowed_proteins_equal_one_run(capsys, tmp_path, job):
    _, fasta, _, _, checkpoint = job
    one, sharded = tmp_path / "one.h5", tmp_path / "sharded.h5"
    assert run_cli(capsys, "embed", fasta, "-o", one, "--model", checkpoint, *WINDOW).code == 0
    for i in range(3):
        assert (
            run_cli(capsys, "embed", fasta, "-o", sharded, "--model", checkpoint, *WINDOW, "--shard", f"{i}/3").code
            == 0
        )
    assert run_cli(capsys, "assemble", sharded).code == 0
    a, b = virnucpro.read_embeddings(one), virnucpro.read_embeddings(sharded)
    assert a.ids.tolist() == b.ids.tolist() and a.columns["lengths"].tolist() == b.columns["lengths"].tolist()
    diff = float(np.abs(a.embeddings - b.embeddings).max())
    assert diff <= 1e-6, f"max abs diff {diff:.2e}"


def test_kill_in_a_long_protein_then_resume_gives_the_same_file(capsys, tmp_path, job):
    _, _, _, _, checkpoint = job
    rng = random.Random(3)
    long = write_fasta(tmp_path / "long.faa", [(f"q{i}", "".join(rng.choices(AMINO_ACIDS, k=200))) for i in range(150)])
    whole, out = tmp_path / "whole.h5", tmp_path / "o.h5"
    assert run_cli(capsys, "embed", long, "-o", whole, "--model", checkpoint, *WINDOW).code == 0
    proc = spawn(long, "-o", out, "--model", checkpoint, *WINDOW, "--workers", "1")
    wait_for_commit(part_dir(out) / "state.json", 5, proc=proc)  # 8 windows a protein, 3 to a batch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_cli(capsys, "embed", long, "-o", out, "--model", checkpoint, *WINDOW, "--resume").code == 0
    same_file(whole, out)
