"""``virnucpro embed`` with a DNABERT model on nucleotide FASTA, through the real CLI, on the CPU.

The model is a small random DNABERT of DNABERT-S's own code, saved as users have it (a folder
with config.json, tokenizer.json and model.safetensors); the tokenizer is ``random:dnabert-s``'s.
Embeddings are checked against DNABERT-S's own code run as VirNucPro runs it (one sequence,
``model(ids)[0]``, mean over every token); everything else ``embed`` does (resume after a
kill, shards and assemble, --output-dir, refusals) is checked against an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import re
import random
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import requires_cuda
from cli_helpers import part_dir, run_cli, same_file, spawn, wait_for_commit
from dnabert_reference import SHAPES, reference_layers, reference_model, save_folder
from transformers import PreTrainedTokenizerFast

from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer

pytestmark = pytest.mark.slow

#: As the DNABERT tests: float32 on the CPU against the reference, one sequence at a time.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    reference = reference_model(*SHAPES["2-layers-4-heads"], seed=21)
    folder = save_folder(
        reference, tmp_path_factory.mktemp("dnabert") / "model", dnabert_tokenizer("random:dnabert-s").to_str()
    )
    return folder, reference


def dna(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"contig_{seed}_{i}", "".join(rng.choices("ACGTacgtN", k=rng.randint(1, 400)))) for i in range(count)]


def write(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{rid} a contig\n{seq}\n" for rid, seq in records))
    return path


def read(path: Path) -> tuple[list[str], np.ndarray, dict]:
    with h5py.File(path) as f:
        return f["ids"].asstr()[:].tolist(), f["embeddings"][:], {**dict(f.attrs), "lengths": f["lengths"][:]}


def test_mean_and_cls_rows_are_dnabert_s_own_and_the_output_says_what_it_read(capsys, tmp_path, model):
    folder, reference = model
    records = dna(25, seed=1)
    fasta = write(tmp_path / "dna.fna", records)
    tokens = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))([s.upper() for _, s in records])
    for pooling in ("mean", "bos"):
        out = tmp_path / f"{pooling}.h5"
        result = run_cli(
            capsys, "embed", fasta, "-o", out, "--model", folder, "--pooling", pooling, "--max-tokens", "300"
        )
        assert result.code == 0, result.err
        ids, rows, attrs = read(out)
        assert ids == [rid for rid, _ in records]
        expected = torch.stack([
            reference_layers(reference, torch.tensor(t))[-1].mean(0) if pooling == "mean"
            else reference_layers(reference, torch.tensor(t))[-1][0]
            for t in tokens["input_ids"]
        ])  # fmt: skip
        error = (torch.from_numpy(rows) - expected).abs()
        assert error.max() <= TOLERANCE, f"{pooling}: max abs error {error.max():.3g}, mean {error.mean():.3g}"
    assert attrs["tokens"] == sum(map(len, tokens["input_ids"])), (
        "tokens counts byte-pair tokens, [CLS] and [SEP] included"
    )
    assert attrs["lengths"].tolist() == [len(s) for _, s in records], "lengths counts bases"
    assert attrs["input_kind"] == "nucleotide" and attrs["truncated"] == 0
    digests = json.loads(attrs["model_files_sha256"])
    assert sorted(digests) == ["config", "model", "tokenizer"] and attrs["model_sha256"] == digests["model"]
    assert (
        attrs["tokenizer_sha256"]
        == digests["tokenizer"]
        == hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()
    )


def test_a_kill_then_resume_gives_the_uninterrupted_file(capsys, tmp_path, model):
    folder, _ = model
    fasta = write(tmp_path / "many.fna", dna(1500, seed=2))  # several one-second commits: the kill lands mid-run
    common = ("--model", folder, "--max-tokens", "200", "--workers", "1")
    whole = tmp_path / "whole.h5"
    assert run_cli(capsys, "embed", fasta, "-o", whole, *common).code == 0
    out = tmp_path / "resumed.h5"
    proc = spawn(fasta, "-o", out, *common)
    try:
        wait_for_commit(part_dir(out) / "state.json", 30, proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    committed = json.loads((part_dir(out) / "state.json").read_text())["records"]
    assert 0 < committed < 1500 and not out.exists(), f"the kill landed at {committed} of 1500 records"
    assert run_cli(capsys, "embed", fasta, "-o", out, *common, "--resume").code == 0
    same_file(whole, out)


def test_shards_assembled_and_output_dir_equal_single_runs(capsys, tmp_path, model):
    folder, _ = model
    a, b = write(tmp_path / "a.fna", dna(30, seed=3)), write(tmp_path / "b.fna", dna(20, seed=4))
    common = ("--model", folder, "--max-tokens", "250")
    for fasta in (a, b):
        assert run_cli(capsys, "embed", fasta, "-o", tmp_path / f"{fasta.stem}.single.h5", *common).code == 0
    sharded = tmp_path / "sharded.h5"
    for shard in ("0/3", "1/3", "2/3"):
        assert run_cli(capsys, "embed", a, "-o", sharded, *common, "--shard", shard).code == 0
    assert run_cli(capsys, "assemble", sharded).code == 0
    with h5py.File(tmp_path / "a.single.h5") as one, h5py.File(sharded) as three:
        for name in ("ids", "lengths", "input_lengths"):
            assert np.array_equal(one[name][:], three[name][:]), name
        diff = np.abs(one["embeddings"][:] - three["embeddings"][:])
        assert diff.max() <= 1e-6, f"max abs diff {diff.max():.3g}, mean {diff.mean():.3g} (other batches)"
        assert three.attrs["shards"] == 3 and three.attrs["tokens"] == one.attrs["tokens"]
    assert run_cli(capsys, "embed", a, b, "--output-dir", tmp_path / "each", "--parents", *common).code == 0
    for fasta in (a, b):
        same_file(tmp_path / f"{fasta.stem}.single.h5", tmp_path / "each" / f"{fasta.stem}.h5")


@pytest.mark.parametrize(
    ("sequence", "fragment"),
    [
        ("ACGTMKVLQ", r"has 'L' at position 8, not an IUPAC nucleotide code"),
        ("ACGUU", r"has 'U' at position 4, not an IUPAC nucleotide code .*is it RNA\? write its U as T"),
    ],
)
def test_a_bad_character_is_one_line_naming_file_record_character_and_position(
    capsys, tmp_path, model, sequence, fragment
):
    folder, _ = model
    fasta = tmp_path / "bad.fna"
    fasta.write_text(f">fine\nACGT\n>broken one\n{sequence}\n")
    result = run_cli(capsys, "embed", fasta, "-o", tmp_path / "o.h5", "--model", folder)
    assert result.code == 1 and "Traceback" not in result.err and result.err.count("\n") == 1, result.err
    assert f"{fasta}: record 2 ('broken')" in result.err, result.err
    assert re.search(fragment, result.err), result.err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--dna",), r"reads nucleotide FASTA itself; --dna translates DNA for protein models"),
        (("--invalid", "X"), r"--invalid X replaces unknown amino acids"),
        (("--allow-nucleotide-like",), r"--allow-nucleotide-like is for protein"),
        (("--pooling", "per-token"), r"--pooling per-token stores one row per residue; DNABERT-S's tokens span"),
        (("--on-overlength", "window"), r"--on-overlength window embeds .* DNABERT-S's tokens span several characters"),
    ],
)
def test_options_that_make_no_sense_for_dna_are_refused_leaving_nothing(capsys, tmp_path, model, extra, fragment):
    folder, _ = model
    fasta = write(tmp_path / "d.fna", dna(3, seed=5))
    result = run_cli(capsys, "embed", fasta, "-o", tmp_path / "o.h5", "--model", folder, *extra)
    assert result.code == 1 and "Traceback" not in result.err, result.err
    assert re.search(fragment, result.err), result.err
    assert "='" not in result.err, "a CLI user reads flags, not the library's arguments"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.fna"]


def test_truncated_dna_is_counted_and_a_changed_tokenizer_is_not_resumed(capsys, tmp_path, model):
    folder, _ = model
    fasta = write(tmp_path / "d.fna", [("long", "ACGT" * 100), ("short", "ACGT")])
    whole = tmp_path / "whole.h5"
    result = run_cli(capsys, "embed", fasta, "-o", whole, "--model", folder, "--max-length", "100")
    assert result.code == 0 and "truncated 1;" in result.out, result
    with h5py.File(whole) as f:
        assert f["lengths"][:].tolist() == [100, 4] and f["input_lengths"][:].tolist() == [400, 4]
        assert f.attrs["truncated"] == 1 and f.attrs["max_length"] == 100
    out = tmp_path / "o.h5"
    assert (
        run_cli(capsys, "embed", fasta, "-o", out, "--model", folder, "--max-length", "100", "--shard", "0/2").code == 0
    )
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        (copy / name).write_bytes((folder / name).read_bytes())
    (copy / "tokenizer.json").write_text(json.dumps(json.loads((folder / "tokenizer.json").read_text()), indent=1))
    refused = run_cli(
        capsys, "embed", fasta, "-o", out, "--model", copy, "--max-length", "100", "--shard", "0/2", "--resume"
    )
    assert refused.code == 1 and "different job (model:" in refused.err and "'tokenizer': {'sha256'" in refused.err, (
        refused.err
    )


@pytest.mark.gpu
@requires_cuda
def test_on_the_gpu_the_output_records_the_options_dnabert_ran_with(capsys, tmp_path, model):
    """The exact GELU and an ALiBi attention, in bf16; not the tanh GELU ESM-2 takes there."""
    from virnucpro.models.common.attention import ALIBI_BACKENDS
    from virnucpro.models.dnabert import PackedDNABERT, load

    folder, _ = model
    fasta = write(tmp_path / "dna.fna", dna(20, seed=3))
    out = tmp_path / "o.h5"
    assert run_cli(capsys, "embed", fasta, "-o", out, "--model", folder, "--device", "cuda").code == 0
    forward = json.loads(read(out)[2]["fingerprint"])["forward"]
    assert forward["gelu"] == "exact" and forward["attention"] in ALIBI_BACKENDS, forward
    packed = PackedDNABERT(load(str(folder))[0], dtype=torch.bfloat16, device="cuda")
    assert forward == packed.options.as_dict(), "the defaults PackedDNABERT takes itself"


def test_workers_default_to_more_for_byte_pairs_within_the_cores_allotted(capsys, tmp_path, model, monkeypatch):
    """Byte-pair encoding feeds a GPU only with more workers: up to 8, one core left free, counting the
    cores the process may run on; ESM-2 keeps 2. The summary line says how many ran."""
    import os

    from virnucpro.pipeline.config import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert (default_workers(), default_workers(byte_pairs=True)) == (2, 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert (default_workers(), default_workers(byte_pairs=True)) == (2, 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert (default_workers(), default_workers(byte_pairs=True)) == (1, 1)

    folder, _ = model
    fasta = write(tmp_path / "dna.fna", dna(5, seed=8))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    ran = run_cli(capsys, "embed", fasta, "-o", tmp_path / "a.h5", "--model", folder, "--device", "cpu")
    assert ran.code == 0 and "workers 3 ->" in ran.out, ran
    ran = run_cli(
        capsys, "embed", fasta, "-o", tmp_path / "b.h5", "--model", folder, "--device", "cpu", "--workers", "0"
    )
    assert ran.code == 0 and "workers 0 ->" in ran.out, ran


def test_an_embedding_that_overflows_float16_storage_stops_the_run_naming_record_and_fix(capsys, tmp_path):
    """A model whose outputs pass fp16's range (65,504), stored as float16, would write inf: the run stops
    at the first such record, names it and the fix, writes no output, and the fixed rerun is not blocked."""
    records = dna(40, seed=9)
    fasta = write(tmp_path / "dna.fna", records)
    common = ("--model", None, "--max-tokens", "300", "--workers", "0")

    def model_scaled(scale: float) -> Path:  # the last LayerNorm (no bias) scales every embedding by ``scale``
        reference = reference_model(*SHAPES["2-layers-4-heads"], seed=22)
        with torch.no_grad():
            reference.encoder.layer[-1].mlp.layernorm.weight.mul_(scale)
            reference.encoder.layer[-1].mlp.layernorm.bias.zero_()
        return save_folder(reference, tmp_path / f"x{scale:g}", dnabert_tokenizer("random:dnabert-s").to_str())

    def embed(model: Path, out: Path, *extra: str):
        return run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *common[2:], *extra)

    assert embed(model_scaled(1.0), tmp_path / "unit.h5").code == 0
    peaks = np.abs(read(tmp_path / "unit.h5")[1]).max(axis=1)
    assert peaks[0] < peaks.max(), "a later record reaches further than the first"
    loud = model_scaled(float(65504 / np.sqrt(peaks[0] * peaks.max())))  # the first record fits fp16, some do not

    out = tmp_path / "o.h5"
    stopped = embed(loud, out, "--storage", "float16")
    assert stopped.code == 1 and "Traceback" not in stopped.err and stopped.err.count("\n") == 1, stopped.err
    assert "store float32 (--storage float32)" in stopped.err and "rerun with --overwrite" in stopped.err
    assert not out.exists()

    rerun = embed(loud, out, "--overwrite")  # float32 storage: the reference the stop is checked against
    assert rerun.code == 0, rerun.err
    ids, rows, _ = read(out)
    assert ids == [rid for rid, _ in records] and np.isfinite(rows).all()
    with np.errstate(over="ignore"):
        first = int(np.flatnonzero(~np.isfinite(rows.astype(np.float16)).all(axis=1))[0])
    assert (
        first > 0 and f"record {ids[first]!r} (input record {first + 1}): its embedding holds inf or NaN" in stopped.err
    )
