"""The jobs real users run: many samples through one model, shards for batch schedulers, output people can
trust and read back, and the command-line habits of pipelines. Each against a reference that can disagree:
a separate single run, fair-esm-free checks of the stored metadata, the input files themselves.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import many, part_dir, proteins, run_cli, same_file, spawn, wait_for_commit, write_fasta

import virnucpro

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def model(tiny_checkpoint):
    return tiny_checkpoint


def test_output_dir_equals_separate_runs(capsys, tmp_path, model):
    a = write_fasta(tmp_path / "sample_a.faa", proteins(23))
    b = write_fasta(tmp_path / "sample_b.fasta", proteins(17, 50))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(capsys, "embed", a, b, "--output-dir", out, "--model", model, "--max-tokens", "2000")
    assert result.code == 0, result
    assert sorted(p.name for p in out.iterdir()) == ["sample_a.h5", "sample_b.h5"]
    for source, name in ((a, "sample_a.h5"), (b, "sample_b.h5")):
        alone = tmp_path / f"alone_{name}"
        assert run_cli(capsys, "embed", source, "-o", alone, "--model", model, "--max-tokens", "2000").code == 0
        same_file(out / name, alone)
    clash = run_cli(capsys, "embed", a, tmp_path / "sample_a.faa", "--output-dir", tmp_path, "--model", model)
    assert clash.code == 1 and "would all write" in clash.err
    again = run_cli(capsys, "embed", a, b, "--output-dir", out, "--model", model, "--resume")
    assert again.code == 0 and "already complete" in again.out, again


def _shards(capsys, fasta, out, model, count, skip=()):
    for i in range(count):
        if i not in skip:
            args = ("embed", fasta, "-o", out, "--model", model, "--max-tokens", "1000", "--shard", f"{i}/{count}")
            assert run_cli(capsys, *args).code == 0


def test_three_shards_then_assemble_equal_one_run(capsys, tmp_path, model):
    fasta = write_fasta(tmp_path / "in.faa", proteins(61))
    one = tmp_path / "one.h5"
    assert run_cli(capsys, "embed", fasta, "-o", one, "--model", model, "--max-tokens", "1000").code == 0
    out = tmp_path / "sharded.h5"
    _shards(capsys, fasta, out, model, 3)
    assert not out.exists(), "a shard never writes the output"
    result = run_cli(capsys, "assemble", out)
    assert result.code == 0 and "61 records" in result.out, result
    with h5py.File(one) as a, h5py.File(out) as b:
        assert a["ids"].asstr()[:].tolist() == b["ids"].asstr()[:].tolist()
        np.testing.assert_array_equal(a["lengths"][:], b["lengths"][:])
        diff = np.abs(a["embeddings"][:] - b["embeddings"][:]).max()
        assert diff <= 1e-6, f"max abs diff {diff:.3g} (batches differ between the shards and one run)"
        assert b.attrs["shards"] == 3 and b.attrs["records"] == 61
    again = run_cli(capsys, "assemble", out)  # the parts went with the assembly: say so, touch nothing
    assert again.code == 1 and f"{out} exists (a finished run leaves no parts)" in again.err, again
    never = run_cli(capsys, "assemble", tmp_path / "never.h5")
    assert never.code == 1 and "no partial results" in never.err and "exists" not in never.err, never


def test_assemble_with_a_shard_missing_names_it_and_writes_nothing(capsys, tmp_path, model):
    fasta = write_fasta(tmp_path / "in.faa", proteins(20))
    out = tmp_path / "o.h5"
    _shards(capsys, fasta, out, model, 3, skip=(1,))
    result = run_cli(capsys, "assemble", out)
    assert result.code == 1 and "shards 1/3 have no results" in result.err, result
    assert not out.exists() and len(list(tmp_path.glob(".o.h5.*"))) == 0


def test_a_killed_shard_resumed_then_assembled_gives_the_same_file(capsys, tmp_path, model):
    fasta = many(tmp_path / "many.faa", copies=8)
    whole = tmp_path / "whole.h5"
    shard_args = ("--model", model, "--max-tokens", "400", "--workers", "1")
    out = tmp_path / "o.h5"
    for i in (0, 2):
        assert run_cli(capsys, "embed", fasta, "-o", out, *shard_args, "--shard", f"{i}/3").code == 0
    proc = spawn(fasta, "-o", out, *shard_args, "--shard", "1/3")
    wait_for_commit(part_dir(out, "shard-1-of-3") / "state.json", 20, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    early = run_cli(capsys, "assemble", out)
    # the kill leaves either an uncommitted tail (named by its file) or only records missing (named by shard)
    named = "shard-1-of-3" in early.err or "Shards with records missing: 1/3" in early.err
    assert early.code == 1 and named and "--resume" in early.err, early
    assert run_cli(capsys, "embed", fasta, "-o", out, *shard_args, "--shard", "1/3", "--resume").code == 0
    assert run_cli(capsys, "assemble", out).code == 0
    for i in range(3):  # the same shards, never interrupted
        assert run_cli(capsys, "embed", fasta, "-o", whole, *shard_args, "--shard", f"{i}/3").code == 0
    assert run_cli(capsys, "assemble", whole).code == 0
    same_file(out, whole)


def test_input_lengths_and_provenance_are_stored(capsys, tmp_path, model):
    records = [("short", "MKV"), ("long", "M" * 50), ("mid", "ACDEFGHIKL")]
    fasta = write_fasta(tmp_path / "in.faa", records)
    out = tmp_path / "o.h5"
    result = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, "--max-length", "20")
    assert result.code == 0 and "truncated 1" in result.out
    digest = hashlib.sha256(fasta.read_bytes()).hexdigest()
    with h5py.File(out) as f:
        assert f["input_lengths"][:].tolist() == [3, 50, 10]
        assert f["lengths"][:].tolist() == [3, 20, 10]
        attrs = dict(f.attrs)
    assert attrs["truncated"] == 1 and attrs["on_overlength"] == "truncate" and attrs["invalid"] == "raise"
    assert list(attrs["input_sha256"]) == [digest] and list(attrs["input_bytes"]) == [fasta.stat().st_size]
    assert attrs["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert attrs["torch_version"] == str(torch.__version__) and attrs["fair_esm_version"] == "2.0.0"
    assert attrs["virnucpro_version"] == virnucpro.__version__ and attrs["device"] == "cpu"
    assert attrs["command"].startswith("virnucpro embed ") and "--max-length 20" in attrs["command"]
    assert attrs["created_utc"].endswith("Z") and json.loads(attrs["fingerprint"])["max_length"] == 20


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".parquet"])
def test_read_embeddings_in_every_format(capsys, tmp_path, model, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    records = [("a", "MKVLA"), ("b", "QQRR"), ("a", "WWW")]  # a duplicate id
    fasta = write_fasta(tmp_path / "in.faa", records)
    reference = tmp_path / "ref.h5"
    assert run_cli(capsys, "embed", fasta, "-o", reference, "--model", model, "--layers", "1", "2").code == 0
    out = tmp_path / f"o{suffix}"
    assert run_cli(capsys, "embed", fasta, "-o", out, "--model", model, "--layers", "1", "2").code == 0
    got, want = virnucpro.read_embeddings(out), virnucpro.read_embeddings(reference)
    assert got.ids.tolist() == ["a", "b", "a"] and got.rows("a") == [0, 2] and got.rows("b") == [1]
    np.testing.assert_array_equal(np.asarray(got.embeddings), np.asarray(want.embeddings))
    assert np.asarray(got.embeddings).shape == (3, 2, 64)
    np.testing.assert_array_equal(got["b"], want.embeddings[1])
    with pytest.raises(ValueError, match="belongs to 2 records"):
        got["a"]
    assert got.columns["lengths"].tolist() == [5, 4, 3] and got.attrs["records"] == 3


def test_per_token_npz_reads_back_like_hdf5(capsys, tmp_path, model):
    fasta = write_fasta(tmp_path / "in.faa", proteins(5))
    h5, npz = tmp_path / "o.h5", tmp_path / "o.npz"
    for out in (h5, npz):
        assert run_cli(capsys, "embed", fasta, "-o", out, "--model", model, "--pooling", "per-token").code == 0
    a, b = virnucpro.read_embeddings(h5), virnucpro.read_embeddings(npz)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(np.asarray(a.embeddings), b.embeddings)
    np.testing.assert_array_equal(a[a.ids[2]], b[b.ids[2]])


def test_version_and_fast_help():
    version = subprocess.run([sys.executable, "-m", "virnucpro", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"virnucpro {virnucpro.__version__}"
    modules = subprocess.run(
        [sys.executable, "-c", "import sys, virnucpro.cli; virnucpro.cli._top_parser(); print('torch' in sys.modules)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert modules.stdout.strip() == "False", "the top-level CLI must not import torch"


def test_standard_input_is_read(tmp_path, model):
    fasta = write_fasta(tmp_path / "in.faa", proteins(7))
    out = tmp_path / "o.h5"
    reference = tmp_path / "ref.h5"

    def embed(source: str, output) -> list[str]:
        return [sys.executable, "-m", "virnucpro", "embed", source, "-o", str(output), "--model", str(model),
                "--device", "cpu"]  # fmt: skip

    result = subprocess.run(embed("-", out), input=fasta.read_bytes(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert subprocess.run(embed(str(fasta), reference), capture_output=True).returncode == 0
    with h5py.File(out) as a, h5py.File(reference) as b:
        np.testing.assert_array_equal(a["embeddings"][:], b["embeddings"][:])
    assert not list(tmp_path.glob(".virnucpro-stdin-*")), "the spooled copy of stdin is removed"


def test_a_log_file_gets_plain_progress_lines_with_a_total(tmp_path, model):
    fasta = write_fasta(tmp_path / "in.faa", proteins(40))
    cmd = [sys.executable, "-m", "virnucpro", "embed", str(fasta), "-o", str(tmp_path / "o.h5"),
           "--model", str(model), "--device", "cpu", "--max-tokens", "3000", "--workers", "1"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)  # stderr is a pipe, not a terminal
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if " records" in line]
    assert lines and "\r" not in result.stderr, result.stderr
    assert lines[-1].startswith("virnucpro: 40 / 40 records (100.0 %)"), lines


def test_a_nucleotide_fasta_is_refused_unless_allowed(capsys, tmp_path, model):
    dna = write_fasta(tmp_path / "contig.faa", [("contig", "ACGTTGCAAGGCT" * 10)])
    out = tmp_path / "o.h5"
    result = run_cli(capsys, "embed", dna, "-o", out, "--model", model)
    assert result.code == 1 and "--dna" in result.err and "--allow-nucleotide-like" in result.err, result
    assert run_cli(capsys, "embed", dna, "-o", out, "--model", model, "--allow-nucleotide-like").code == 0
