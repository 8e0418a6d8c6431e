"""Standard input as a FASTA file: ``-`` among the inputs, copied to a file that every reader can open.

Every DataLoader worker (and the validation pass) reads the whole input, so a pipe is
first copied to a file, which is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = ["STDIN", "spooled_stdin"]

#: The input (or output) name that means standard input (or output).
STDIN = Path("-")


@contextlib.contextmanager
def spooled_stdin(inputs: Sequence[Path], folder: Path, stream: BinaryIO | None = None) -> Iterator[tuple[Path, ...]]:
    """``inputs`` with ``-`` replaced by a copy of standard input (or ``stream``) in ``folder``, removed afterwards.

    The copy is created exclusively and stays private (mode 0600); put it in the output's
    folder so that it lands on the same disk.
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
