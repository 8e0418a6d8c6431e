"""A hostile or careless user against ``virnucpro embed`` and ``assemble``: nothing a user owns is put at
risk, nothing damaged on disk is trusted, and every refusal is one line naming the file and the fix.

Numbers refer to the items of the reliability issue. Runs go through the real CLI, in this process
where that is enough and as real processes, killed with SIGKILL, where a crash is the point.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import h5py
import pytest
import torch
from cli_helpers import descendants, many, part_dir, proteins, run_cli, same_file, spawn, wait_for_commit, write_fasta
from conftest import tiny_esm2

from virnucpro.models import save_checkpoint

pytestmark = pytest.mark.slow

PART_FILES = ("index.i64", "lengths.i64", "input_lengths.i64", "ids.txt", "rows.bin")


@pytest.fixture(scope="session")
def model(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture
def fasta(tmp_path) -> Path:
    return write_fasta(tmp_path / "a.faa", proteins(30))


def _one_line(result) -> None:
    assert result.code == 1, result
    assert "Traceback" not in result.err and result.err.count("\n") == 1, result.err


# --- 1. an output that is an input --------------------------------------------------------------


def test_output_naming_an_input_is_refused_and_the_input_kept(capsys, tmp_path, model, fasta):
    before = fasta.read_bytes()
    result = run_cli(capsys, "embed", fasta, "-o", fasta, "--model", model, "--overwrite")
    _one_line(result)
    assert "is the input" in result.err and str(fasta) in result.err
    link = tmp_path / "link.h5"
    link.symlink_to(fasta)
    result = run_cli(capsys, "embed", fasta, "-o", link, "--model", model, "--overwrite")
    _one_line(result)
    assert "is the input" in result.err
    parts_named_input = write_fasta(tmp_path / "o.h5.parts", proteins(3))
    result = run_cli(capsys, "embed", parts_named_input, "-o", tmp_path / "o.h5", "--model", model)
    _one_line(result)
    assert "is the input" in result.err
    assert fasta.read_bytes() == before and parts_named_input.is_file()


# --- 2, 3. damaged parts are refused by name ----------------------------------------------------


@pytest.fixture(scope="module")
def shard_parts(tmp_path_factory, model) -> Path:
    """Committed parts of shard 0 of 2 (a shard run never assembles): pristine, to copy and damage."""
    folder = tmp_path_factory.mktemp("parts")
    source = write_fasta(folder / "in.faa", proteins(40))
    from virnucpro.cli import main

    assert main(["embed", str(source), "-o", str(folder / "o.h5"), "--model", str(model), "--shard", "0/2",
                 "--device", "cpu", "--no-progress", "--max-tokens", "2000"]) == 0  # fmt: skip
    return folder


def _copy(shard_parts: Path, tmp_path: Path) -> Path:
    shutil.copytree(shard_parts, tmp_path / "job", symlinks=True)
    return tmp_path / "job" / "o.h5"


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "extend":
        path.write_bytes(data + b"\x00" * 64)
    else:
        data[len(data) // 3] ^= 0x01
        path.write_bytes(data)


@pytest.mark.parametrize("how", ["truncate", "extend", "flip"])
@pytest.mark.parametrize("name", PART_FILES)
def test_assembly_refuses_a_damaged_part_file_naming_it(capsys, tmp_path, shard_parts, name, how):
    out = _copy(shard_parts, tmp_path)
    damaged = part_dir(out, "shard-0-of-2") / name
    _damage(damaged, how)
    result = run_cli(capsys, "assemble", out)
    _one_line(result)
    assert str(damaged) in result.err, result.err
    assert ("--resume" if how == "extend" else "--overwrite") in result.err, result.err  # the fix, named
    assert not out.exists()


@pytest.mark.parametrize(("name", "how"), [("rows.bin", "truncate"), ("lengths.i64", "truncate"), ("ids.txt", "flip")])
def test_resume_refuses_a_damaged_part_file_naming_it(capsys, tmp_path, shard_parts, model, name, how):
    out = _copy(shard_parts, tmp_path)
    damaged = part_dir(out, "shard-0-of-2") / name
    _damage(damaged, how)
    result = run_cli(capsys, "embed", out.parent / "in.faa", "-o", out, "--model", model, "--shard", "0/2",
                     "--resume", "--max-tokens", "2000")  # fmt: skip
    _one_line(result)
    assert str(damaged) in result.err, result.err
    assert "--overwrite" in result.err, result.err  # the fix, named


def test_resume_cuts_an_uncommitted_tail_and_gives_the_same_result(capsys, tmp_path, shard_parts, model):
    out = _copy(shard_parts, tmp_path)
    rows = part_dir(out, "shard-0-of-2") / "rows.bin"
    pristine = rows.read_bytes()
    _damage(rows, "extend")  # what a crash between two commits leaves
    args = ("embed", out.parent / "in.faa", "-o", out, "--model", model, "--max-tokens", "2000", "--resume")
    assert run_cli(capsys, *args, "--shard", "0/2").code == 0
    assert rows.read_bytes() == pristine, "the tail past the last commit is cut, never kept"


def test_corrupt_state_json_is_reported_with_its_path(capsys, tmp_path, shard_parts):
    out = _copy(shard_parts, tmp_path)
    state = part_dir(out, "shard-0-of-2") / "state.json"
    state.write_text(state.read_text()[:-10])
    result = run_cli(capsys, "assemble", out)
    _one_line(result)
    assert str(state) in result.err and "not valid JSON" in result.err


# --- 4. another model copied over the checkpoint ------------------------------------------------


def test_resume_with_another_model_under_the_same_path_is_refused(capsys, tmp_path, shard_parts, model):
    out = _copy(shard_parts, tmp_path)
    swapped = tmp_path / "m.pt"
    save_checkpoint(tiny_esm2(2, 64, 4, seed=4), swapped)  # same architecture, same size, other weights
    args = ("embed", out.parent / "in.faa", "-o", out, "--max-tokens", "2000", "--shard", "0/2", "--resume")
    result = run_cli(capsys, *args, "--model", swapped)
    _one_line(result)
    assert "different job" in result.err and "model" in result.err
    cwd = os.getcwd()
    try:  # the same checkpoint through another (relative) path still resumes
        os.chdir(model.parent)
        assert run_cli(capsys, *args, "--model", model.name).code == 0
    finally:
        os.chdir(cwd)


# --- 5. planted symlinks ------------------------------------------------------------------------


def test_planted_symlinks_are_never_written_through(capsys, tmp_path, model, fasta):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "o.h5"
    (tmp_path / "o.h5.tmp").symlink_to(victim)
    assert run_cli(capsys, "embed", fasta, "-o", out, "--model", model).code == 0
    assert victim.read_text() == "precious" and out.is_file() and not out.is_symlink()

    (tmp_path / "p.h5.parts").symlink_to(tmp_path)
    result = run_cli(capsys, "embed", fasta, "-o", tmp_path / "p.h5", "--model", model)
    _one_line(result)
    assert "p.h5.parts" in result.err and "symlink" in result.err

    linked = tmp_path / "q.h5"
    linked.symlink_to(victim)
    assert run_cli(capsys, "embed", fasta, "-o", linked, "--model", model).code == 1
    assert run_cli(capsys, "embed", fasta, "-o", linked, "--model", model, "--overwrite").code == 0
    assert victim.read_text() == "precious" and not linked.is_symlink()


# --- 7. workers die with their parent -----------------------------------------------------------


def test_workers_of_a_killed_run_exit(tmp_path, model):
    fasta = many(tmp_path / "many.faa", copies=6)
    proc = spawn(fasta, "-o", tmp_path / "o.h5", "--model", model, "--max-tokens", "300", "--workers", "2")
    wait_for_commit(part_dir(tmp_path / "o.h5") / "state.json", 10, proc=proc)
    workers = descendants(proc.pid)
    assert workers, "the run should have DataLoader workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert not alive, f"workers {alive} outlived their killed parent"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    except (OSError, IndexError):
        return "Z"


# --- 9. one run per output ----------------------------------------------------------------------


def test_a_second_run_on_a_running_output_is_refused_at_once(tmp_path, model):
    fasta = many(tmp_path / "many.faa", copies=6)
    out = tmp_path / "o.h5"
    first = spawn(fasta, "-o", out, "--model", model, "--max-tokens", "300", "--workers", "1")
    wait_for_commit(part_dir(out) / "state.json", 10, proc=first)
    others = [spawn(fasta, "-o", out, "--model", model, "--max-tokens", "300", *extra)
              for extra in ([], ["--overwrite"], ["--resume"])]  # fmt: skip
    for other in others:
        _, err = other.communicate(timeout=120)
        assert other.returncode == 1 and "being written by another run" in err and f"pid {first.pid}" in err, err
    assert first.poll() is None, "the first run ended before the others asked; the test proves nothing"
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    with h5py.File(out) as f:
        assert f.attrs["records"] == 720


# --- 10. NUL in a header, 11-14. one-line errors, nothing left behind -----------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--max-length", "0"], "--max-length"),
        (["--max-tokens", "-5"], "--max-tokens"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--shard", "2/2"], "--shard"),
        (["--pooling", "median"], "invalid choice"),
    ],
)
def test_rejected_options_leave_nothing_on_disk(capsys, tmp_path, model, fasta, extra, fragment):
    out = tmp_path / "o.h5"
    with pytest.raises(SystemExit) if fragment == "invalid choice" else contextlib.nullcontext():
        result = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, *extra)
        _one_line(result)
        assert fragment in result.err, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.faa"]


@pytest.mark.parametrize(
    "case", ["nul-header", "directory-input", "output-directory", "parts-is-a-file", "missing-folder", "bad-model"]
)
def test_bad_setups_get_one_line_naming_the_place(capsys, tmp_path, model, fasta, case):
    out, args = tmp_path / "o.h5", [fasta]
    if case == "nul-header":
        args = [write_fasta(tmp_path / "nul.faa", [("ok", "MKV"), ("bad\x00id", "MKV")])]
        expect = "nul.faa"
    elif case == "directory-input":
        args, expect = [tmp_path], "directory"
    elif case == "output-directory":
        out, expect = tmp_path, "is a directory"
    elif case == "parts-is-a-file":
        (tmp_path / "o.h5.parts").write_text("x")
        expect = "o.h5.parts"
    elif case == "missing-folder":
        out, expect = tmp_path / "absent" / "o.h5", "--parents"
    else:
        model = tmp_path / "bad.pt"
        torch.save({"model": {}, "cfg": {"model": 3}}, model)
        expect = "bad.pt"
    result = run_cli(capsys, "embed", *args, "-o", out, "--model", model, "--overwrite")
    _one_line(result)
    assert expect in result.err, result.err
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith((".parts", ".tmp")) and p.is_dir()]
    assert not leftovers, leftovers


def test_missing_output_folder_is_created_with_parents(capsys, tmp_path, model, fasta):
    out = tmp_path / "new" / "deeper" / "o.h5"
    assert run_cli(capsys, "embed", fasta, "-o", out, "--model", model, "--parents").code == 0
    assert out.is_file()


def test_ctrl_c_prints_one_line_saying_how_to_resume(tmp_path, model):
    fasta = many(tmp_path / "many.faa", copies=8)
    out = tmp_path / "o.h5"
    # A shell starts background jobs (`make test &`) with SIGINT ignored, and the run would inherit
    # that: give it the disposition of a terminal's foreground job.
    sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = spawn(fasta, "-o", out, "--model", model, "--max-tokens", "300", "--workers", "1", preexec_fn=sigint)
    wait_for_commit(part_dir(out) / "state.json", 10, proc=proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err, err
    resumed = spawn(fasta, "-o", out, "--model", model, "--max-tokens", "300", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()


def test_a_kill_between_the_rename_and_the_clean_up_is_a_finished_job(capsys, tmp_path, model, fasta, monkeypatch):
    out = tmp_path / "o.h5"
    from virnucpro.pipeline import assemble as assembly

    def killed(job):
        raise KeyboardInterrupt  # as a kill right after the output was renamed into place

    monkeypatch.setattr(assembly, "remove_parts", killed)
    killed_run = run_cli(capsys, "embed", fasta, "-o", out, "--model", model)
    monkeypatch.undo()
    assert killed_run.code != 0 and out.is_file() and (tmp_path / "o.h5.parts").is_dir(), killed_run
    plain = run_cli(capsys, "embed", fasta, "-o", out, "--model", model)
    assert plain.code == 1 and "--overwrite" in plain.err
    resumed = run_cli(capsys, "embed", fasta, "-o", out, "--model", model, "--resume")
    assert resumed.code == 0 and "already complete" in resumed.out, resumed
    assert not (tmp_path / "o.h5.parts").exists()
    reference = tmp_path / "ref.h5"
    assert run_cli(capsys, "embed", fasta, "-o", reference, "--model", model).code == 0
    same_file(out, reference)


def test_overlength_refusal_names_the_flag_that_exists(capsys, tmp_path, model):
    fasta = write_fasta(tmp_path / "long.faa", [("long", "M" * 40)])
    result = run_cli(capsys, "embed", fasta, "-o", tmp_path / "o.h5", "--model", model, "--max-length", "30",
                     "--on-overlength", "raise")  # fmt: skip
    _one_line(result)
    assert "--on-overlength truncate" in result.err and "--truncate " not in result.err
