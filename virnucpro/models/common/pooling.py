"""Per-sequence views of packed representations, as fair-esm's ``extract.py`` defines them.

For a padded batch, esm-extract takes ``bos = t[i, 0]``, ``per_tok = t[i, 1 : len + 1]``
and ``mean = t[i, 1 : len + 1].mean(0)``: BOS and EOS are never part of a residue view.
A family whose published mean covers every token (DNABERT-S: [CLS] and [SEP] included)
gets ``get_pooling("mean", include_special_tokens=True)``.
These functions give the same views of packed rows with index tensors built on the
device, so they neither loop over sequences nor synchronise with the host.

Shared arguments:
    reps: (T, E) float, packed rows of one representation layer.
    cu_seqlens: (N + 1,) int32 or int64 on ``reps.device``, cu_seqlens[0] == 0,
        cu_seqlens[-1] == T; sequence i occupies rows cu_seqlens[i] : cu_seqlens[i + 1].
    bos, eos: whether every sequence starts with BOS / ends with EOS (ESM-2 adds both).
        Each sequence must hold at least ``bos + eos`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from .segments import segment_ids

__all__ = ["POOLINGS", "Pooling", "WindowTensors", "bos_pool", "get_pooling", "mean_pool", "residue_rows"]


def mean_pool(reps: Tensor, cu_seqlens: Tensor, *, bos: bool = True, eos: bool = True) -> Tensor:
    """Mean over each sequence's residue rows, accumulated in float32.

    A segmented reduction rather than ``index_add_``: CUDA's ``index_add_`` adds with
    atomics in no fixed order, so the same batch would pool to different last bits
    from run to run; this keeps runs, and resumed runs, bitwise reproducible.

    Returns:
        (N, E) float32. A sequence without residues gives NaN, as ``mean`` of an empty slice does.
    """
    rows, residue_cu_seqlens = residue_rows(reps, cu_seqlens, bos=bos, eos=eos)
    sums = torch.segment_reduce(rows.float(), "sum", offsets=residue_cu_seqlens, axis=0, unsafe=True)
    return sums / residue_cu_seqlens.diff().unsqueeze(1)


def bos_pool(reps: Tensor, cu_seqlens: Tensor) -> Tensor:
    """The first (BOS) row of every sequence.

    Returns:
        (N, E), ``reps.dtype``.
    """
    _check(reps, cu_seqlens)
    return reps[cu_seqlens[:-1].long()]


def residue_rows(reps: Tensor, cu_seqlens: Tensor, *, bos: bool = True, eos: bool = True) -> tuple[Tensor, Tensor]:
    """Every sequence's residue rows, packed, without BOS and EOS.

    Returns:
        rows: (T - N * (bos + eos), E), ``reps.dtype``.
        residue_cu_seqlens: (N + 1,) int64; the residues of sequence i are
            ``rows[residue_cu_seqlens[i] : residue_cu_seqlens[i + 1]]``.
    """
    _check(reps, cu_seqlens)
    n = cu_seqlens.numel() - 1
    starts, ends = _residue_bounds(cu_seqlens, bos, eos)
    residue_cu_seqlens = F.pad((ends - starts).cumsum(0), (1, 0))
    total = reps.shape[0] - n * (int(bos) + int(eos))
    seq = segment_ids(residue_cu_seqlens, total)
    # Residue r of sequence i sits at packed row starts[i] + (r - residue_cu_seqlens[i]).
    source = torch.arange(total, device=reps.device) + (starts - residue_cu_seqlens[:-1])[seq]
    return reps[source], residue_cu_seqlens


def _residue_bounds(cu_seqlens: Tensor, bos: bool, eos: bool) -> tuple[Tensor, Tensor]:
    """(N,) int64 first and one-past-last residue row of every sequence."""
    cu = cu_seqlens.long()
    return cu[:-1] + int(bos), cu[1:] - int(eos)


def _check(reps: Tensor, cu_seqlens: Tensor) -> None:
    if reps.ndim != 2:
        raise ValueError(f"reps must be (T, E) packed rows, got shape {tuple(reps.shape)}")
    if cu_seqlens.ndim != 1 or cu_seqlens.numel() < 2 or cu_seqlens.is_floating_point():
        raise ValueError(
            "cu_seqlens must be a 1-D integer tensor of N + 1 >= 2 offsets, "
            f"got shape {tuple(cu_seqlens.shape)} {cu_seqlens.dtype}"
        )
    if cu_seqlens.device != reps.device:
        raise ValueError(
            f"cu_seqlens is on {cu_seqlens.device} but reps on {reps.device}; move cu_seqlens with .to(reps.device)"
        )


class WindowTensors(NamedTuple):
    """What a window pooling reads of a packed batch, on ``reps.device`` (see ``PackedBatch``).

    weights: (T,) float32, each token's merge weight: 1 / coverage on a window's residues,
        1 on a plain record's, 0 on BOS and EOS.
    counts: (N,) int64, the windows of each record's protein (1 for a plain record).
    lengths: (N,) int64, the residues L of each record's protein.
    """

    weights: Tensor
    counts: Tensor
    lengths: Tensor


def mean_window_pool(reps: Tensor, cu_seqlens: Tensor, windows: WindowTensors) -> Tensor:
    """(N, E) float32 per window: sum_r w_r * rep(r) / L, whose sum over a protein's windows is
    the mean over its residues of their merged (per-residue mean over windows) rows."""
    rows, residue_cu_seqlens = residue_rows(reps, cu_seqlens)
    weights = residue_rows(windows.weights.unsqueeze(1), cu_seqlens)[0]
    sums = torch.segment_reduce(rows.float() * weights, "sum", offsets=residue_cu_seqlens, axis=0, unsafe=True)
    return sums / windows.lengths.unsqueeze(1)


def bos_window_pool(reps: Tensor, cu_seqlens: Tensor, windows: WindowTensors) -> Tensor:
    """(N, E) float32 per window: its BOS row / window count; summed, the mean of the windows' BOS rows."""
    return bos_pool(reps, cu_seqlens).float() / windows.counts.unsqueeze(1)


def residue_window_rows(reps: Tensor, cu_seqlens: Tensor, windows: WindowTensors) -> Tensor:
    """(R, E) float32: every residue row times its weight; added at their positions, the merged rows."""
    rows = residue_rows(reps, cu_seqlens)[0]
    return rows.float() * residue_rows(windows.weights.unsqueeze(1), cu_seqlens)[0]


class Pooling(NamedTuple):
    """One pooling mode: ``pool(reps (T, E), cu_seqlens (N + 1,))`` gives N rows, or with
    ``per_token`` the residue rows of all N sequences back to back (BOS and EOS excluded).

    ``window_pool(reps, cu_seqlens, WindowTensors)`` gives the same shape of rows, each
    record's taken as a window (``on_overlength="window"``): partials that, summed over a
    protein's windows (per-token: added at each window's residue positions), give the
    protein's pooled rows. None: the mode cannot merge windows. ``windows.window_partials``
    uses it only for window records; plain ones always get ``pool``'s rows.
    """

    name: str
    pool: Callable[[Tensor, Tensor], Tensor]
    per_token: bool
    help: str
    window_pool: Callable[[Tensor, Tensor, WindowTensors], Tensor] | None = None


#: Every pooling mode, by the name the CLI, the config and the output's attributes use.
POOLINGS: dict[str, Pooling] = {
    p.name: p
    for p in (
        Pooling(
            "mean",
            mean_pool,
            False,
            "the model family's published mean: over residues, BOS and EOS excluded (as esm-extract), "
            "or over every token where the family's recipe includes its special tokens",
            mean_window_pool,
        ),
        Pooling("bos", bos_pool, False, "the BOS (<cls>) row (windows: the mean of theirs)", bos_window_pool),
        Pooling(
            "per-token",
            lambda reps, cu_seqlens: residue_rows(reps, cu_seqlens)[0],
            True,
            "every residue row",
            residue_window_rows,
        ),
    )
}


def get_pooling(name: str, *, include_special_tokens: bool = False) -> Pooling:
    """The pooling mode ``name``; ``ValueError`` naming the known ones otherwise.

    ``include_special_tokens``: the family's mean covers every token, its special tokens
    included (``ModelFamily.mean_includes_special_tokens``); ``mean`` then averages all rows
    of each sequence, and cannot merge windows. Other modes are the same for every family.
    """
    if name not in POOLINGS:
        raise ValueError(f"pooling (CLI: --pooling) must be one of {tuple(POOLINGS)}, got {name!r}")
    if name == "mean" and include_special_tokens:
        every_token = functools.partial(mean_pool, bos=False, eos=False)
        return Pooling("mean", every_token, False, "mean over every token, special tokens included")
    return POOLINGS[name]
