"""``DNABERTWeights``: a DNABERT encoder's weights under its checkpoint's names, and random ones.

The loader checks a file's weights (``checkpoint_format``) and hands them here as they are:
with ``dtype=None`` on the CPU they stay the file's memory-mapped tensors, so nothing is read
until ``PackedDNABERT`` copies them to the device in its compute dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .architecture import Config
from .checkpoint_format import block_shapes

__all__ = ["DNABERTWeights", "random_state"]

#: DNABERT's own initialiser (transformers' BertPreTrainedModel): N(0, 0.02) for linear and
#: embedding weights, zero biases, LayerNorms the identity.
INIT_STD = 0.02


class DNABERTWeights(nn.Module):
    """A DNABERT encoder's weights, nothing else: ``PackedDNABERT`` runs them.

    Its parameters are named as ``BertModel.state_dict()`` of DNABERT's own code names them
    (``embeddings.word_embeddings.weight``, ``encoder.layer.0.attention.self.Wqkv.weight``, ...)
    and are the given tensors themselves (no copy; ``requires_grad=False``).

    Attributes:
        config: the checked sizes.
        num_layers, embed_dim, attention_heads: from ``config``, as every family's model exposes them.
    """

    def __init__(self, config: Config, state: dict[str, Tensor]) -> None:
        super().__init__()
        self.config = config
        self.num_layers = config.layers
        self.embed_dim = config.embed_dim
        self.attention_heads = config.heads
        for name, tensor in state.items():
            *path, leaf = name.split(".")
            module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, nn.Module())
                module = getattr(module, part)
            module.register_parameter(leaf, nn.Parameter(tensor, requires_grad=False))

    def forward(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(
            "DNABERTWeights holds weights only; run them with PackedDNABERT(model, dtype=..., device=...)"
        )

    def weight(self, name: str) -> Tensor:
        """The tensor named ``name`` (a checkpoint key, ``bert.`` prefix stripped)."""
        return self.get_parameter(name)


def random_state(config: Config, seed: int, device: torch.device) -> dict[str, Tensor]:
    """Float32 weights of ``config``'s shapes on ``device``, initialised as DNABERT's code does, from ``seed``.

    Built in a fixed order from one generator: the same seed gives the same weights.
    """
    outside, block = block_shapes(config)
    shapes = dict(outside)
    shapes |= {f"encoder.layer.{i}.{name}": shape for i in range(config.layers) for name, shape in block.items()}
    generator = torch.Generator(device).manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("LayerNorm.weight") or name.endswith("layernorm.weight"):
            state[name] = torch.ones(shape, device=device)
        elif len(shape) == 1:  # biases
            state[name] = torch.zeros(shape, device=device)
        else:
            state[name] = torch.empty(shape, device=device).normal_(0.0, INIT_STD, generator=generator)
    return state
