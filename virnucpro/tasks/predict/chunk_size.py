"""A classifier is trained for one chunk size: VirNucPro ships ``300_model.pth`` and ``500_model.pth``."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

__all__ = ["check_chunk_size", "classifier_chunk_size"]

_NAMED = re.compile(r"(300|500)_")


def classifier_chunk_size(classifier: str | os.PathLike) -> int | None:
    """300 or 500 when the file's name starts with ``300_`` or ``500_`` (VirNucPro's names), else None."""
    match = _NAMED.match(Path(classifier).name)
    return int(match[1]) if match else None


def check_chunk_size(classifier: str | os.PathLike, chunk_size: int) -> None:
    """Refuse, before anything runs, a classifier named for one chunk size used with another.

    A classifier scores chunks of the size it was trained on; ``300_model.pth`` on 500 bp
    chunks gives numbers VirNucPro never would. A file named otherwise cannot be checked (the
    two classifiers have the same shape), so it is warned about: a renamed copy of VirNucPro's
    file is the careless user's way to that mistake.
    """
    trained = classifier_chunk_size(classifier)
    if trained is None:
        warnings.warn(
            f"{classifier}: its name does not say which chunk size it was trained on (VirNucPro's files are "
            f"300_model.pth and 500_model.pth); it scores {chunk_size} bp chunks as chunk_size (CLI: --chunk-size) "
            "says, and a classifier trained on another size gives wrong calls",
            stacklevel=2,
        )
    elif trained != chunk_size:
        other = f", or VirNucPro's {chunk_size}_model.pth" if chunk_size in (300, 500) else ""
        raise ValueError(
            f"{classifier}: this is VirNucPro's classifier for {trained} bp chunks, but chunk_size (CLI: --chunk-size) "
            f"is {chunk_size}; use {trained} bp chunks{other}"
        )
