"""Running ``virnucpro`` as a user does, in-process (``main(argv)``, fast) or as a real process."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from Bio import SeqIO
from conftest import PROTEOME

from virnucpro.cli import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys, *args: str | os.PathLike) -> Result:
    """``virnucpro ARGS`` through its real entry point, in this process, on the CPU unless ARGS name a device."""
    capsys.readouterr()
    argv = [str(a) for a in args]
    if argv[0] == "embed":
        argv += [*(() if "--device" in argv else ("--device", "cpu")), "--no-progress"]
    code = main(argv)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def spawn(*args: str | os.PathLike, **kwargs) -> subprocess.Popen:
    """``virnucpro embed ARGS`` as a separate process on the CPU."""
    cmd = [sys.executable, "-m", "virnucpro", "embed", *map(str, args), "--device", "cpu", "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def proteins(count: int, start: int = 0) -> list[tuple[str, str]]:
    with gzip.open(PROTEOME, "rt") as handle:
        records = list(SeqIO.parse(handle, "fasta"))[start : start + count]
    return [(r.id, str(r.seq)) for r in records]


def write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{rid} description\n{seq}\n" for rid, seq in records))
    return path


def many(path: Path, copies: int = 3) -> Path:
    """A FASTA big enough to interrupt: ``copies`` x 120 real proteins, distinct ids."""
    return write_fasta(path, [(f"{rid}_{k}", seq) for k in range(copies) for rid, seq in proteins(120)])


def part_dir(output: Path, shard: str = "shard-0-of-1", rank: str = "rank-0-of-1") -> Path:
    return output.with_name(output.name + ".parts") / f"{shard}.{rank}"


def wait_for_commit(state: Path, records: int, timeout: float = 300, proc=None) -> None:
    """Wait until ``state`` holds ``records`` committed records; fail at once if ``proc`` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {records} records were committed")
        try:
            if json.loads(state.read_text())["records"] >= records:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{state} never reached {records} committed records")


def same_file(a: Path, b: Path) -> None:
    """Two outputs hold the same datasets, bit for bit."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert sorted(fa) == sorted(fb), (sorted(fa), sorted(fb))
        for name in fa:
            x, y = fa[name][:], fb[name][:]
            assert x.dtype == y.dtype and np.array_equal(x, y), f"{name} differs between {a} and {b}"
        assert fa.attrs["records"] == fb.attrs["records"]


def descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [d for child in children for d in (*descendants(child), child)]
