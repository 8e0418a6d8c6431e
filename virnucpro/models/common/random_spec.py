"""What every family reads of a model spec first: its text, and whether it is ``random:<name>``
(a family's real architecture with random weights, for benchmarks and demos)."""

from __future__ import annotations

import os
import warnings

__all__ = ["RANDOM_PREFIX", "random_name", "spec_text", "warn_random"]

#: The prefix of a spec whose weights are random, in every family ("random:esm2_t6_8M", "random:dnabert-s").
RANDOM_PREFIX = "random:"


def spec_text(spec: object) -> str | None:
    """``spec`` as a str (a str, or an ``os.PathLike`` of a str); None for anything else, bytes paths included."""
    if not isinstance(spec, (str, os.PathLike)):
        return None
    text = os.fspath(spec)
    return text if isinstance(text, str) else None


def random_name(spec: object) -> str | None:
    """The ``<name>`` of a ``random:<name>`` spec (a str); None for any other spec."""
    if isinstance(spec, str) and spec.startswith(RANDOM_PREFIX):
        return spec[len(RANDOM_PREFIX) :]
    return None


def warn_random(name: str, seed: int, stacklevel: int) -> None:
    """Warn that ``random:<name>``'s weights are random (seed ``seed``), its embeddings meaningless;
    ``stacklevel`` as ``warnings.warn`` counts it from the caller of this function."""
    warnings.warn(
        f"{RANDOM_PREFIX}{name}: weights are RANDOM (seed {seed}), its embeddings are meaningless "
        "for biology; use it for benchmarks and offline demos only",
        stacklevel=stacklevel + 1,
    )
