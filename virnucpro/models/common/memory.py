"""How many tokens of a packed batch fit on a GPU, given a family's per-token activation bytes.

Each family states what its packed forward keeps alive per token (``per_token_bytes``) and
what its weights occupy on the device; the rule that turns them into a budget is one, here.
"""

from __future__ import annotations

import torch

__all__ = ["FREE_SHARE", "token_budget"]

#: The share of the free GPU memory a batch's activations may plan for: the rest covers the
#: caching allocator's fragmentation and the peaks the per-token estimates leave out.
FREE_SHARE = 0.5


def token_budget(
    device: torch.device, resident_bytes: int, per_token_bytes: float, *, cpu: int, floor: int, cap: int
) -> int:
    """Tokens per batch: ``FREE_SHARE`` of the GPU's free memory, after ``resident_bytes`` still to
    be allocated (the packed model's weights), over ``per_token_bytes``; a multiple of 1024 in
    ``floor..cap``. ``cpu`` on any other device, where speed is flat in the budget and memory is
    not measured.
    """
    if device.type != "cuda":
        return cpu
    free, _ = torch.cuda.mem_get_info(device)
    tokens = int(FREE_SHARE * max(free - resident_bytes, 0) / per_token_bytes)
    return max(floor, min(cap, tokens // 1024 * 1024))
