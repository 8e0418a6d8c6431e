"""How many tokens of a packed ESM-2 batch fit on a GPU: the memory model of ``PackedESM2``."""

from __future__ import annotations

import torch
from esm.model.esm2 import ESM2

from ..common.memory import token_budget

__all__ = ["CPU_MAX_TOKENS", "MAX_AUTO_TOKENS", "auto_max_tokens"]

#: The budget on the CPU, where speed is flat in the budget and memory is not measured.
CPU_MAX_TOKENS = 8192
#: Speed is flat from 16k to 262k tokens on the H200 (``benchmarks/results/h200.md``):
#: larger batches only cost memory.
MAX_AUTO_TOKENS = 131072


def auto_max_tokens(
    model: ESM2, dtype: torch.dtype, device: torch.device, num_layers_out: int, matmul: str = "native"
) -> int:
    """Tokens per batch that fit in the GPU's free memory with room to spare; ``CPU_MAX_TOKENS`` on the CPU.

    Per token, a block holds about 24 activations of width E in flight in the compute
    dtype (residual, norms, fused QKV, rotated q/k, attention output, the 4E-wide MLP),
    plus float32 copies for pooling of each of the ``num_layers_out`` stored layers. With
    ``matmul="fp8"`` (``ForwardOptions.matmul``), fc1's bf16 output and its e4m3 codes are
    alive together, and the normalised rows have e4m3 copies: about 6 bytes of width E
    more. Half of the free memory is used, after room for ``PackedESM2``'s copy of
    ``model`` in ``dtype`` (made after this is called; its FP8 weights take 1 byte, not
    ``dtype``'s size, so this is an upper bound there), capped at ``MAX_AUTO_TOKENS``.
    ``benchmarks/results/h200.md`` gives the measured peak memory and speed per budget.
    """
    itemsize = torch.finfo(dtype).bits // 8
    weights = sum(p.numel() for p in model.parameters()) * itemsize
    per_token = model.embed_dim * (24 * itemsize + 4 * (num_layers_out + 2) + (6 if matmul == "fp8" else 0))
    return token_budget(device, weights, per_token, cpu=CPU_MAX_TOKENS, floor=4096, cap=MAX_AUTO_TOKENS)
