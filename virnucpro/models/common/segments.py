"""Row-to-sequence maps for packed batches, computed on the device without host syncs.

A packed batch stores N sequences back to back in T rows: sequence i occupies rows
``cu_seqlens[i] : cu_seqlens[i + 1]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def segment_ids(cu_seqlens: Tensor, total: int) -> Tensor:
    """The index of the sequence that each packed row belongs to.

    Args:
        cu_seqlens: (N + 1,) int32 or int64, cu_seqlens[0] == 0, non-decreasing,
            cu_seqlens[-1] == total.
        total: T, the number of packed rows, as a host int: knowing the output size
            lets ``repeat_interleave`` skip its device-to-host sync.

    Returns:
        (T,) int64 on ``cu_seqlens.device``; row t belongs to sequence ``result[t]``.
    """
    n = cu_seqlens.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=cu_seqlens.device), cu_seqlens.diff(), output_size=total)
