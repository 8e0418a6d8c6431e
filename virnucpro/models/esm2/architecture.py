"""What is ESM-2 about ESM-2: its sizes, alphabet, trained length and layer numbering.

Every other module asks here; none rebuilds the alphabet or repeats a constant.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import esm

from ..common.layers import resolve_layer_numbers

__all__ = [
    "ALPHABET_NAME",
    "ARCHITECTURES",
    "MASK_RATIO_TRAIN",
    "MAX_LENGTH",
    "alphabet",
    "resolve_layers",
]

# fair-esm name => (layers, embed_dim, attention_heads)
ARCHITECTURES: dict[str, tuple[int, int, int]] = {
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t30_150M_UR50D": (30, 640, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
    "esm2_t36_3B_UR50D": (36, 2560, 40),
    "esm2_t48_15B_UR50D": (48, 5120, 40),
}

#: fair-esm's name for the alphabet every ESM-2 model uses.
ALPHABET_NAME = "ESM-1b"

#: Residues per sequence ESM-2 was trained on (1024-token crops, BOS and EOS included);
#: esm-extract truncates to it.
MAX_LENGTH = 1022

# ESM-2 was trained masking 15 % of tokens, 80 % of those with <mask>; its embeddings
# are rescaled for that rate at inference too (x0.88 when no <mask> is present).
MASK_RATIO_TRAIN = 0.15 * 0.8


@functools.cache
def alphabet() -> esm.data.Alphabet:
    """fair-esm's ESM-2 alphabet (built once; treat it as read-only)."""
    return esm.data.Alphabet.from_architecture(ALPHABET_NAME)


def resolve_layers(requested: Sequence[int] | None, num_layers: int, *, argument: str = "layers") -> tuple[int, ...]:
    """fair-esm layer numbers, negative ones counted from the end as esm-extract does (-1 = last).

    0 is the embedding, k the output of block k, ``num_layers`` the last block after the
    final LayerNorm. None means ``(num_layers,)``. Raises ``ValueError`` naming the bad
    values and the valid range; ``argument`` names the argument (and its CLI flag) in the message.
    """
    last = "last, after the final LayerNorm; -1 = last, as in esm-extract"
    return resolve_layer_numbers(requested, num_layers, argument=argument, last=last)
