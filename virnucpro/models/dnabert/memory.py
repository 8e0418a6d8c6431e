"""How many tokens of a packed DNABERT batch fit on a GPU: the memory model of ``PackedDNABERT``."""

from __future__ import annotations

import torch

from ..common.memory import token_budget
from .weights import DNABERTWeights

__all__ = ["CPU_MAX_TOKENS", "MAX_AUTO_TOKENS", "MIN_TOKENS", "auto_max_tokens"]

#: The smallest budget: a sequence of ``architecture.MAX_LENGTH`` bases fits even at one token per base
#: (an all-[UNK] sequence), so no default budget refuses a sequence the default length admits.
MIN_TOKENS = 16384
#: The budget on the CPU, where speed is flat in the budget and memory is not measured.
CPU_MAX_TOKENS = MIN_TOKENS
#: ESM-2's cap (flat speed from 16k tokens up on the H200); DNABERT-S's blocks are smaller still.
MAX_AUTO_TOKENS = 131072


def auto_max_tokens(
    model: DNABERTWeights, dtype: torch.dtype, device: torch.device, num_layers_out: int, matmul: str = "native"
) -> int:
    """Tokens per batch that fit in the GPU's free memory with room to spare; ``CPU_MAX_TOKENS`` on the CPU.

    Per token, a block holds in the compute dtype about 12 activations of width E (input,
    fused QKV, attention output, its projection, sum and LayerNorm, the MLP's projection, sum
    and LayerNorm) and 3 of width I (the 2I-wide gate | value projection and the gated
    product); plus float32 copies for pooling of each of the ``num_layers_out`` stored layers.
    ``common.memory.token_budget`` plans for half the free memory after ``PackedDNABERT``'s copy
    of the weights in ``dtype``. ``matmul`` is accepted for the family interface: DNABERT runs native only.
    """
    itemsize = torch.finfo(dtype).bits // 8
    config = model.config
    weights = sum(p.numel() for p in model.parameters()) * itemsize
    activations = itemsize * (12 * config.embed_dim + 3 * config.intermediate)
    per_token = activations + 4 * config.embed_dim * (num_layers_out + 2)
    return token_budget(device, weights, per_token, cpu=CPU_MAX_TOKENS, floor=MIN_TOKENS, cap=MAX_AUTO_TOKENS)
