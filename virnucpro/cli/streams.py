"""``-`` on the command line: standard input for every command that reads FASTA, standard output where an
output can stream (``translate``'s FASTA), and a clear refusal where it cannot (an embeddings file)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from virnucpro.data.standard_input import STDIN, spooled_stdin

from . import message_of

__all__ = ["STDIN", "fasta_inputs", "refuse_stdout"]


@contextlib.contextmanager
def fasta_inputs(inputs: Sequence[Path], folder: Path) -> Iterator[tuple[Path, ...]]:
    """``inputs`` with ``-`` read from standard input, copied to a private file in ``folder`` (every
    reader opens the input anew); an error that names that file names standard input instead."""
    with spooled_stdin(inputs, folder if folder.is_dir() else Path(".")) as paths:
        spool = next((str(path) for path, given in zip(paths, inputs) if given == STDIN), None)
        try:
            yield paths
        except (ValueError, OSError, RuntimeError) as err:
            if spool is None or spool not in (text := message_of(err)):
                raise
            raise ValueError(text.replace(spool, "standard input")) from err


def refuse_stdout(flag: str, path: Path | None, kind: str) -> None:
    """Refuse ``flag -`` for an output of ``kind`` that must be a file (written in place, not streamed)."""
    if path == STDIN:
        raise ValueError(
            f"{flag} -: {kind} cannot be written to standard output (it is written in place, not streamed); name a file"
        )


@contextlib.contextmanager
def job_inputs(args: argparse.Namespace, output: str, outputs: str) -> Iterator[tuple[Path, ...]]:
    """A job command's inputs (``fasta_inputs``), after refusing ``-`` where it cannot serve: ``-o -``
    and ``--output-dir -`` (``output``, ``outputs``: what they name, for the message), and standard
    input with ``--output-dir`` or ``--shard`` (each would read it again)."""
    refuse_stdout("-o", args.output, output)
    refuse_stdout("--output-dir", args.output_dir, outputs)
    if STDIN in args.inputs and (args.output_dir is not None or args.shard is not None):
        raise ValueError("standard input (-) needs -o, and cannot be split with --shard: save it to a file first")
    folder = args.output.parent if args.output is not None else args.output_dir
    with fasta_inputs(args.inputs, folder) as inputs:
        yield inputs
