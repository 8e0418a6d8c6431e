"""Which outputs a run writes, and the checks that keep every path a user owns safe.

A job is one output and the inputs that go into it: ``-o OUT`` makes one job of all
inputs, ``--output-dir DIR`` one job per input (``DIR/<name>.h5``). Before anything is
created on disk, every output, its temporary files and its parts folder are checked
never to resolve to an input, through symlinks too, and never to be a directory.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from virnucpro.data import require_fasta_file

from .outputs import OutputKind

__all__ = ["FASTA_SUFFIXES", "Job", "check_paths", "output_name", "plan_jobs"]

#: Suffixes dropped from an input's name to name its output in ``--output-dir`` (after
#: a compression suffix).
FASTA_SUFFIXES = (".fasta", ".fas", ".fa", ".faa", ".fna", ".ffn", ".frn", ".fsa", ".mpfa", ".seq", ".pep")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")


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
        raise ValueError("pass an output file, output (CLI: -o), or an output folder, output_dir (CLI: --output-dir)")
    jobs = [Job((path,), output_dir / output_name(path, suffix)) for path in inputs]
    clashes = [name for name, n in Counter(job.output.name for job in jobs).items() if n > 1]
    if clashes:
        same = [str(p) for p in inputs if output_name(p, suffix) == clashes[0]]
        raise ValueError(
            f"inputs {', '.join(same)} would all write {output_dir / clashes[0]} (output_dir (CLI: --output-dir) "
            "names each output after its input, without FASTA and compression suffixes); rename one, or run them "
            "one at a time with output (CLI: -o)"
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
        raise ValueError(
            f"the output folder {folder} does not exist; create it, or pass parents=True (CLI: --parents) to create it"
        )
    folder.mkdir(parents=True, exist_ok=True)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` points to, or None if it points nowhere."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
