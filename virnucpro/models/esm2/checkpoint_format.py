"""What an ESM-2 checkpoint must hold, checked before anything is built from it.

A fair-esm checkpoint is ``{"model": state_dict, "cfg": {"model": argparse.Namespace(encoder_layers,
encoder_embed_dim, encoder_attention_heads, token_dropout)}}``; a Hugging Face folder says the same
in config.json (``hf_layout``). The settings are checked first (types, bounds, divisibility), then
every key of the state dict against the shapes fair-esm's modules have for them: those come from
one block built on the meta device, so a file claiming 100000 layers is refused in microseconds
instead of building them for minutes. How a format names its weights and settings is a ``Layout``.
Every failure is one ``ValueError`` line: the file, the field or key, its value, what was
expected (the checks every family shares live in ``common/checkpoint_checks.py``). Nothing is
asserted; no AttributeError, TypeError or KeyError escapes.
"""

from __future__ import annotations

import argparse
import re
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import esm
import torch
from esm.model.esm2 import ESM2
from esm.modules import ContactPredictionHead
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ..common.checkpoint_checks import bounded_int, check_block_indices, check_weight, few, named_weights, show
from .architecture import alphabet as esm2_alphabet

__all__ = [
    "CONTACT_REGRESSION",
    "FAIR_ESM",
    "MAX_EMBED_DIM",
    "MAX_LAYERS",
    "Config",
    "Layout",
    "checked_sizes",
    "checked_state",
    "read_config",
    "skeleton",
]

#: Bounds on what a cfg may claim. The largest ESM-2 (15B) has 48 layers of width 5120;
#: 256 and 65536 leave room for any model that fits a machine (a 65536-wide block alone
#: holds 51 G parameters) while a corrupt or hostile number reads as what it is.
MAX_LAYERS = 256
MAX_EMBED_DIM = 65536
#: The contact regression, which fair-esm ships in separate files: a checkpoint may lack
#: both (embeddings don't use it), not one.
CONTACT_REGRESSION = ("contact_head.regression.weight", "contact_head.regression.bias")

_SHAPE = "{'model': state_dict, 'cfg': {'model': argparse.Namespace(...)}}"
_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")
# fair-esm's upgrade_state_dict strips these; lm_head and contact_head sit under "encoder.".
_KEY_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
_LAYER_KEY = re.compile(r"layers\.([^.]*)\.(.+)", re.DOTALL)


class Layout(NamedTuple):
    """How a checkpoint format names ESM-2's weights and settings: what ``checked_state`` needs.

    Attributes:
        name: the file's key -> its name in ``ESM2.state_dict()``; None for a key that is no weight of ESM2.
        ignored: keys the format holds that are no weight of ESM2, left out without a warning.
        optional: groups of ESM2 names a file may lack, each group whole (the loader fills them).
        derived: names (block names apply to every block) never read from the file: the loader makes them.
        settings: where the settings live, for messages ("cfg['model']").
        fields: the settings' names of (layers, embed_dim, heads), for messages.
        key: an ESM2 name -> the file's key for it, for messages.
    """

    name: Callable[[str], str | None]
    ignored: re.Pattern[str]
    optional: tuple[frozenset[str], ...]
    derived: frozenset[str]
    settings: str
    fields: tuple[str, str, str]
    key: Callable[[str], str]


#: fair-esm's format: keys prefixed "encoder.sentence_encoder." ("encoder." for lm_head and
#: contact_head), every weight in the file, the contact regression optional (fair-esm ships it apart).
FAIR_ESM = Layout(
    name=lambda key: _KEY_PREFIX.sub("", key),
    ignored=re.compile(r"(?!)"),
    optional=(frozenset(CONTACT_REGRESSION),),
    derived=frozenset(),
    settings="cfg['model']",
    fields=("encoder_layers", "encoder_embed_dim", "encoder_attention_heads"),
    key=lambda name: name,  # messages name fair-esm's weights without the prefixes, as ESM2 does
)


class Config(NamedTuple):
    """A checked cfg: 1 <= layers <= MAX_LAYERS, 1 <= embed_dim <= MAX_EMBED_DIM,
    heads dividing embed_dim into an even head dimension (rotary rotates pairs)."""

    layers: int
    embed_dim: int
    heads: int
    token_dropout: bool


def read_config(data: object, path: Path) -> Config:
    """The checked ``cfg["model"]`` of what ``torch.load`` read from ``path``; ``data["model"]`` is a dict."""
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a fair-esm ESM-2 checkpoint: expected {_SHAPE}, got a {type(data).__name__}")
    if "args" in data and "cfg" not in data:
        raise ValueError(f"{path}: this is an ESM-1/ESM-1b checkpoint ('args', no 'cfg'); only ESM-2 is supported")
    if "model" not in data or "cfg" not in data:
        keys = few([show(key) for key in sorted(data, key=str)])
        raise ValueError(f"{path}: not a fair-esm ESM-2 checkpoint: expected {_SHAPE}, got keys [{keys}]")
    if not isinstance(data["model"], dict):
        raise ValueError(f"{path}: 'model' is a {type(data['model']).__name__}, expected the state dict (a dict)")
    outer = data["cfg"]
    cfg = outer.get("model") if isinstance(outer, dict) else outer
    if not isinstance(cfg, argparse.Namespace):
        where = "cfg['model']" if isinstance(outer, dict) else "'cfg'"
        got = "absent" if isinstance(outer, dict) and "model" not in outer else f"a {type(cfg).__name__}"
        raise ValueError(
            f"{path}: {where} is {got}, expected 'cfg' to be {{'model': argparse.Namespace("
            f"{', '.join(_FIELDS)})}} as fair-esm writes it"
        )
    values = vars(cfg)
    absent = [field for field in _FIELDS if field not in values]
    if absent:
        raise ValueError(f"{path}: checkpoint cfg['model'] lacks {absent}; fair-esm's ESM-2 cfg has {list(_FIELDS)}")
    layers, embed_dim, heads = checked_sizes(values, FAIR_ESM, path)
    if not isinstance(values["token_dropout"], bool):
        raise ValueError(
            f"{path}: cfg['model'].token_dropout = {show(values['token_dropout'])}, expected True or False"
        )
    return Config(layers, embed_dim, heads, values["token_dropout"])


def checked_sizes(values: dict[str, object], layout: Layout, path: Path) -> tuple[int, int, int]:
    """(layers, embed_dim, heads) from settings ``values`` under ``layout.fields``, checked as ``Config`` says."""
    layers_field, embed_field, heads_field = layout.fields
    layers = bounded_int(values[layers_field], f"{layout.settings}.{layers_field}", MAX_LAYERS, path)
    embed_dim = bounded_int(values[embed_field], f"{layout.settings}.{embed_field}", MAX_EMBED_DIM, path)
    heads = bounded_int(values[heads_field], f"{layout.settings}.{heads_field}", embed_dim, path)
    if embed_dim % heads or embed_dim // heads % 2:
        raise ValueError(
            f"{path}: {layout.settings}.{heads_field} = {heads} does not split {embed_field} = "
            f"{embed_dim} into an even head dimension; expected a divisor leaving an even quotient "
            "(rotary embeddings rotate pairs of dimensions)"
        )
    return layers, embed_dim, heads


def checked_state(raw: dict, cfg: Config, path: Path, layout: Layout | None = None) -> dict[str, Tensor]:
    """The state dict's weights, keyed as ``ESM2.state_dict()`` keys them.

    Every weight of ``ESM2`` for ``cfg`` is present but ``layout.derived`` (each group of
    ``layout.optional`` may be absent whole, not in part), is a dense CPU tensor of a float
    dtype and has the shape ``cfg`` implies; the block indices are exactly 0..layers-1. Keys
    of no ESM-2 weight are left out, with a warning naming them unless ``layout.ignored``
    matches them. ``layout`` defaults to fair-esm's (``FAIR_ESM``).
    """
    layout = layout or FAIR_ESM
    outside, block = _expected_shapes(cfg)
    named = named_weights(raw, path, partial(_esm2_name, layout), layout.key("embed_tokens.weight"), layout.ignored)
    found = {match[1] for name in named if (match := _LAYER_KEY.fullmatch(name))}
    check_block_indices(found, cfg.layers, path, f"{layout.settings}.{layout.fields[0]}", layout.settings)
    layers, embed_dim, heads = layout.fields
    implied_by = f"{layout.settings} ({layers}={cfg.layers}, {embed_dim}={cfg.embed_dim}, {heads}={cfg.heads})"
    state, unexpected = {}, []
    for name, (key, value) in named.items():
        layer = _LAYER_KEY.fullmatch(name)
        shape = block.get(layer[2]) if layer else outside.get(name)
        if shape is None or (layer[2] if layer else name) in layout.derived:
            unexpected.append(show(key))
            continue
        check_weight(key, value, shape, path, implied_by)
        state[name] = value
    expected = {name for name in outside if name not in layout.derived}
    expected |= {f"layers.{i}.{suffix}" for i in range(cfg.layers) for suffix in block if suffix not in layout.derived}
    missing = expected - state.keys()
    for group in layout.optional:
        if group <= missing:
            missing -= group
    if missing:
        shown = sorted(layout.key(name) for name in missing)
        raise ValueError(f"{path}: checkpoint lacks {len(missing)} weight(s) of its ESM-2 architecture: {few(shown)}")
    if unexpected:  # stacklevel: the caller of load_model
        warnings.warn(f"{path}: ignoring {len(unexpected)} unexpected weight(s): {few(unexpected)}", stacklevel=4)
    return state


def skeleton(cfg: Config, layers: int, alphabet: esm.data.Alphabet | str) -> ESM2:
    """An ESM2 with ``cfg``'s sizes and ``layers`` blocks, its parameters on the meta device.

    Structure, no values (~5 ms a block): every parameter and buffer is to be replaced by
    ``load_state_dict(assign=True)``; until then the rotary tables ((head_dim / 2,) each)
    are on the CPU and everything else is on the meta device.
    """
    with torch.device("meta"), _NoInit():
        return ESM2(
            num_layers=layers,
            embed_dim=cfg.embed_dim,
            attention_heads=cfg.heads,
            alphabet=alphabet,
            token_dropout=cfg.token_dropout,
        )


def _esm2_name(layout: Layout, key: str) -> str:
    """``layout.name(key)``; for a key of no ESM2 weight, "?" and the key: no ESM2 name starts so (unexpected)."""
    name = layout.name(key)
    return f"?{key}" if name is None else name


def _expected_shapes(cfg: Config) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """(shape of each weight outside the blocks by its name, shape of each block weight by its name in a block).

    Taken from fair-esm's modules: an ESM2 of one block on the meta device, and its contact
    head rebuilt for ``cfg.layers`` blocks (it reads the attention maps of layers x heads).
    """
    model = skeleton(cfg, 1, esm2_alphabet())
    with torch.device("meta"), _NoInit():
        contacts = ContactPredictionHead(
            cfg.layers * cfg.heads, model.prepend_bos, model.append_eos, eos_idx=model.eos_idx
        )
    outside = {
        name: tensor.shape
        for name, tensor in model.state_dict().items()
        if not name.startswith(("layers.", "contact_head."))
    }
    outside |= {f"contact_head.{name}": tensor.shape for name, tensor in contacts.state_dict().items()}
    return outside, {name: tensor.shape for name, tensor in model.layers[0].state_dict().items()}


class _NoInit(TorchFunctionMode):
    """Builds modules on the meta device without computing values ``load_state_dict(assign=True)`` replaces.

    On meta tensors, torch runs initialisers and arithmetic through its Python reference
    ops, whose first call imports torch._dynamo: ~2 s of start-up spent on values that are
    thrown away. Here random initialisers do nothing on meta tensors and ``torch.arange``
    (the source of the rotary tables, (head_dim / 2,) each) runs on the CPU.
    """

    _INITIALISERS = frozenset(
        {
            torch.nn.init.normal_,
            torch.nn.init.uniform_,
            torch.nn.init.trunc_normal_,
            torch.nn.init.kaiming_uniform_,
            torch.nn.init.kaiming_normal_,
            torch.nn.init.xavier_uniform_,
            torch.nn.init.xavier_normal_,
            Tensor.normal_,
            Tensor.uniform_,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._INITIALISERS:
            tensor = args[0] if args else kwargs["tensor"]
            if tensor.is_meta:
                return tensor
        elif func is torch.arange:
            kwargs = {**kwargs, "device": "cpu"}
        return func(*args, **kwargs)
