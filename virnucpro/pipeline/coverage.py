"""The exact-once check: every input position 0..N-1 stored by exactly one part, exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Coverage", "NotExactlyOnceError", "cover"]


class NotExactlyOnceError(RuntimeError):
    """The stored results do not hold every input record exactly once."""


@dataclass(frozen=True)
class Coverage:
    """Where each input position is stored: record ``row[i]`` of part ``part[i]``."""

    part: np.ndarray  # (N,) int32
    row: np.ndarray  # (N,) int64


def cover(part_indices: Sequence[np.ndarray], expected: int, what: str, shards: int = 1) -> Coverage:
    """Map input positions to stored records, or raise ``NotExactlyOnceError`` saying what is wrong.

    Args:
        part_indices: per part, the (n_p,) int64 input positions of its records, in stored order.
        expected: N, the number of records in the input.
        what: names the output in the message.
        shards: the records were split over this many ``--shard`` runs (position p in shard
            p % shards): the message names the shards that miss records.
    """
    indices = np.concatenate(part_indices) if part_indices else np.empty(0, np.int64)
    outside = int(((indices < 0) | (indices >= expected)).sum())
    inside = indices[(indices >= 0) & (indices < expected)]
    seen = np.bincount(inside, minlength=expected)
    if outside or indices.size != expected or (seen != 1).any():
        missing = np.flatnonzero(seen == 0)
        repeated = np.flatnonzero(seen > 1)
        incomplete = ""
        if shards > 1 and missing.size:
            per_shard = np.bincount(missing % shards, minlength=shards)
            incomplete = (
                " Shards with records missing: "
                + ", ".join(f"{s}/{shards} ({n})" for s, n in enumerate(per_shard.tolist()) if n)
                + "; rerun them with resume=True (CLI: --resume)."
            )
        raise NotExactlyOnceError(
            f"{what}: the results do not cover the input exactly once: {expected} records in the input, "
            f"{indices.size} stored; {missing.size} missing (first {missing[:5].tolist()}), {repeated.size} "
            f"repeated (first {repeated[:5].tolist()}), {outside} past the end.{incomplete} "
            "The parts are kept for inspection"
        )
    part = np.empty(expected, dtype=np.int32)
    row = np.empty(expected, dtype=np.int64)
    for p, idx in enumerate(part_indices):
        part[idx] = p
        row[idx] = np.arange(idx.size)
    return Coverage(part, row)
