"""What a DNABERT folder's config.json and weights must hold, checked before anything is built from them.

The config is checked first (types, bounds, divisibility), then every key of the state dict
against the shapes that config implies, computed here: a config claiming 100,000 layers or a
width of 10^30 is refused before anything is allocated. Keys are those of
``BertModel.save_pretrained`` in DNABERT's own code; a DNABERT-2 masked-LM checkpoint prefixes
them with ``bert.`` and adds ``cls.*`` (its MLM head), and ``BertModel`` has ``pooler.*``: both
heads are left out quietly, as embeddings use neither. Every failure is one ``ValueError`` line.
"""

from __future__ import annotations

import math
import re
import warnings
from os import PathLike

import torch
from torch import Tensor

from ..common.checkpoint_checks import bounded_int, check_block_indices, check_weight, few, named_weights, show
from .architecture import Config

__all__ = ["MAX_EMBED_DIM", "MAX_LAYERS", "MAX_VOCAB", "block_shapes", "checked_state", "read_config"]

#: Bounds on what a config may claim: far above any published DNABERT (12 layers of width 768,
#: MLP 3072, vocabulary 4096), far below what a corrupt or hostile number reads as.
MAX_LAYERS = 256
MAX_EMBED_DIM = 65536
MAX_INTERMEDIATE = 4 * MAX_EMBED_DIM
MAX_VOCAB = 1 << 20
MAX_TYPE_VOCAB = 1024

_FIELDS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
_KEY_PREFIX = re.compile(r"^bert\.")
_HEADS = ("cls.", "pooler.")  # MLM and pooler heads: in the files, unused by embeddings
_BLOCK_KEY = re.compile(r"encoder\.layer\.([^.]*)\.(.+)", re.DOTALL)


def read_config(config: dict, path: str | PathLike) -> Config:
    """The checked ``Config`` of a config.json object read from ``path`` (``hub.read_config``).

    ``type_vocab_size`` and ``layer_norm_eps`` default to transformers' BertConfig defaults (2 and
    1e-12), as DNABERT's own code reads a config lacking them.
    """
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(
            f"{path}: model_type = {show(model_type)}, expected 'bert' (DNABERT-2 and DNABERT-S are MosaicBERT "
            "models of model_type 'bert')"
        )
    absent = [field for field in _FIELDS if field not in config]
    if absent:
        raise ValueError(f"{path}: lacks {absent}; a DNABERT config.json has {list(_FIELDS)}")
    layers = bounded_int(config["num_hidden_layers"], "num_hidden_layers", MAX_LAYERS, path)
    embed_dim = bounded_int(config["hidden_size"], "hidden_size", MAX_EMBED_DIM, path)
    heads = bounded_int(config["num_attention_heads"], "num_attention_heads", embed_dim, path)
    if embed_dim % heads:
        raise ValueError(
            f"{path}: num_attention_heads = {heads} does not divide hidden_size = {embed_dim}; "
            "expected a divisor (every head is hidden_size / num_attention_heads wide)"
        )
    intermediate = bounded_int(config["intermediate_size"], "intermediate_size", MAX_INTERMEDIATE, path)
    vocab_size = bounded_int(config["vocab_size"], "vocab_size", MAX_VOCAB, path)
    type_vocab_size = bounded_int(config.get("type_vocab_size", 2), "type_vocab_size", MAX_TYPE_VOCAB, path)
    eps = config.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and 0 < eps < 1):
        raise ValueError(f"{path}: layer_norm_eps = {show(eps)}, expected a number in (0, 1) such as 1e-12")
    return Config(layers, embed_dim, heads, intermediate, vocab_size, type_vocab_size, float(eps))


def block_shapes(config: Config) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """(shape of each weight outside the blocks by name, shape of each block weight by its name in a block)."""
    e, i = config.embed_dim, config.intermediate
    outside = {
        "embeddings.word_embeddings.weight": (config.vocab_size, e),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, e),
        "embeddings.LayerNorm.weight": (e,),
        "embeddings.LayerNorm.bias": (e,),
    }
    block = {
        "attention.self.Wqkv.weight": (3 * e, e),
        "attention.self.Wqkv.bias": (3 * e,),
        "attention.output.dense.weight": (e, e),
        "attention.output.dense.bias": (e,),
        "attention.output.LayerNorm.weight": (e,),
        "attention.output.LayerNorm.bias": (e,),
        "mlp.gated_layers.weight": (2 * i, e),
        "mlp.wo.weight": (e, i),
        "mlp.wo.bias": (e,),
        "mlp.layernorm.weight": (e,),
        "mlp.layernorm.bias": (e,),
    }
    return (
        {name: torch.Size(shape) for name, shape in outside.items()},
        {name: torch.Size(shape) for name, shape in block.items()},
    )


def checked_state(raw: dict, config: Config, path: str | PathLike) -> dict[str, Tensor]:
    """The weights of ``raw`` keyed as ``BertModel.state_dict()`` keys them (``bert.`` stripped).

    Every weight ``config`` implies is present, a dense CPU tensor of a float dtype, of its
    shape; the block indices are exactly 0..layers-1. ``cls.*`` and ``pooler.*`` are left out;
    other keys of no DNABERT weight are left out with a warning naming them.
    """
    outside, block = block_shapes(config)
    named = named_weights(raw, path, lambda key: _KEY_PREFIX.sub("", key), "encoder.layer.0.attention.self.Wqkv.weight")
    found = {match[1] for name in named if (match := _BLOCK_KEY.fullmatch(name))}
    check_block_indices(found, config.layers, path, "num_hidden_layers", "config")
    implied_by = (
        f"config.json (hidden_size={config.embed_dim}, intermediate_size={config.intermediate}, "
        f"vocab_size={config.vocab_size}, type_vocab_size={config.type_vocab_size})"
    )
    state, unexpected = {}, []
    for name, (key, value) in named.items():
        in_block = _BLOCK_KEY.fullmatch(name)
        shape = block.get(in_block[2]) if in_block else outside.get(name)
        if shape is None:
            if not name.startswith(_HEADS):
                unexpected.append(show(key))
            continue
        check_weight(key, value, shape, path, implied_by)
        state[name] = value
    expected = set(outside) | {f"encoder.layer.{i}.{suffix}" for i in range(config.layers) for suffix in block}
    missing = sorted(expected - state.keys())
    if missing:
        raise ValueError(
            f"{path}: lacks {len(missing)} weight(s) of a DNABERT (MosaicBERT: fused Wqkv, gated MLP) "
            f"encoder: {few(missing)}"
        )
    if unexpected:  # stacklevel: the caller of load
        warnings.warn(f"{path}: ignoring {len(unexpected)} unexpected weight(s): {few(unexpected)}", stacklevel=4)
    return state
