"""ESM-2 in transformers' layout: config.json checked, weight names mapped to fair-esm's.

transformers' ``EsmModel`` (keys as they are) and ``EsmForMaskedLM`` (the encoder under "esm.",
its ``lm_head`` beside) hold the same weights as fair-esm's ``ESM2`` under other names:
``embeddings.word_embeddings`` is ``embed_tokens``, a block's ``attention.self.query`` is
``self_attn.q_proj``, and so on (``_BLOCK``). transformers 5 writes a block's LayerNorms as
``gamma``/``beta`` and reads either spelling; so does this. Rotary tables are never read
(``inv_freq`` is computed, as fair-esm and transformers compute it), nor the pooler, the absolute
position table transformers ignores for rotary models, or the LM decoder (tied to the embedding).

Only settings that mean ESM-2 as fair-esm computes it are accepted; any other is refused,
naming the field: rotary positions, token dropout, no embedding LayerNorm, an MLP four times
the width, ESM-2's vocabulary and special tokens, an encoder. ``layer_norm_eps`` is honoured
(published ESM-2 configs say 1e-5, as fair-esm uses; transformers' default is 1e-12).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from esm.model.esm2 import ESM2
from safetensors.torch import save_file

from .architecture import alphabet
from .checkpoint_format import CONTACT_REGRESSION, Config, Layout, checked_sizes

__all__ = ["HF_LAYOUT", "LM_HEAD", "HfConfig", "read_hf_config", "save_hf_folder"]

#: The masked-LM head beyond its tied weight: transformers' ``EsmForMaskedLM`` has it, ``EsmModel`` not.
LM_HEAD = frozenset(
    {f"lm_head.{module}.{kind}" for module in ("dense", "layer_norm") for kind in ("weight", "bias")} | {"lm_head.bias"}
)
# A block's module in transformers' EsmLayer => the same module in fair-esm's TransformerLayer.
_BLOCK = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "LayerNorm": "final_layer_norm",
}
# Modules outside the blocks (EsmModel's names) => fair-esm's ESM2 names.
_OUTSIDE = {
    "embeddings.word_embeddings": "embed_tokens",
    "encoder.emb_layer_norm_after": "emb_layer_norm_after",
    "contact_head.regression": "contact_head.regression",
}
_LM_HEAD = {"lm_head.dense": "lm_head.dense", "lm_head.layer_norm": "lm_head.layer_norm"}
_HF_KEY = re.compile(
    r"(?P<esm>esm\.)?(?:encoder\.layer\.(?P<index>[^.]*)\.)?(?P<module>.+)\.(?P<kind>[^.]+)", re.DOTALL
)
# transformers' own spelling of a block LayerNorm's parameters, read as weight and bias.
_LEGACY = {"gamma": "weight", "beta": "bias"}
_IGNORED = re.compile(
    r"(esm\.)?(embeddings\.position_ids|embeddings\.position_embeddings\.weight|pooler\.dense\.(weight|bias)"
    r"|(encoder\.layer\.[^.]+\.attention\.self\.)?rotary_embeddings\.inv_freq)|lm_head\.decoder\.weight"
)
_FAIR_BLOCK = re.compile(r"layers\.([^.]*)\.(.+)\.([^.]+)", re.DOTALL)
_INVERSE = {fair: hf for hf, fair in (_OUTSIDE | _LM_HEAD).items()}
_INVERSE_BLOCK = {fair: hf for hf, fair in _BLOCK.items()}
_FIELDS = ("num_hidden_layers", "hidden_size", "num_attention_heads")
# ESM-2's rotary base: fair-esm's RotaryEmbedding and PackedESM2 use it.
_ROPE_THETA = 10000.0
# What transformers' EsmConfig reads for a field config.json lacks (None for the others).
_DEFAULTS: dict[str, object] = {
    "position_embedding_type": "absolute",
    "token_dropout": False,
    "tie_word_embeddings": True,
    "rope_theta": _ROPE_THETA,
}


def _fair_name(key: str) -> str | None:
    """The fair-esm ESM2 name of a transformers key, or None for a key of no ESM2 weight."""
    match = _HF_KEY.fullmatch(key)
    if match is None:
        return None
    module, kind = match["module"], match["kind"]
    if match["index"] is not None:
        fair = _BLOCK.get(module)
        if module.endswith("LayerNorm"):
            kind = _LEGACY.get(kind, kind)
        return None if fair is None or kind not in ("weight", "bias") else f"layers.{match['index']}.{fair}.{kind}"
    if match["esm"] is None and key == "lm_head.bias":
        return key
    fair = _LM_HEAD.get(module) if match["esm"] is None and module.startswith("lm_head.") else _OUTSIDE.get(module)
    return None if fair is None or kind not in ("weight", "bias") else f"{fair}.{kind}"


def _hf_key(name: str) -> str:
    """transformers' key (EsmModel's, without "esm.") for a fair-esm ESM2 name, for messages."""
    block = _FAIR_BLOCK.fullmatch(name)
    if block:
        return f"encoder.layer.{block[1]}.{_INVERSE_BLOCK.get(block[2], block[2])}.{block[3]}"
    module, _, kind = name.rpartition(".")
    return name if name == "lm_head.bias" else f"{_INVERSE.get(module, module)}.{kind}"


#: transformers' layout, for ``checkpoint_format.checked_state``.
HF_LAYOUT = Layout(
    name=_fair_name,
    ignored=_IGNORED,
    optional=(frozenset(CONTACT_REGRESSION), LM_HEAD),
    derived=frozenset({"self_attn.rot_emb.inv_freq", "lm_head.weight"}),
    settings="config",
    fields=_FIELDS,
    key=_hf_key,
)


class HfConfig(NamedTuple):
    """A checked config.json: the sizes as fair-esm's cfg says them, and the LayerNorms' epsilon."""

    cfg: Config
    layer_norm_eps: float


def read_hf_config(config: dict[str, Any], path: Path) -> HfConfig:
    """The checked settings of an ESM-2 config.json (``path``, for messages) that ``hub.read_config`` read.

    Raises:
        ValueError: one line naming ``path``, the field, its value and what ESM-2 has.
    """
    if config.get("model_type") != "esm":
        raise ValueError(
            f"{path}: model_type = {_value(config, 'model_type')}, expected 'esm': not an ESM-2 model in "
            "transformers' layout"
        )
    token = alphabet()
    # field => (what ESM-2's config says, accepted values); absent fields read as transformers' defaults.
    required = {
        "is_folding_model": ("false (ESMFold is not supported)", (False, None)),
        "position_embedding_type": ("'rotary'", ("rotary",)),
        "token_dropout": ("true", (True,)),
        "emb_layer_norm_before": ("false", (False, None)),
        "is_decoder": ("false", (False, None)),
        "add_cross_attention": ("false", (False, None)),
        "tie_word_embeddings": ("true", (True,)),
        "vocab_size": (f"{len(token)}", (len(token),)),
        "mask_token_id": (f"{token.mask_idx}", (token.mask_idx,)),
        "pad_token_id": (f"{token.padding_idx}", (token.padding_idx,)),
        "rope_theta": (f"{_ROPE_THETA}", (_ROPE_THETA,)),
        "rope_scaling": ("null", (None,)),
    }
    for field, (says, accepted) in required.items():
        value = config.get(field, _DEFAULTS.get(field))
        if not any(_matches(value, ok) for ok in accepted):
            raise ValueError(
                f"{path}: {field} = {_value(config, field)}, expected {says} as ESM-2's config says; "
                "virnucpro computes ESM-2 as fair-esm does and refuses other settings"
            )
    _check_rope_parameters(config, path)
    absent = [field for field in _FIELDS if field not in config]
    if absent:
        raise ValueError(f"{path}: lacks {absent}; an ESM-2 config.json gives {list(_FIELDS)}")
    layers, embed_dim, heads = checked_sizes(config, HF_LAYOUT, path)
    _check_equal(config, "intermediate_size", 4 * embed_dim, "4 x hidden_size", path)
    if config.get("head_dim") is not None:
        _check_equal(config, "head_dim", embed_dim // heads, "hidden_size / num_attention_heads", path)
    return HfConfig(Config(layers, embed_dim, heads, True), _layer_norm_eps(config, path))


def _check_rope_parameters(config: dict[str, Any], path: Path) -> None:
    """transformers 5 may write rotary settings as ``rope_parameters``: only ESM-2's default is accepted."""
    rope = config.get("rope_parameters")
    if rope is None:
        return
    default = isinstance(rope, dict) and set(rope) <= {"rope_type", "rope_theta"}
    if (
        not default
        or rope.get("rope_type", "default") != "default"
        or rope.get("rope_theta", _ROPE_THETA) != _ROPE_THETA
    ):
        raise ValueError(
            f"{path}: rope_parameters = {_value(config, 'rope_parameters')}, expected "
            f"{{'rope_type': 'default', 'rope_theta': {_ROPE_THETA}}} as ESM-2 computes its rotary embeddings"
        )


def _check_equal(config: dict[str, Any], field: str, wanted: int, says: str, path: Path) -> None:
    value = config.get(field)
    if isinstance(value, bool) or value != wanted:
        raise ValueError(f"{path}: {field} = {_value(config, field)}, expected {wanted} ({says}) as in ESM-2")


def _layer_norm_eps(config: dict[str, Any], path: Path) -> float:
    """``layer_norm_eps``: a finite number in (0, 0.1]; absent, transformers' default 1e-12."""
    eps = config.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0 < eps <= 0.1 and math.isfinite(eps)):
        raise ValueError(f"{path}: layer_norm_eps = {_value(config, 'layer_norm_eps')}, expected a number in (0, 0.1]")
    return float(eps)


def _matches(value: object, accepted: object) -> bool:
    """JSON's equality: true is not 1, but 1 is 1.0."""
    if isinstance(value, bool) or isinstance(accepted, bool):
        return value is accepted
    return value == accepted


def _value(config: dict[str, Any], field: str) -> str:
    """How a message shows a field's value: its repr, clipped; absent, transformers' default for it."""
    if field in config:
        return repr(config[field])[:100]
    return f"absent (transformers' default {_DEFAULTS[field]!r})" if field in _DEFAULTS else "absent"


def save_hf_folder(model: ESM2, folder: str | os.PathLike) -> Path:
    """Write ``model`` as the published ESM-2 repos hold it: config.json and model.safetensors.

    The keys are ``EsmForMaskedLM``'s (the encoder under "esm.", ``lm_head`` beside it; no
    rotary tables, no decoder weight: transformers computes the one and ties the other), the
    config the published one with the model's sizes and its LayerNorms' epsilon, the tensors
    in the model's dtype. ``transformers.EsmForMaskedLM.from_pretrained(folder)`` and
    ``load_model(folder)`` both read it.

    Args:
        model: a fair-esm ESM2 (token dropout on); read, never modified.
        folder: created if absent; must not hold config.json or model.safetensors already.

    Returns:
        The folder.
    """
    folder = Path(folder)
    eps = {module.eps for module in model.modules() if isinstance(module, torch.nn.LayerNorm)}
    if len(eps) != 1 or not model.token_dropout:
        raise ValueError(f"model: expected token dropout and one LayerNorm epsilon, got {model.token_dropout}, {eps}")
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("rot_emb.inv_freq") or name == "lm_head.weight":
            continue
        key = name if name.startswith("lm_head.") else f"esm.{_hf_key(name)}"
        state[key] = tensor.detach().to("cpu", copy=True).contiguous()
    dtype = model.embed_tokens.weight.dtype
    config = {
        "architectures": ["EsmForMaskedLM"],
        "attention_probs_dropout_prob": 0.0,
        "emb_layer_norm_before": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": model.embed_dim,
        "intermediate_size": 4 * model.embed_dim,
        "is_folding_model": False,
        "layer_norm_eps": eps.pop(),
        "mask_token_id": model.mask_idx,
        "max_position_embeddings": 1026,
        "model_type": "esm",
        "num_attention_heads": model.attention_heads,
        "num_hidden_layers": model.num_layers,
        "pad_token_id": model.padding_idx,
        "position_embedding_type": "rotary",
        "token_dropout": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "vocab_size": model.alphabet_size,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        if (folder / name).exists():
            raise FileExistsError(f"{folder / name}: exists already; save to a new folder")
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
