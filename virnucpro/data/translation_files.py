"""``write_translation``: VirNucPro's protein (and nucleotide) FASTA files, written as its prediction writes them.

Each output file appears under its name only once complete (written to an exclusively
created sibling, then renamed), and never replaces an input. An output may also be an open
binary stream (standard output), written as the proteins come.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..atomic import atomic_output
from .dna import Frames, PathArg, TranslationCounts, Translator, path_list

Target = PathArg | BinaryIO

__all__ = ["write_translation"]


def _same(a: PathArg, b: PathArg) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _check_outputs(inputs: list[PathArg], outputs: dict[str, Target], overwrite: bool) -> None:
    """Refuse an output that is an input or the other output, a folder, in no folder, or exists unless ``overwrite``."""
    named = [(name, out) for name, out in outputs.items() if isinstance(out, (str, os.PathLike))]
    for i, (name, out) in enumerate(named):
        for other_name, other in named[:i] + [("the input", path) for path in inputs]:
            if _same(out, other):
                raise ValueError(f"{name} {os.fspath(out)!r} is the same file as {other_name} {os.fspath(other)!r}")
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{name} {os.fspath(out)!r}: folder {folder!r} does not exist; create it first")
        if os.path.isdir(out):
            raise IsADirectoryError(f"{name} {os.fspath(out)!r} is a folder; give a file name")
        if os.path.lexists(out) and not overwrite:
            raise FileExistsError(
                f"{name} {os.fspath(out)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )


@contextlib.contextmanager
def _output(target: Target) -> Iterator[BinaryIO]:
    """``target`` written: a path atomically (``_atomic_output``), a stream as it is, flushed at the end."""
    if isinstance(target, (str, os.PathLike)):
        with _atomic_output(target) as out:
            yield out
        return
    yield target
    target.flush()


@contextlib.contextmanager
def _atomic_output(path: PathArg) -> Iterator[BinaryIO]:
    """A binary file that takes ``path``'s name only once complete (gzip when it ends in ``.gz``)."""
    with atomic_output(path, buffering=1 << 20) as raw:
        if os.fspath(path).endswith(".gz"):
            # mtime=0 and no name inside: the same proteins always give the same .gz bytes
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed,
                io.BufferedWriter(packed, 1 << 20) as out,
            ):
                yield out
        else:
            yield raw


def write_translation(
    paths: PathArg | Iterable[PathArg],
    protein_out: Target,
    *,
    chunk_size: int = 500,
    nucleotide_out: Target | None = None,
    frames: Frames = "stop-free",
    overwrite: bool = False,
) -> TranslationCounts:
    """Write the proteins (and their nucleotides) as VirNucPro's ``make_predictdata`` does.

    Each output is ``>{id}\\n{sequence}\\n`` per protein, unwrapped, in input order, gzip
    when its name ends in ``.gz``; it appears under its name only once complete. An output
    may also be an open binary stream (e.g. ``sys.stdout.buffer``), written as it goes. Raises
    ``ValueError`` for an output that is an input or the other output, ``FileExistsError``
    for an existing one unless ``overwrite``, and ``ValueError`` for bad input records.
    """
    translator = Translator(chunk_size, frames)
    inputs = path_list(paths)
    outputs = {"protein_out (CLI: -o)": protein_out}
    if nucleotide_out is not None:
        outputs["nucleotide_out (CLI: --nucleotide-out)"] = nucleotide_out
    _check_outputs(inputs, outputs, overwrite)
    with contextlib.ExitStack() as stack:
        proteins = stack.enter_context(_output(protein_out))
        nucleotides = None if nucleotide_out is None else stack.enter_context(_output(nucleotide_out))
        for protein in translator.read(inputs):
            proteins.write(f">{protein.id}\n{protein.sequence}\n".encode())
            if nucleotides is not None:
                nucleotides.write(f">{protein.id}\n{protein.nucleotide}\n".encode())
    return translator.counts
