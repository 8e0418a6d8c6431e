"""A careless user loses no work: bad input and impossible options are refused before the work, every kind of
stop resumes to the file an uninterrupted run writes, and outputs are files others can read.

Runs go through the real CLI on the CPU: in this process where that is enough, as real processes where a
signal or a kill is the point. The reference is always an uninterrupted run of the same command.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import part_dir, proteins, run_cli, same_file, spawn, wait_for_commit, write_fasta
from conftest import requires_cuda

import virnucpro
from virnucpro.data import sequence_dataset
from virnucpro.pipeline import sink, validation
from virnucpro.pipeline.writers.hdf5 import HDF5Writer

pytestmark = pytest.mark.slow

TOKENS = ("--max-tokens", "300", "--workers", "1")


@pytest.fixture(scope="session")
def model(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_checkpoint):
    """150 real proteins and their output from one uninterrupted run (in batches of 300 tokens)."""
    folder = tmp_path_factory.mktemp("job")
    fasta = write_fasta(folder / "in.faa", proteins(150))
    reference = folder / "reference.h5"
    from virnucpro.cli import main

    argv = ["embed", str(fasta), "-o", str(reference), "--model", str(tiny_checkpoint), *TOKENS]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    return fasta, reference


def _one_line(result) -> None:
    assert result.code == 1, result
    assert "Traceback" not in result.err and result.err.count("\n") == 1, result.err


def _committed(output: Path) -> int:
    """Records committed in the parts of ``output`` (0 when it has none)."""
    parts = output.with_name(output.name + ".parts")
    states = parts.glob("shard-*/state.json") if parts.is_dir() else ()
    return sum(json.loads(state.read_text())["records"] for state in states)


def _rerun(capsys, message: str):
    """Run the command a message ends with (``...: virnucpro embed ...``), as the user would paste it."""
    return run_cli(capsys, *shlex.split(message.strip().rsplit(": virnucpro ", 1)[1]))


# --- fail before the work -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("per-token-parquet", "cannot hold --pooling per-token"),
        ("no-pyarrow", "pip install 'virnucpro[parquet]'"),
        ("stdout", "-o -: an embeddings file cannot be written to standard output"),
        ("chunk-size-0", "--chunk-size must be an integer >= 1, got 0"),
        ("threads-0", "--threads must be an integer >= 1, got 0"),
    ],
)
def test_options_that_cannot_give_an_output_are_refused_before_anything_runs(
    capsys, tmp_path, model, monkeypatch, case, expected
):
    fasta = write_fasta(tmp_path / "in.faa", proteins(3))
    out, extra = tmp_path / "o.h5", []
    if case == "per-token-parquet":
        out, extra = tmp_path / "o.parquet", ["--pooling", "per-token"]
    elif case == "no-pyarrow":
        out = tmp_path / "o.parquet"
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
        monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    elif case == "stdout":
        out = "-"
    elif case == "chunk-size-0":
        extra = ["--dna", "--chunk-size", "0"]
    else:
        extra = ["--threads", "0"]
    result = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *extra)
    _one_line(result)
    assert expected in result.err, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.faa"], "nothing may be created"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, requires_cuda])])
def test_a_late_bad_record_stops_the_run_before_the_records_before_it_are_embedded(capsys, tmp_path, model, device):
    # 2,000 records parse in milliseconds; the tiny model takes tens of seconds on a CPU, and on a GPU
    # the DataLoader workers fork from a process whose validation thread is already reading.
    good = "".join(f">r{i}\nMKVLAAQQRRST\n" for i in range(2000))
    fasta = tmp_path / "late.faa"
    fasta.write_text(good + ">bad\nMKV?LL\n>after\nMKV\n")
    out = tmp_path / "o.h5"
    started = time.monotonic()
    result = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *TOKENS, "--device", device)
    _one_line(result)
    assert f"{fasta}: record 2001 ('bad') has invalid residue '?' at position 4" in result.err, result.err
    assert _committed(out) < 1000, f"{_committed(out)} of the 2,000 records before the bad one were embedded"
    assert not out.exists() and f"-o {out}" in result.err and "--invalid X" in result.err, result.err
    fasta.write_text(good + ">bad\nMKVALL\n>after\nMKV\n")
    rerun = _rerun(capsys, result.err)
    assert rerun.code == 0 and "2,002 records" in rerun.out, rerun
    assert time.monotonic() - started < 600


def _validation_held_until(output: Path, records: int, monkeypatch) -> None:
    """Hold the validation pass, after its first record, until the DataLoader workers' error for the bad
    record has reached the run and ``records`` are committed: an input read more slowly than it is embedded
    (a slow network disk), where the workers meet a bad record before the validation pass does."""
    count, wait = validation._count, validation.InputCheck.wait
    # The pass runs in a forked child: the parent tells it through a file that the workers have stopped.
    workers_stopped = output.with_name("workers-stopped")

    def waited(self):  # ``_checked``: the workers' ValueError reached the run, which now waits for the pass
        workers_stopped.touch()
        return wait(self)

    def held(dataset, reading):
        def slow_dataset():
            built = dataset()
            records_of = built.records

            def slow_records():
                stream = records_of()
                yield next(stream)
                deadline = time.monotonic() + 300
                while not workers_stopped.exists():
                    assert time.monotonic() < deadline, "the workers never met the bad record"
                    time.sleep(0.01)
                wait_for_commit(part_dir(output) / "state.json", records, timeout=300)
                yield from stream

            built.records = slow_records
            return built

        return count(slow_dataset, reading)

    monkeypatch.setattr(validation, "_count", held)
    monkeypatch.setattr(validation.InputCheck, "wait", waited)
    # The workers budget records in chunks of BUDGET_CHUNK (512): the bad record at position 50 would stop
    # them before their first batch, nothing embedded. Small chunks let them yield the batches before it
    # (batch boundaries do not depend on the chunk: tests/data/test_bpe_dataset.py). Workers fork: they
    # inherit the patch.
    monkeypatch.setattr(sequence_dataset, "BUDGET_CHUNK", 4)
    # The writer commits after every batch, not about once a second: a tiny model embeds the 50 records in
    # well under one, and the writer goes on committing what it was handed while the run waits for the pass.
    monkeypatch.setattr(sink, "_COMMIT_EVERY_S", 0.0)


def _stopped_by(capsys, tmp_path, model, job, record: str, monkeypatch):
    """The job's input with ``record`` inserted at input position 50, run until the workers stop at it
    (the validation pass held back) after at least 10 records were committed: (input, output, the run)."""
    records = job[0].read_text().split(">")[1:]
    fasta, out = tmp_path / "in.faa", tmp_path / "o.h5"
    fasta.write_text(">" + ">".join(records[:50]) + record + ">" + ">".join(records[50:]))
    _validation_held_until(out, 10, monkeypatch)
    stopped = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *TOKENS)
    monkeypatch.undo()
    _one_line(stopped)
    return fasta, out, stopped


def test_a_run_stopped_by_a_bad_record_resumes_on_the_fixed_input(capsys, tmp_path, model, job, monkeypatch):
    bad, out, stopped = _stopped_by(capsys, tmp_path, model, job, ">WP_bad\nMKV?LL\n", monkeypatch)
    kept = _committed(out)
    assert 10 <= kept <= 50, kept
    assert f"keeps the {kept:,} records embedded before it" in stopped.err and "--resume" in stopped.err, stopped
    assert run_cli(capsys, "embed", bad, "-o", out, "--model", model, *TOKENS, "--resume").code == 1  # still bad

    text = bad.read_text()
    third = text.split(">")[3].split("\n", 1)[1][:8]  # a record before the bad one changed too: nothing kept
    bad.write_text(text.replace(third, "MKVLAAQQ" if third != "MKVLAAQQ" else "MKVLAAQA", 1).replace("?", "A"))
    parts = out.with_name("o.h5.parts")
    saved = {p: p.read_bytes() for p in parts.rglob("*") if p.suffix != ".lock" and p.is_file()}
    refused = run_cli(capsys, "embed", bad, "-o", out, "--model", model, *TOKENS, "--resume")
    _one_line(refused)
    assert "changed before the bad record" in refused.err, refused.err
    assert {p: p.read_bytes() for p in saved} == saved, "a refused resume changes nothing"

    bad.write_text(text.replace("MKV?LL", "MKVALL"))  # only the bad record fixed
    fixed_reference = tmp_path / "fixed.h5"
    assert run_cli(capsys, "embed", bad, "-o", fixed_reference, "--model", model, *TOKENS).code == 0
    resumed = _rerun(capsys, stopped.err)
    assert resumed.code == 0 and f"{151 - kept} records" in resumed.out, resumed
    same_file(out, fixed_reference)


def test_resume_may_change_only_which_records_are_accepted(capsys, tmp_path, model, job, monkeypatch):
    gapped, out, stopped = _stopped_by(capsys, tmp_path, model, job, ">WP_gap\nMK--VL\n", monkeypatch)
    assert "alignment gap '-'" in stopped.err and "--invalid X" in stopped.err, stopped.err
    resumed = run_cli(capsys, "embed", gapped, "-o", out, "--model", model, *TOKENS, "--resume", "--invalid", "X")
    assert resumed.code == 0 and "residues replaced with X 2" in resumed.out, resumed
    reference = tmp_path / "reference.h5"
    assert run_cli(capsys, "embed", gapped, "-o", reference, "--model", model, *TOKENS, "--invalid", "X").code == 0
    same_file(out, reference)


# --- resume after every kind of stop ------------------------------------------------------------


def test_a_killed_overwrite_resumes_and_replaces_the_old_output_only_when_complete(capsys, tmp_path, model, job):
    fasta, reference = job
    out = tmp_path / "o.h5"
    old = write_fasta(tmp_path / "old.faa", proteins(4, 100))
    assert run_cli(capsys, "embed", old, "-o", out, "--model", model).code == 0
    before = out.read_bytes()
    proc = spawn(fasta, "-o", out, "--model", model, *TOKENS, "--overwrite")
    wait_for_commit(part_dir(out) / "state.json", 10, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == before, "the old output stays until the new one is complete"
    resumed = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *TOKENS, "--resume")
    assert resumed.code == 0, resumed
    same_file(out, reference)


def test_sigterm_says_how_to_resume_exits_143_and_resume_gives_the_same_file(capsys, tmp_path, model, job):
    fasta, reference = job
    out = tmp_path / "o.h5"
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc = spawn(fasta, "-o", out, "--model", model, *TOKENS, start_new_session=True, env=env)
    wait_for_commit(part_dir(out) / "state.json", 10, proc=proc)
    os.killpg(proc.pid, signal.SIGTERM)  # as SLURM at a time limit: the process and its workers
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    hint = "virnucpro: terminated (SIGTERM); rerun the same command with --resume"
    assert err.strip().splitlines()[-1].startswith(hint), err
    assert "Traceback" not in err, err
    assert _committed(out) >= 10 and not out.exists()
    assert run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *TOKENS, "--resume").code == 0
    same_file(out, reference)
    assert not list(cache.rglob("*.tmp")), "the digest cache keeps no temporaries"


def test_a_failed_write_step_resumes_once_its_cause_is_fixed(capsys, tmp_path, model, job, monkeypatch):
    fasta, reference = job
    out = tmp_path / "o.h5"

    def disk_full(self, attrs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(HDF5Writer, "finish", disk_full)
    failed = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *TOKENS)
    monkeypatch.undo()
    _one_line(failed)
    assert "No space left on device" in failed.err and not out.exists(), failed
    assert _committed(out) == 150 and not list(tmp_path.glob(".o.h5.*")), "all parts kept, no temporary"
    with pytest.raises(FileNotFoundError) as unfinished:
        virnucpro.read_embeddings(out)
    assert "is not finished" in str(unfinished.value) and "--resume" in str(unfinished.value), unfinished.value
    resumed = _rerun(capsys, ": " + str(unfinished.value).rsplit("(CLI: ", 1)[1].rstrip(")"))
    assert resumed.code == 0, resumed
    same_file(out, reference)


def test_reading_a_shard_output_before_assembly_says_what_to_do(capsys, tmp_path, model):
    fasta = write_fasta(tmp_path / "in.faa", proteins(6))
    out = tmp_path / "o.h5"
    assert run_cli(capsys, "embed", fasta, "-o", out, "--model", model, "--shard", "0/2").code == 0
    with pytest.raises(FileNotFoundError, match=r"is not finished: .*--shard runs.*virnucpro assemble"):
        virnucpro.read_embeddings(out)
    with pytest.raises(FileNotFoundError, match="no such file"):
        virnucpro.read_embeddings(tmp_path / "absent.h5")


# --- files like any other ----------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_mode_the_umask_gives_a_new_file(
    capsys, tmp_path, model, monkeypatch, umask, file_mode, folder_mode
):
    fasta = write_fasta(tmp_path / "in.faa", proteins(3))
    dna = tmp_path / "in.fna"
    dna.write_text(">contig\n" + "ACGTTGCAAGGCTTAA" * 40 + "\n")
    while_written = []  # the temporary's mode while the output is written into it
    finish = HDF5Writer.finish

    def watched(self, attrs):
        while_written.append(stat.S_IMODE(os.stat(self._file.filename).st_mode))
        finish(self, attrs)

    monkeypatch.setattr(HDF5Writer, "finish", watched)
    previous = os.umask(umask)
    try:
        assert run_cli(capsys, "embed", fasta, "-o", tmp_path / "o.h5", "--model", model).code == 0
        assert run_cli(capsys, "embed", fasta, "-o", tmp_path / "s.h5", "--model", model, "--shard", "0/2").code == 0
        assert run_cli(capsys, "translate", dna, "-o", tmp_path / "p.faa").code == 0
    finally:
        os.umask(previous)
    parts = tmp_path / "s.h5.parts"
    files = [tmp_path / "o.h5", tmp_path / "p.faa", *(p for p in parts.rglob("*") if p.is_file())]
    folders = [parts, *(p for p in parts.rglob("*") if p.is_dir())]
    modes = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files + folders}
    expected = {str(p): oct(file_mode if p in files else folder_mode) for p in files + folders}
    assert modes == expected
    assert while_written == [0o600], "a temporary stays private until it is renamed into place"


# --- standard input -----------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_bad_byte_on_standard_input_is_blamed_on_its_record(capsys, tmp_path, model, monkeypatch, compressed):
    content = b">a\nMKV\n>b\nMK\xe9V\n>c\nMKV\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(content) if compressed else content)))
    result = run_cli(capsys, "embed", "-", "-o", tmp_path / "o.h5", "--model", model)
    _one_line(result)
    where = "of the decompressed data" if compressed else "of the file"
    expected = f"standard input: record 2 ('b'): not UTF-8 text in its sequence: byte 0xe9 at byte offset 12 {where}"
    assert expected in result.err, result.err
    assert not list(tmp_path.glob(".virnucpro-stdin-*")), "the copy of standard input is removed"


# --- a bug, not bad input -------------------------------------------------------------------------


def test_a_bug_in_the_validation_pass_is_one_line_and_its_traceback_is_logged_at_debug(
    capsys, caplog, tmp_path, model, job, monkeypatch
):
    """The pass runs in a forked child: its traceback crosses the pipe, for --log-level DEBUG (the
    log, which pytest captures in ``caplog``, where a user's run writes it to standard error)."""
    fasta, _ = job

    def broken_count(dataset, reading):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(validation, "_count", broken_count)
    quiet = run_cli(capsys, "embed", fasta, "-o", tmp_path / "a.h5", "--model", model, *TOKENS)
    _one_line(quiet)
    assert "the validation pass failed: ZeroDivisionError: planted (a bug: --log-level DEBUG" in quiet.err, quiet.err
    assert "in broken_count" not in caplog.text
    debug = run_cli(capsys, "embed", fasta, "-o", tmp_path / "b.h5", "--model", model, *TOKENS, "--log-level", "DEBUG")
    _one_line(debug)
    assert "in the validation pass's process:" in caplog.text and "in broken_count" in caplog.text, caplog.text
