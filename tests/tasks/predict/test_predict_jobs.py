"""``virnucpro predict`` as a job: kill and resume, shards and assemble, ``--output-dir``, ranks, refusals.

Runs of ours are compared with an uninterrupted single run on the same input. A resumed run and
``--output-dir`` batch every frame as the single run does: the result files are equal byte for
byte, the features dataset by dataset. Shards and ranks each batch their own share of the frames,
so scores may differ in the last bits (as ``embed``'s rows do): the same frames in the same order,
the same calls, scores within 1e-6. Every frame comes out exactly once: the ids are those
``virnucpro.data.dna`` translates from the input, in its order. On the CPU, small random models
(``predict_models.FAST``), the classifier saved as VirNucPro's train.py saves it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from predict_models import FAST, contig, make_models, write_fasta

from virnucpro.data.dna import read_dna
from virnucpro.tasks.predict import CONTIGS_FILE, HIGHEST_FILE, PROVENANCE_FILE, RESULTS_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pipeline"))
from cli_helpers import descendants, run_cli, wait_for_commit  # noqa: E402

pytestmark = pytest.mark.slow

CHUNK = 300
FILES = (RESULTS_FILE, HIGHEST_FILE, CONTIGS_FILE)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("models"), CHUNK, esm_shape=FAST["esm"], dnabert_shape=FAST["dnabert"])


def options(models, *extra: str) -> list[str]:
    return [*models.args(), "--chunk-size", str(CHUNK), "--max-tokens", "400", "--workers", "1", *extra]


def predict(capsys, *args) -> str:
    result = run_cli(capsys, "predict", *args, "--device", "cpu", "--no-progress")
    assert result.code == 0, result.err
    return result.out


def dna(path: Path, start: int, length: int, name: str = "MIIJ") -> Path:
    """A piece of the bundled coding-dense contig, and two made-up records."""
    coding = contig("MIIJ01000039.fna.gz")[start : start + length]
    return write_fasta(
        path, [(f"{name}_a", coding[: length // 2]), ("short", coding[:250]), (f"{name}_b", coding[length // 2 :])]
    )


def same_output(a: Path, b: Path, features: str | None = None) -> None:
    """Two output folders hold the same results, byte for byte, and the same features."""
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between {a} and {b}"
    if features:
        with h5py.File(a / features) as fa, h5py.File(b / features) as fb:
            assert sorted(fa) == sorted(fb)
            for name in fa:
                assert np.array_equal(fa[name][:], fb[name][:]), f"{features}: {name} differs"
    pa, pb = (json.loads((out / PROVENANCE_FILE).read_text()) for out in (a, b))
    assert pa["records"] == pb["records"] and pa["chunk_size"] == pb["chunk_size"] == CHUNK


def close_output(a: Path, b: Path) -> None:
    """Two output folders of differently batched runs: the same frames, calls and chunks; scores within 1e-6."""
    (ids_a, calls_a, scores_a), (ids_b, calls_b, scores_b) = read_results(a), read_results(b)
    assert ids_a == ids_b
    diff = np.abs(scores_a - scores_b)
    assert diff.max() <= 1e-6, f"scores: max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"
    tied = np.abs(scores_a[:, 1] - scores_a[:, 0]) < 1e-6
    assert all(x == y for x, y, t in zip(calls_a, calls_b, tied) if not t), "the calls differ"
    assert (a / HIGHEST_FILE).read_bytes() == (b / HIGHEST_FILE).read_bytes()
    rows_a, rows_b = ((out / CONTIGS_FILE).read_text().splitlines() for out in (a, b))
    assert [r.split("\t")[:7] for r in rows_a] == [r.split("\t")[:7] for r in rows_b]
    scores = [np.array([r.split("\t")[7:] for r in rows[1:]], dtype=np.float32) for rows in (rows_a, rows_b)]
    assert np.abs(scores[0] - scores[1]).max() <= 1e-6


def read_results(out: Path) -> tuple[list[str], list[str], np.ndarray]:
    rows = [line.split("\t") for line in (out / RESULTS_FILE).read_text().splitlines()[1:]]
    return [r[0] for r in rows], [r[1] for r in rows], np.array([r[2:] for r in rows], dtype=np.float32)


def frame_ids(fasta: Path) -> list[str]:
    """The frames VirNucPro's rules give the input, in input order (``virnucpro.data.dna``)."""
    return [protein.id for protein in read_dna(fasta, CHUNK)]


def result_ids(out: Path) -> list[str]:
    return [line.split("\t", 1)[0] for line in (out / RESULTS_FILE).read_text().splitlines()[1:]]


def spawn(*args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "virnucpro", "predict", *map(str, args), "--device", "cpu", "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def parts(out: Path) -> Path:
    return out.with_name(out.name + ".parts") / "shard-0-of-1.rank-0-of-1"


def test_kill_then_resume_gives_byte_identical_files(capsys, tmp_path, models):
    fasta = dna(tmp_path / "long.fna", 100_000, 120_000)
    expected = frame_ids(fasta)
    whole = tmp_path / "whole"
    predict(capsys, fasta, "-o", whole, *options(models, "--save-features", "f.h5"))
    assert result_ids(whole) == expected and len(expected) > 300
    out = tmp_path / "resumed"
    proc = spawn(fasta, "-o", out, *options(models, "--save-features", "f.h5"))
    try:
        wait_for_commit(parts(out) / "state.json", 40, proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    committed = json.loads((parts(out) / "state.json").read_text())["records"]
    assert 0 < committed < len(expected) and not out.exists(), f"the kill landed at {committed} of {len(expected)}"
    predict(capsys, fasta, "-o", out, *options(models, "--save-features", "f.h5"), "--resume")
    same_output(whole, out, "f.h5")
    assert not out.with_name("resumed.parts").exists()


def test_three_shards_assembled_and_output_dir_equal_single_runs(capsys, tmp_path, models):
    a, b = dna(tmp_path / "a.fna", 200_000, 30_000, "A"), dna(tmp_path / "b.fna", 300_000, 20_000, "B")
    for fasta in (a, b):
        predict(capsys, fasta, "-o", tmp_path / f"{fasta.stem}.single", *options(models))
    sharded = tmp_path / "sharded"
    for shard in ("0/3", "1/3", "2/3"):  # two workers each: exact-once across workers and shards
        out = predict(capsys, a, "-o", sharded, *options(models, "--workers", "2", "--shard", shard))
        assert "shard parts; assemble" in out, out
    assert not sharded.exists()
    assert run_cli(capsys, "assemble", sharded).code == 0
    assert result_ids(sharded) == frame_ids(a)
    close_output(tmp_path / "a.single", sharded)
    assert json.loads((sharded / PROVENANCE_FILE).read_text())["shards"] == 3
    predict(capsys, a, b, "--output-dir", tmp_path / "each", "--parents", *options(models))
    for fasta in (a, b):
        same_output(tmp_path / f"{fasta.stem}.single", tmp_path / "each" / fasta.stem)


def test_two_ranks_equal_one_process(capsys, tmp_path, models):
    fasta = dna(tmp_path / "a.fna", 200_000, 20_000)
    single = tmp_path / "single"
    predict(capsys, fasta, "-o", single, *options(models))
    multi = tmp_path / "multi"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "virnucpro",
        "predict", str(fasta), "-o", str(multi), *options(models), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        for pid in [*descendants(proc.pid), proc.pid]:
            os.kill(pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    assert "on 2 ranks" in stdout, stdout
    assert result_ids(multi) == frame_ids(fasta)
    close_output(single, multi)


def test_a_classifier_for_another_chunk_size_is_refused_before_anything_runs(capsys, tmp_path, models):
    fasta = dna(tmp_path / "a.fna", 0, 2_000)
    named = tmp_path / "500_model.pth"
    named.write_bytes(models.classifier.read_bytes())
    args = ["--model", models.esm_file, "--dnabert", models.dnabert_folder, "--classifier", named]
    result = run_cli(capsys, "predict", fasta, "-o", tmp_path / "out", *args, "--chunk-size", "300")
    assert result.code == 1
    assert "500 bp chunks" in result.err and "--chunk-size is 300" in result.err, result.err
    assert "--chunk-size" in result.err and result.err.count("\n") == 1, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["500_model.pth", "a.fna"], "nothing was created"


def test_an_rna_record_is_refused_naming_it_and_nothing_is_written(capsys, tmp_path, models):
    # VirNucPro would drop each codon holding a U, stops included, and classify what is left
    rna = dna(tmp_path / "a.fna", 0, 900).read_text().splitlines()[1].replace("T", "U")
    fasta = write_fasta(tmp_path / "mixed.fna", [("dna", "ACGT" * 200), ("rna", rna)])
    out = tmp_path / "out"
    result = run_cli(capsys, "predict", fasta, "-o", out, *options(models), "--device", "cpu", "--no-progress")
    assert result.code == 1
    assert "record 2 ('rna') has 'U' at position" in result.err and "write its U as T" in result.err, result.err
    assert "nothing was classified" in result.err and result.err.count("\n") == 1, result.err
    assert not out.exists()


def test_no_stop_free_frame_writes_the_headers_and_says_so(capsys, caplog, tmp_path, models):
    # too short for a codon; N codons give no residue; TTAG repeats hold a stop in every frame, both strands
    fasta = write_fasta(tmp_path / "none.fna", [("tiny", "AC"), ("ns", "N" * 400), ("stops", "TTAG" * 150)])
    assert frame_ids(fasta) == []
    out = tmp_path / "out"
    result = run_cli(capsys, "predict", fasta, "-o", out, *options(models), "--device", "cpu", "--no-progress")
    assert result.code == 0, result.err
    assert "headers only" in result.out, result.out
    assert "no chunk of the input has a frame without a stop codon" in caplog.text
    assert (out / RESULTS_FILE).read_text() == "Sequence_ID\tPrediction\tscore1\tscore2\n"
    assert (out / HIGHEST_FILE).read_text() == "Modified_ID\tIs_Virus\n"
    rows = (out / CONTIGS_FILE).read_text().splitlines()
    expected = [["tiny", "2", "1", "0", "0"], ["ns", "400", "2", "0", "0"], ["stops", "600", "2", "0", "0"]]
    assert [row.split("\t")[:5] for row in rows[1:]] == expected


def test_an_output_folder_is_replaced_only_when_asked_and_only_if_ours(capsys, tmp_path, models):
    fasta = dna(tmp_path / "a.fna", 0, 3_000)
    out = tmp_path / "out"
    out.mkdir()  # an empty folder the user made is fine
    predict(capsys, fasta, "-o", out, *options(models))
    first = (out / RESULTS_FILE).read_bytes()
    result = run_cli(capsys, "predict", fasta, "-o", out, *options(models), "--device", "cpu", "--no-progress")
    assert result.code == 1 and "exists; pass --overwrite" in result.err, result.err
    assert "already complete" in predict(capsys, fasta, "-o", out, *options(models), "--resume")
    (out / "notes.txt").write_text("mine")
    result = run_cli(capsys, "predict", fasta, "-o", out, *options(models), "--overwrite", "--device", "cpu")
    assert result.code == 1 and "notes.txt" in result.err and "never holds" in result.err, result.err
    assert (out / "notes.txt").read_text() == "mine" and (out / RESULTS_FILE).read_bytes() == first
    (out / "notes.txt").unlink()
    predict(capsys, fasta, "-o", out, *options(models), "--overwrite")
    assert (out / RESULTS_FILE).read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fna", "out"], "no temporary is left"


def test_links_where_the_output_goes_are_named_and_nothing_is_written_through_them(capsys, tmp_path, models):
    fasta = dna(tmp_path / "a.fna", 0, 3_000)
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / RESULTS_FILE).symlink_to(precious)  # our file's name, but a link to the user's file
    result = run_cli(capsys, "predict", fasta, "-o", out, *options(models), "--overwrite", "--device", "cpu")
    assert result.code == 1 and f"{RESULTS_FILE} as a link or folder" in result.err, result.err
    assert precious.read_text() == "mine" and (out / RESULTS_FILE).is_symlink()
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    result = run_cli(capsys, "predict", fasta, "-o", linked, *options(models), "--device", "cpu")
    assert result.code == 1 and "linked is a symbolic link" in result.err, result.err
    assert not any((tmp_path / "elsewhere").iterdir())


def test_provenance_names_both_models_the_classifier_and_the_chunk_size(capsys, tmp_path, models):
    fasta = dna(tmp_path / "a.fna", 0, 3_000)
    out = tmp_path / "out"
    predict(capsys, fasta, "-o", out, *options(models))
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    for key, path in {"model_sha256": models.esm_file, "classifier_sha256": models.classifier}.items():
        assert provenance[key] == hashlib.sha256(path.read_bytes()).hexdigest(), key
    folder = provenance["dnabert_files_sha256"]
    assert folder["tokenizer"] == hashlib.sha256((models.dnabert_folder / "tokenizer.json").read_bytes()).hexdigest()
    assert provenance["chunk_size"] == CHUNK and provenance["fingerprint"]["input_kind"]["chunk_size"] == CHUNK
    assert provenance["command"].startswith("virnucpro predict") and "--chunk-size 300" in provenance["command"]
    assert provenance["records"] == len(frame_ids(fasta)) and provenance["contigs"] == 3
    assert {"virnucpro_version", "torch_version", "fair_esm_version"} <= set(provenance)
