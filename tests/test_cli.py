"""The command line as a user meets it: one behaviour per option, messages that name only flags that exist,
warnings as single lines, and ``-`` for standard input and output wherever it can mean them.

The library's own messages are the reference: they name the library's arguments and, beside each, the
CLI's flag; the CLI must show the flag alone.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from pipeline.cli_helpers import proteins, run_cli, write_fasta

pytestmark = pytest.mark.slow

#: A library argument as a library message writes it (``overwrite=True``, ``invalid='X'``), or the
#: convention that pairs it with its flag: neither may reach a CLI user.
LIBRARY_FORM = re.compile(r"\(CLI:|\b[a-z_]+=(?:True|False|'|\")")

CONTIG = ">contig\n" + "ATGGCTAAAGTTCTGGCTGCTCAGCAGCGTCGTTCTACC" * 30 + "\n"


@pytest.fixture
def fasta(tmp_path):
    return write_fasta(tmp_path / "in.faa", proteins(3))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("translate-exists", "exists; pass --overwrite to replace it"),
        ("attention", "use --attention reference, exact on any device, or --attention auto"),
        ("max-length", "virnucpro: error: --max-length must be >= 1, got 0"),
        ("layers-twice", "--layers [-1, 2] name layer(s) [2] more than once"),
        ("stride", "--window-stride applies only with --on-overlength window"),
        ("gap", "has alignment gap '-' at position 3: the file looks like an alignment"),
        ("chunk-size-embed", "--chunk-size must be an integer >= 1, got 0"),
        ("chunk-size-translate", "--chunk-size must be an integer >= 1, got 0"),
        ("residual-fp8", "--residual float32 is for bf16/fp16 matmuls, not FP8's"),
    ],
)
def test_messages_name_only_flags_that_exist(capsys, tmp_path, tiny_checkpoint, fasta, case, expected):
    out, model = tmp_path / "o.h5", ("--model", tiny_checkpoint)
    dna = tmp_path / "in.fna"
    dna.write_text(CONTIG)
    argv = {
        "attention": ["embed", fasta, "-o", out, *model, "--attention", "triton"],
        "max-length": ["embed", fasta, "-o", out, *model, "--max-length", "0"],
        "layers-twice": ["embed", fasta, "-o", out, *model, "--layers", "-1", "2"],
        "stride": ["embed", fasta, "-o", out, *model, "--window-stride", "5"],
        "gap": ["embed", write_fasta(tmp_path / "aln.faa", [("a", "MK-VL")]), "-o", out, *model],
        "chunk-size-embed": ["embed", dna, "-o", out, *model, "--dna", "--chunk-size", "0"],
        "chunk-size-translate": ["translate", dna, "-o", tmp_path / "p.faa", "--chunk-size", "0"],
        "translate-exists": ["translate", dna, "-o", fasta],
        "residual-fp8": ["embed", fasta, "-o", out, *model, "--dtype", "fp8", "--residual", "float32"],
    }[case]
    result = run_cli(capsys, *argv)
    assert result.code == 1 and expected in result.err, result
    assert not LIBRARY_FORM.search(result.err), f"a library form reached the CLI: {result.err}"
    assert not out.exists()


def _embed(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "virnucpro", "embed", *args, "--device", "cpu", "--no-progress"]
    return subprocess.run(command, capture_output=True, input=stdin)


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet"])
def test_warnings_are_single_lines_and_quiet_keeps_only_the_random_weights_one(tmp_path, quiet):
    empty = tmp_path / "empty.faa"
    empty.write_text("\n")
    out = tmp_path / "o.h5"
    result = _embed(str(empty), "-o", str(out), "--model", "random:esm2_t6_8M", *(["-q"] if quiet else []))
    err = result.stderr.decode()
    assert result.returncode == 0, err
    lines = err.splitlines()
    random_weights = "virnucpro: warning: random:esm2_t6_8M_UR50D: weights are RANDOM (seed 0)"
    empty_input = f"virnucpro: warning: {empty}: no records; {out} holds none"
    assert [line.split(",")[0] for line in lines] == ([random_weights] if quiet else [random_weights, empty_input])
    assert "Warning:" not in err and "warnings.warn" not in err, err
    assert (result.stdout == b"") == quiet, result.stdout


def test_dash_is_standard_input_and_standard_output_where_an_output_streams(capsys, tmp_path):
    dna = tmp_path / "in.fna"
    dna.write_text(CONTIG)
    reference, nucleotides = tmp_path / "p.faa", tmp_path / "n.fna"
    assert run_cli(capsys, "translate", dna, "-o", reference, "--nucleotide-out", nucleotides).code == 0
    command = [sys.executable, "-m", "virnucpro", "translate", "-", "-o", "-"]
    command += ["--nucleotide-out", str(tmp_path / "m.fna")]
    streamed = subprocess.run(command, input=dna.read_bytes(), capture_output=True)
    assert streamed.returncode == 0, streamed.stderr.decode()
    assert streamed.stdout == reference.read_bytes(), "standard output holds exactly the protein FASTA"
    assert (tmp_path / "m.fna").read_bytes() == nucleotides.read_bytes()
    assert b"virnucpro translate:" in streamed.stderr, "the summary goes to standard error beside streamed FASTA"
    assert not (tmp_path / "-").exists()
    both = run_cli(capsys, "translate", dna, "-o", "-", "--nucleotide-out", "-")
    assert both.code == 1 and "would both write standard output" in both.err, both
    for argv in (["assemble", "-"], ["embed", dna, "-o", "-", "--model", "m.pt", "--dna"]):
        refused = run_cli(capsys, *argv)
        assert refused.code == 1 and "cannot be written to standard output" in refused.err, refused


def test_threads_sets_the_cpu_threads_torch_computes_with(capsys, tmp_path, tiny_checkpoint, fasta):
    before = torch.get_num_threads()
    try:
        result = run_cli(capsys, "embed", fasta, "-o", tmp_path / "o.h5", "--model", tiny_checkpoint, "--threads", "1")
        assert result.code == 0 and torch.get_num_threads() == 1, result
    finally:
        torch.set_num_threads(before)


def test_residual_float32_is_recorded_and_a_resume_without_it_is_refused(capsys, tmp_path, tiny_checkpoint, fasta):
    import h5py

    out, model = tmp_path / "o.h5", ("--model", tiny_checkpoint, "--dtype", "bf16")
    result = run_cli(capsys, "embed", fasta, "-o", out, *model, "--residual", "float32")
    assert result.code == 0 and "residual float32" in result.out, result
    with h5py.File(out) as f:
        assert f.attrs["residual"] == "float32"
    plain = run_cli(capsys, "embed", fasta, "-o", out, *model, "--resume")
    assert plain.code == 1 and "holds the results of another job (differing: forward)" in plain.err, plain
