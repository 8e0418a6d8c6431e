"""ALiBi: a per-head linear attention bias in place of position embeddings (Press et al., 2022).

Bidirectional, as in MosaicBERT and so in DNABERT-2 and DNABERT-S: head h adds
``-slopes[h] * |i - j|`` to the score of query position i against key position j, positions
counted from 0 within each sequence. The attention backends take the slopes as
``alibi_slopes`` (``attention.AttentionFn``); ``alibi_bias`` is the dense bias that the
reference backend adds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["alibi_bias", "alibi_slopes", "check_alibi_slopes"]


def alibi_slopes(num_heads: int) -> Tensor:
    """The ALiBi slope of every head, as DNABERT-S's ``_get_alibi_head_slopes`` computes them.

    For a power of two n: ``s, s², ..., sⁿ`` with ``s = 2^(-8 / n)``. Otherwise, with p the
    largest power of two below n: the p slopes for p heads, then every other slope for 2p
    heads (the 1st, 3rd, ...) until there are n. 12 heads: 2^-1 ... 2^-8, then 2^-0.5,
    2^-1.5, 2^-2.5, 2^-3.5. Computed in Python floats, as the reference does, then rounded
    once to float32.

    Args:
        num_heads: the number of attention heads, >= 1.

    Returns:
        (num_heads,) float32 on the CPU; move it to the attention's device once, at load.

    Raises:
        ValueError: num_heads is not a positive int.
    """
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, not {num_heads!r}")
    return torch.tensor(_slopes(num_heads), dtype=torch.float32)


def _slopes(n: int) -> list[float]:
    if math.log2(n).is_integer():
        # The same float operations, in the same order, as the reference: start * start**i, not start**(i + 1).
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]
    below = 2 ** math.floor(math.log2(n))
    return _slopes(below) + _slopes(2 * below)[0::2][: n - below]


def alibi_bias(slopes: Tensor, length: int) -> Tensor:
    """The dense ALiBi bias of one sequence: ``bias[h, i, j] = -slopes[h] * |i - j|``.

    One float32 rounding of each product, as DNABERT-S's ``rebuild_alibi_tensor`` (bit for bit).

    Args:
        slopes: (H,) float32.
        length: the sequence's length L.

    Returns:
        (H, L, L) float32 on slopes' device.
    """
    positions = torch.arange(length, device=slopes.device, dtype=torch.float32)
    distance = (positions[None, :] - positions[:, None]).abs()  # (L, L), exact integers below 2^24
    return slopes[:, None, None] * -distance


def check_alibi_slopes(slopes: Tensor, q: Tensor) -> None:
    """Check that ``slopes`` are contiguous (H,) float32 on q's device, q being (T, H, D).

    Raises:
        ValueError: naming ``alibi_slopes`` and what is wrong with it.
    """
    heads = q.shape[1]
    if (
        slopes.shape != (heads,)
        or slopes.dtype != torch.float32
        or slopes.device != q.device
        or not slopes.is_contiguous()
    ):
        raise ValueError(
            f"alibi_slopes must be contiguous ({heads},) float32 on {q.device} (one slope per head of q), "
            f"not {tuple(slopes.shape)} {slopes.dtype} on {slopes.device}; build it with alibi_slopes({heads}).to(device)"
        )
