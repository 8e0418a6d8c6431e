"""``random:<name>`` model specs: a family's real architecture with random weights, for benchmarks and demos."""

from __future__ import annotations

import warnings

__all__ = ["RANDOM_PREFIX", "warn_random"]

#: The prefix of a spec whose weights are random, in every family ("random:esm2_t6_8M", "random:dnabert-s").
RANDOM_PREFIX = "random:"


def warn_random(name: str, seed: int, stacklevel: int) -> None:
    """Warn that ``random:<name>``'s weights are random (seed ``seed``), its embeddings meaningless;
    ``stacklevel`` as ``warnings.warn`` counts it from the caller of this function."""
    warnings.warn(
        f"{RANDOM_PREFIX}{name}: weights are RANDOM (seed {seed}), its embeddings are meaningless "
        "for biology; use it for benchmarks and offline demos only",
        stacklevel=stacklevel + 1,
    )
