"""What is DNABERT about DNABERT: its sizes, its DNA alphabet, its trained length and layer numbering.

DNABERT-2 and DNABERT-S (github.com/MAGICS-LAB/DNABERT_S, ``bert_layers.py``) are MosaicBERT
encoders: token and token-type embeddings and a LayerNorm (no position embeddings: ALiBi
biases every attention score by -slope_h * |i - j|), then post-LayerNorm blocks of fused-QKV
attention and a gated-GELU MLP, and no final LayerNorm. Every other module asks here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from virnucpro.data.tokenizer import NUCLEOTIDE_CODES

from ..common.layers import resolve_layer_numbers

__all__ = [
    "ALPHABET",
    "DNABERT_S",
    "MAX_LENGTH",
    "NAME",
    "SPECIAL_TOKENS_PER_SEQUENCE",
    "Config",
    "resolve_layers",
]

#: How messages name the family.
NAME = "DNABERT-S"


@dataclass(frozen=True)
class Config:
    """A DNABERT encoder's sizes, as its config.json gives them (``config_format.read_config`` checks them).

    Attributes:
        layers: blocks (``num_hidden_layers``).
        embed_dim: width E of the residual stream (``hidden_size``).
        heads: attention heads H, dividing E (``num_attention_heads``).
        intermediate: width I of the gated MLP: its first projection is E -> 2I (gate | value),
            its second I -> E (``intermediate_size``).
        vocab_size: rows of the token embedding (``vocab_size``).
        type_vocab_size: rows of the token-type embedding; only type 0 is used (``type_vocab_size``).
        layer_norm_eps: every LayerNorm's epsilon (``layer_norm_eps``).
    """

    layers: int
    embed_dim: int
    heads: int
    intermediate: int
    vocab_size: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12


#: zhihan1996/DNABERT-S (and DNABERT-2-117M, the same shape): its config.json.
DNABERT_S = Config(layers=12, embed_dim=768, heads=12, intermediate=3072, vocab_size=4096)

#: The IUPAC nucleotide codes, upper case, that the data layer reads as DNA: what a normalised
#: sequence may hold. The tokenizer maps each to what the model's own tokenizer.json gives:
#: byte-pair tokens where its vocabulary has them, [UNK] for a character it never saw.
ALPHABET = NUCLEOTIDE_CODES

#: DNABERT adds [CLS] and [SEP] to every sequence.
SPECIAL_TOKENS_PER_SEQUENCE = 2

#: Bases per sequence before the pipeline truncates or windows. ALiBi sets no hard limit;
#: DNABERT-S was trained on sequences cut at 2,000 tokens (``--max_length 2000`` in its
#: train/pretrain/main.py), about 10,000 bases at its ~5 bases per token. VirNucPro's slices
#: are at most 501 bases. Any sequence of this length fits the smallest token budget
#: (``memory.MIN_TOKENS``) even at one token per base.
MAX_LENGTH = 10_000


def resolve_layers(requested: Sequence[int] | None, num_layers: int, *, argument: str = "layers") -> tuple[int, ...]:
    """Layer numbers, negative ones counted from the end (-1 = last).

    0 is the embedding (after its LayerNorm), k the output of block k; ``num_layers`` is the
    last block's output, ``model(input_ids)[0]`` of DNABERT's own code (it has no final
    LayerNorm). None means ``(num_layers,)``. Raises ``ValueError`` naming the bad values and
    the valid range; ``argument`` names the argument (and its CLI flag) in the message.
    """
    last = "last, model(input_ids)[0] of DNABERT's own code; -1 = last"
    return resolve_layer_numbers(requested, num_layers, argument=argument, last=last)
