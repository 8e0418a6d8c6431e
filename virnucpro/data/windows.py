"""Overlapping windows over a protein longer than ``max_length`` (``on_overlength="window"``).

A protein of L residues, L > W (W = ``max_length``), is embedded as windows of W residues
each, every one a normal sequence with its own BOS and EOS. They start at 0, S, 2S, ...
(S = ``window_stride``) while start + W < L, and one last window starts at L - W, so that
it ends exactly at the protein's end. A residue's representation is the mean over the
windows that cover it; ``coverage`` counts them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .records import Record
from .tokenizer import Tokenizer, is_per_character

__all__ = [
    "check_per_character",
    "check_stride",
    "coverage",
    "coverage_at",
    "default_stride",
    "residue_weights",
    "split_windows",
    "window_starts",
]


def default_stride(width: int) -> int:
    """The default ``window_stride`` for windows of ``width`` residues: half a window (at least 1)."""
    return max(1, width // 2)


def check_per_character(tokenizer: Tokenizer, on_overlength: str) -> None:
    """``ValueError`` for ``on_overlength="window"`` with a tokenizer whose tokens are not its characters.

    Windows are merged residue by residue, token row by token row: that needs one token per
    character (ESM-2). Byte-pair tokens (DNABERT-S) straddle any window edge.
    """
    if on_overlength == "window" and not is_per_character(tokenizer):
        raise ValueError(
            "on_overlength='window' (CLI: --on-overlength window) embeds long sequences in overlapping windows "
            f"merged residue by residue, which needs one token per character; {tokenizer.name}'s tokens span "
            "several characters. Pass on_overlength='truncate' (CLI: --on-overlength truncate), which counts "
            "what it cuts, or on_overlength='raise' (CLI: --on-overlength raise)"
        )


def check_stride(stride: int, width: int) -> int:
    """``stride`` if it is an int in 1..``width``; else ``ValueError`` naming the option and the CLI flag.

    A stride over the width would leave residues that no window covers.
    """
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= width:
        raise ValueError(
            f"window_stride (CLI: --window-stride) must be an int in 1..{width}, the window width (windows must "
            f"overlap or touch), got {stride!r}"
        )
    return int(stride)


def window_starts(length: int, width: int, stride: int) -> list[int]:
    """First residue (0-based) of every window over a protein of ``length`` residues.

    ``[0]`` when ``length <= width`` (the protein is one ordinary sequence). Otherwise
    0, S, 2S, ... while start + W < L, then L - W; all distinct and increasing, since every
    regular start is below L - W.
    """
    check_stride(stride, width)
    if length <= width:
        return [0]
    return [*range(0, length - width, stride), length - width]


def coverage_at(positions: np.ndarray, length: np.ndarray, width: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """How many windows cover each residue position, in closed form (vectorised; no loop per window).

    Args:
        positions: (M,) int64 residue positions p, 0 <= p < length.
        length, width, stride: (M,) int64 (or scalars) L, W and S of the protein each position is in;
            L > W >= S >= 1 (a protein with L <= W has coverage 1 everywhere and is not passed here).

    Returns:
        (M,) int64 counts, >= 1.
    """
    p = np.asarray(positions, dtype=np.int64)
    length, width, stride = (np.asarray(a, dtype=np.int64) for a in (length, width, stride))
    regular = (length - width + stride - 1) // stride  # starts k*S with k*S < L - W: k in 0..regular-1
    # Regular windows k cover p iff p - W < k*S <= p, i.e. ceil((p - W + 1) / S) <= k <= p // S.
    first = np.maximum(0, (p - width + stride) // stride)
    last = np.minimum(regular - 1, p // stride)
    return np.maximum(0, last - first + 1) + (p >= length - width)


def coverage(length: int, width: int, stride: int) -> np.ndarray:
    """(L,) int64: how many windows of ``window_starts(length, width, stride)`` cover each residue."""
    check_stride(stride, width)
    if length <= width:
        return np.ones(length, dtype=np.int64)
    return coverage_at(np.arange(length), length, width, stride)


def split_windows(record: Record, width: int, stride: int) -> list[Record]:
    """``record`` (its whole normalised sequence, longer than ``width``) as its windows, in order.

    Each window keeps the parent's ``id``, ``file``, ``index``, ``number``, ``length`` (L) and
    ``columns``, and holds its W residues; ``replaced`` stays on the first window only, so
    that summing it over records counts each protein once.
    """
    starts = window_starts(len(record.sequence), width, stride)
    return [
        replace(
            record,
            sequence=record.sequence[start : start + width],
            replaced=record.replaced if k == 0 else 0,
            window_start=start,
            window_count=len(starts),
            window_stride=stride,
        )
        for k, start in enumerate(starts)
    ]


def residue_weights(records: list[Record], residues: np.ndarray) -> np.ndarray:
    """The merge weight of every residue of ``records``, back to back: (sum(residues),) float32.

    1 / coverage at the parent position for a window's residues, 1.0 for a plain record's.
    ``residues``: (N,) int64, residues of each record's tokens; a window's must be its W.
    """
    total = int(residues.sum())
    weights = np.ones(total, dtype=np.float32)
    strides = np.fromiter((r.window_stride for r in records), np.int64, count=len(records))
    if not strides.any():
        return weights
    owner = np.repeat(np.arange(len(records)), residues)  # the record each residue belongs to
    offsets = np.arange(total) - np.repeat(np.cumsum(residues) - residues, residues)
    windowed = strides[owner] > 0
    owner = owner[windowed]
    starts = np.fromiter((r.window_start for r in records), np.int64, count=len(records))
    lengths = np.fromiter((r.length for r in records), np.int64, count=len(records))
    counts = coverage_at(starts[owner] + offsets[windowed], lengths[owner], residues[owner], strides[owner])
    weights[windowed] = 1.0 / counts.astype(np.float32)
    return weights
