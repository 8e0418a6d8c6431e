"""Files that appear whole or not at all: the one place an output file is written and renamed into place."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["atomic_output"]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, buffering: int = -1) -> Iterator[BinaryIO]:
    """A new binary file that takes ``path``'s name only once written whole: a reader sees the old
    file or the new one, never half of one.

    The file is a fresh sibling, ``.<name>.<random hex>.part``, created exclusively (never written
    through an existing file or link) with the mode ``open`` gives (a ``mkstemp`` file would stay
    0600); when the block ends it is flushed, fsynced and renamed onto ``path``. On any error it is
    removed and ``path`` is left as it was. ``buffering`` as ``open`` takes it.
    """
    folder, name = os.path.split(os.path.abspath(path))
    part = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.part")
    try:
        with open(part, "xb", buffering=buffering) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
