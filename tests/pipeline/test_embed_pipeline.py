"""End-to-end ``virnucpro embed`` on the CPU, against fair-esm's padded forward and esm-extract's pooling.

Each run goes through the real command line in a subprocess, with a random
ESM-2 saved in fair-esm's checkpoint format, on real proteins.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from Bio import SeqIO

from cli_helpers import wait_for_commit
from conftest import PROTEOME, tiny_esm2
from virnucpro.models import load_model, save_checkpoint

pytestmark = pytest.mark.slow


def _proteins(count: int, start: int = 0) -> list[tuple[str, str]]:
    with gzip.open(PROTEOME, "rt") as handle:
        records = list(SeqIO.parse(handle, "fasta"))[start : start + count]
    return [(r.id, str(r.seq)) for r in records]


def _write_fasta(path: Path, records: list[tuple[str, str]], compress: bool = False) -> Path:
    text = "".join(f">{rid} some description\n{seq}\n" for rid, seq in records)
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny_esm2.pt"
    save_checkpoint(tiny_esm2(num_layers=2, embed_dim=64, attention_heads=4, seed=3), path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("inputs")
    return [
        _write_fasta(folder / "a.faa", _proteins(37, 0)),
        _write_fasta(folder / "b.faa.gz", _proteins(29, 100), compress=True),
    ]


def _embed(*args: str | os.PathLike, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "virnucpro", "embed", *map(str, args), "--device", "cpu", "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stderr}")
    return result


def _esm_extract(checkpoint: Path, records: list[tuple[str, str]], layers: list[int]) -> dict[int, list[torch.Tensor]]:
    """esm-extract's per-token rows from fair-esm's padded forward (fp32): {layer: [(len, E) per record]}."""
    model, alphabet = load_model(checkpoint)
    convert = alphabet.get_batch_converter(truncation_seq_length=1022)
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    with torch.no_grad():
        for start in range(0, len(records), 8):
            chunk = [(rid, seq.rstrip("*")) for rid, seq in records[start : start + 8]]
            _, strs, tokens = convert(chunk)
            reps = model(tokens, repr_layers=layers)["representations"]
            for layer in layers:
                for i, seq in enumerate(strs):
                    out[layer].append(reps[layer][i, 1 : min(len(seq), 1022) + 1])
    return out


def test_embed_matches_fair_esm_in_input_order(tmp_path, checkpoint, inputs):
    out = tmp_path / "out.h5"
    result = _embed(*inputs, "-o", out, "--model", checkpoint, "--workers", "2", "--max-tokens", "3000")
    assert "virnucpro embed: 66 records" in result.stdout, result.stdout

    records = _proteins(37, 0) + _proteins(29, 100)
    reference = _esm_extract(checkpoint, records, [2])[2]
    with h5py.File(out) as f:
        ids = f["ids"].asstr()[:].tolist()
        emb = f["embeddings"][:]
        assert f.attrs["records"] == 66 and f.attrs["pooling"] == "mean"
        assert f["lengths"][:].tolist() == [len(s.rstrip("*")) for _, s in records]
    assert ids == [rid for rid, _ in records]
    expected = torch.stack([rows.mean(0) for rows in reference]).numpy()
    diff = np.abs(emb - expected)
    assert diff.max() <= 1e-4, f"max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"
    assert not (out.parent / "out.h5.parts").exists()


def test_per_token_and_several_layers(tmp_path, checkpoint, inputs):
    out = tmp_path / "tok.h5"
    _embed(
        inputs[0],
        "-o",
        out,
        "--model",
        checkpoint,
        "--pooling",
        "per-token",
        "--layers",
        "0",
        "1",
        "2",
        "--workers",
        "0",
    )
    records = _proteins(37, 0)
    reference = _esm_extract(checkpoint, records, [0, 1, 2])
    with h5py.File(out) as f:
        emb, offsets = f["embeddings"][:], f["offsets"][:]
        assert list(f.attrs["layers"]) == [0, 1, 2]
    assert emb.shape == (offsets[-1], 3, 64)
    worst = 0.0
    for i in range(len(records)):
        for j, layer in enumerate((0, 1, 2)):
            rows = emb[offsets[i] : offsets[i + 1], j]
            worst = max(worst, float(np.abs(rows - reference[layer][i].numpy()).max()))
    assert worst <= 1e-4, f"max abs diff {worst:.3g}"


def test_bos_pooling_stored_as_float16(tmp_path, checkpoint, inputs):
    out = tmp_path / "bos.h5"
    _embed(inputs[1], "-o", out, "--model", checkpoint, "--pooling", "bos", "--storage", "float16")
    model, alphabet = load_model(checkpoint)
    _, _, tokens = alphabet.get_batch_converter()([(rid, seq.rstrip("*")) for rid, seq in _proteins(29, 100)])
    with torch.no_grad():
        expected = model(tokens, repr_layers=[2])["representations"][2][:, 0].numpy()
    with h5py.File(out) as f:
        emb = f["embeddings"][:]
    assert emb.dtype == np.float16
    diff = np.abs(emb.astype(np.float32) - expected)
    bound = np.abs(expected).max() * 2**-10  # float16 keeps 11 significant bits
    assert diff.max() <= bound, f"max abs diff {diff.max():.3g} > {bound:.3g}"


def test_kill_and_resume_gives_identical_file(tmp_path, checkpoint):
    records = [(f"{rid}_{k}", seq) for k in range(3) for rid, seq in _proteins(120)]
    fasta = _write_fasta(tmp_path / "many.faa", records)
    common = ["--model", checkpoint, "--max-tokens", "600", "--workers", "1"]

    whole = tmp_path / "whole.h5"
    _embed(fasta, "-o", whole, *common)

    out = tmp_path / "resumed.h5"
    state = tmp_path / "resumed.h5.parts" / "shard-0-of-1.rank-0-of-1" / "state.json"
    cmd = [
        sys.executable,
        "-m",
        "virnucpro",
        "embed",
        str(fasta),
        "-o",
        str(out),
        *map(str, common),
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_commit(state, 40, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = json.loads(state.read_text())["records"]
    assert 0 < committed < len(records), f"kill landed at {committed} of {len(records)} records"
    assert not out.exists()

    refused = _embed(fasta, "-o", out, *common, check=False)
    assert refused.returncode != 0 and "--resume" in refused.stderr

    _embed(fasta, "-o", out, *common, "--resume")
    with h5py.File(whole) as a, h5py.File(out) as b:
        assert a["ids"].asstr()[:].tolist() == b["ids"].asstr()[:].tolist()
        np.testing.assert_array_equal(a["embeddings"][:], b["embeddings"][:])
        np.testing.assert_array_equal(a["lengths"][:], b["lengths"][:])
        assert b.attrs["records"] == len(records) and b.attrs["duplicate_ids"] == 0


def _killed_after_commit(fasta: Path, out: Path, *options: str | os.PathLike, records: int = 40) -> int:
    """Start ``virnucpro embed``, SIGKILL it once ``records`` are committed; the committed count."""
    cmd = [sys.executable, "-m", "virnucpro", "embed", str(fasta), "-o", str(out), *map(str, options),
           "--device", "cpu", "--no-progress"]  # fmt: skip
    state = out.with_name(out.name + ".parts") / "shard-0-of-1.rank-0-of-1" / "state.json"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_commit(state, records, proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return json.loads(state.read_text())["records"]


def test_resume_refuses_a_job_whose_only_change_is_the_pooling(tmp_path, checkpoint):
    records = [(f"{rid}_{k}", seq) for k in range(3) for rid, seq in _proteins(120)]
    fasta = _write_fasta(tmp_path / "many.faa", records)
    out = tmp_path / "o.h5"
    common = ["--model", checkpoint, "--max-tokens", "600", "--workers", "1"]
    committed = _killed_after_commit(fasta, out, *common, "--pooling", "mean")
    assert 0 < committed < len(records)
    result = _embed(fasta, "-o", out, *common, "--pooling", "bos", "--resume", check=False)
    assert result.returncode != 0 and "different job" in result.stderr, result.stderr
    assert "pooling: stored 'mean', now 'bos'" in result.stderr, result.stderr
    assert result.stderr.count("stored ") == 1, f"only the pooling differs: {result.stderr}"
    _embed(fasta, "-o", out, *common, "--pooling", "mean", "--resume")  # the same job still resumes
    with h5py.File(out) as f:
        assert f.attrs["records"] == len(records)


def test_torchrun_two_ranks_equal_single_process(tmp_path, checkpoint, inputs):
    single = tmp_path / "single.h5"
    _embed(*inputs, "-o", single, "--model", checkpoint, "--max-tokens", "2000", "--workers", "1")
    multi = tmp_path / "multi.h5"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "virnucpro", "embed", *map(str, inputs), "-o", str(multi), "--model", str(checkpoint),
        "--max-tokens", "2000", "--workers", "1", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 ranks" in result.stdout, result.stdout
    with h5py.File(single) as a, h5py.File(multi) as b:
        assert a["ids"].asstr()[:].tolist() == b["ids"].asstr()[:].tolist()
        diff = np.abs(a["embeddings"][:] - b["embeddings"][:])
        assert diff.max() <= 1e-6, f"max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [d for child in children for d in (*_descendants(child), child)]


def test_two_ranks_killed_then_resumed_by_one_process(tmp_path, checkpoint):
    records = [(f"{rid}_{k}", seq) for k in range(3) for rid, seq in _proteins(120)]
    fasta = _write_fasta(tmp_path / "many.faa", records)
    common = ["--model", str(checkpoint), "--max-tokens", "600", "--workers", "1", "--device", "cpu", "--no-progress"]
    single = tmp_path / "single.h5"
    _embed(fasta, "-o", single, *common[:-3])

    out = tmp_path / "out.h5"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "virnucpro", "embed", str(fasta), "-o", str(out), *common]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for rank in (0, 1):
        wait_for_commit(tmp_path / "out.h5.parts" / f"shard-0-of-1.rank-{rank}-of-2" / "state.json", 20, proc=proc)
    for pid in [*_descendants(proc.pid), proc.pid]:  # torchrun starts its ranks in sessions of their own
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    states = [
        json.loads((tmp_path / "out.h5.parts" / f"shard-0-of-1.rank-{r}-of-2" / "state.json").read_text())
        for r in (0, 1)
    ]
    committed = sum(state["records"] for state in states)
    assert committed < len(records), f"kill landed after all {committed} records were committed"

    _embed(fasta, "-o", out, *common[:-3], "--resume")
    with h5py.File(single) as a, h5py.File(out) as b:
        assert a["ids"].asstr()[:].tolist() == b["ids"].asstr()[:].tolist()
        diff = np.abs(a["embeddings"][:] - b["embeddings"][:])
        assert diff.max() <= 1e-6, f"max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (">ok\nMKV\n>WP_bad one\nMKJLV\n", ["bad.faa", "'WP_bad'", "'J'", "position 3", "--invalid X"]),
        ("just some text\nnot fasta\n", ["bad.faa", "not a FASTA file"]),
        (None, ["missing.faa", "no such FASTA file"]),
    ],
    ids=["invalid-residue", "not-fasta", "missing-file"],
)
def test_bad_input_fails_naming_file_and_record(tmp_path, checkpoint, content, expected):
    fasta = tmp_path / ("missing.faa" if content is None else "bad.faa")
    if content is not None:
        fasta.write_text(content)
    out = tmp_path / "out.h5"
    result = _embed(fasta, "-o", out, "--model", checkpoint, "--workers", "2", check=False)
    assert result.returncode != 0
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not out.exists()
    assert not (tmp_path / "out.h5.parts").exists(), "nothing was committed, so nothing should block a rerun"


def test_replaced_residues_are_counted_and_reported(tmp_path, checkpoint):
    fasta = tmp_path / "odd.faa"
    fasta.write_text(">a\nMKJJV\n>b\nMKV\n>c\nJ1A\n")
    out = tmp_path / "out.h5"
    result = _embed(fasta, "-o", out, "--model", checkpoint, "--invalid", "X")
    assert "residues replaced with X 4" in result.stdout, result.stdout
    with h5py.File(out) as f:
        assert f.attrs["replaced_residues"] == 4 and f["ids"].asstr()[:].tolist() == ["a", "b", "c"]


def test_empty_input_gives_an_empty_file(tmp_path, checkpoint):
    empty = tmp_path / "empty.faa"
    empty.write_text("\n")
    out = tmp_path / "out.h5"
    result = _embed(empty, "-o", out, "--model", checkpoint)
    assert "0 records" in result.stdout
    with h5py.File(out) as f:
        assert f["ids"].shape == (0,) and f["embeddings"].shape == (0, 64) and f.attrs["records"] == 0


def test_existing_output_is_never_silently_replaced(tmp_path, checkpoint, inputs):
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious")
    result = _embed(inputs[0], "-o", out, "--model", checkpoint, check=False)
    assert result.returncode != 0 and "--overwrite" in result.stderr
    assert out.read_bytes() == b"precious"
    _embed(inputs[0], "-o", out, "--model", checkpoint, "--overwrite")
    with h5py.File(out) as f:
        assert f.attrs["records"] == 37
