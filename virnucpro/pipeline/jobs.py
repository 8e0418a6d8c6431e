"""Which outputs a run writes, and the checks that keep every path a user owns safe.

A job is one output and the inputs that go into it: ``-o OUT`` makes one job of all
inputs, ``--output-dir DIR`` one job per input (``DIR/<name>.h5``). Before anything is
created on disk, every output, its temporary files and its parts folder are checked
never to resolve to an input, through symlinks too, and never to be a directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from virnucpro.data import require_fasta_file

from .outputs import OutputKind

__all__ = ["FASTA_SUFFIXES", "STDIN", "Job", "check_paths", "output_name", "plan_jobs", "spooled_stdin"]

#: Suffixes dropped from an input's name to name its output in ``--output-dir`` (after
#: a compression suffix).
FASTA_SUFFIXES = (".fasta", ".fas", ".fa", ".faa", ".fna", ".ffn", ".frn", ".fsa", ".mpfa", ".seq", ".pep")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
#: The input name that means standard input.
STDIN = Path("-")


@dataclass(frozen=True)
class Job:
    """One output file and the inputs embedded into it, in order."""

    inputs: tuple[Path, ...]
    output: Path

    @property
    def parts_dir(self) -> Path:
        """Where the output's partial results live while it is written (``OUT.parts``)."""
        return self.output.with_name(self.output.name + ".parts")


def output_name(path: Path, suffix: str) -> str:
    """``sample.faa.gz`` -> ``sample`` + ``suffix``: the output name of an input in ``--output-dir``."""
    name = path.name
    for ending in (_COMPRESSION_SUFFIXES, FASTA_SUFFIXES):
        lowered = name.lower()
        for s in ending:
            if lowered.endswith(s) and len(name) > len(s):
                name = name[: -len(s)]
                break
    return name + suffix


def plan_jobs(inputs: Sequence[Path], output: Path | None, output_dir: Path | None, suffix: str) -> list[Job]:
    """The jobs of a run: one for ``output``, or one per input in ``output_dir``.

    Raises ``ValueError`` when two inputs would write the same output name.
    """
    if output is not None:
        return [Job(tuple(inputs), output)]
    if output_dir is None:
        raise ValueError("pass an output file (-o) or an output folder (--output-dir)")
    jobs = [Job((path,), output_dir / output_name(path, suffix)) for path in inputs]
    clashes = [name for name, n in Counter(job.output.name for job in jobs).items() if n > 1]
    if clashes:
        same = [str(p) for p in inputs if output_name(p, suffix) == clashes[0]]
        raise ValueError(
            f"inputs {', '.join(same)} would all write {output_dir / clashes[0]} (--output-dir names each output "
            "after its input, without FASTA and compression suffixes); rename one, or run them with -o separately"
        )
    return jobs


def check_paths(jobs: Sequence[Job], *, parents: bool, output: OutputKind) -> None:
    """Refuse, before anything is written, any output that is or would overwrite an input.

    Checked per job: every input is a readable FASTA file; the output's folder exists
    (or ``parents`` allows creating it); the output can be ``output``'s shape (``OutputKind.check``:
    a file is not a directory and has a known format; a folder holds only the task's files); and neither the
    output, its parts folder nor anything inside the folder's name space of the output
    resolves to an input (``os.path.samefile`` on what exists, resolved paths otherwise).
    """
    inputs = {path for job in jobs for path in job.inputs}
    for path in inputs:
        require_fasta_file(path)
    identities = {_identity(path): path for path in inputs}
    resolved = {path.resolve(): path for path in inputs}
    for job in jobs:
        for path in (job.output, job.parts_dir):
            clash = identities.get(_identity(path)) if os.path.lexists(path) else None
            clash = clash or resolved.get(path.resolve())
            if clash is not None:
                raise ValueError(
                    f"output {path} is the input {clash}: writing it would destroy the input; choose another output"
                )
        output.check(job.output)
        _check_folder(job.output.parent, parents)


def _check_folder(folder: Path, parents: bool) -> None:
    folder = folder if str(folder) else Path(".")
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{folder}: the output folder is not writable")
        return
    if folder.exists():
        raise ValueError(f"{folder} is not a directory, so it cannot hold the output")
    if not parents:
        raise ValueError(f"the output folder {folder} does not exist; create it, or pass --parents to create it")
    folder.mkdir(parents=True, exist_ok=True)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` points to, or None if it points nowhere."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def spooled_stdin(inputs: Sequence[Path], folder: Path, stream: BinaryIO | None = None) -> Iterator[tuple[Path, ...]]:
    """``inputs`` with ``-`` replaced by a copy of standard input in ``folder``, removed afterwards.

    Every DataLoader worker reads the whole input, so a pipe is first copied to a file
    (created exclusively, in the output's folder so that it lands on the same disk).
    """
    if STDIN not in inputs:
        yield tuple(inputs)
        return
    if list(inputs).count(STDIN) > 1:
        raise ValueError("standard input (-) can be given once")
    fd, name = tempfile.mkstemp(dir=folder, prefix=".virnucpro-stdin-", suffix=".fasta")
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(stream or sys.stdin.buffer, spool, 1 << 20)
        yield tuple(Path(name) if path == STDIN else path for path in inputs)
    finally:
        os.unlink(name)
