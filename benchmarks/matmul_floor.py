"""The dense-matmul floor of a packed forward: its linear layers' matmuls alone, at its batches' token counts.

No bias, no attention, no elementwise work: what the model's matmuls cost on random inputs
of the same packed token counts. Each layer has its own weights, as in the model, so that the
weights stream from memory rather than sit in the L2 cache. ``throughput.py`` (ESM-2) and
``dnabert_speed.py`` (DNABERT-S) time ``floor_pass`` the same way as their forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["floor_pass"]


def floor_pass(
    shapes: Sequence[tuple[int, int]],
    num_layers: int,
    token_counts: Sequence[int],
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
) -> tuple[Callable[[], None], int]:
    """(a pass over every batch of every layer's matmuls, its floating-point operations).

    Args:
        shapes: (out, in) of each linear layer of one block, in order (ESM-2: fused QKV E -> 3E,
            attention output E -> E, fc1 E -> 4E, fc2 4E -> E).
        num_layers: blocks; each gets its own random weights.
        token_counts: packed tokens of each batch, as the forward would see them.
    """
    generator = torch.Generator(device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=device, dtype=dtype)

    weights = [[randn(out, width) for out, width in shapes] for _ in range(num_layers)]
    inputs = {width: randn(max(token_counts), width) for width in sorted({width for _, width in shapes})}

    def one_pass() -> None:
        for tokens in token_counts:
            for layer in weights:
                for weight in layer:
                    F.linear(inputs[weight.shape[1]][:tokens], weight)

    flops = 2 * num_layers * sum(out * width for out, width in shapes) * sum(token_counts)
    return one_pass, flops
