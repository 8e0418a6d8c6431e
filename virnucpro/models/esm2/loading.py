"""Load ESM-2 models as fair-esm's ``ESM2`` (Hugging Face cache or folder, fair-esm cache or
checkpoint, or random) and save fair-esm checkpoints.

A checkpoint is untrusted input. A fair-esm file is read with ``torch.load(weights_only=True)``,
allowing only ``argparse.Namespace`` beyond tensors and containers: fair-esm's own loader
unpickles whatever the file holds (and fails on torch >= 2.6). A folder in transformers' layout
is read by ``common.hub`` (safetensors, or ``torch.load(weights_only=True)``) and its names
mapped by ``hf_layout``. Everything a file claims is then checked before anything is built from
it (``checkpoint_format``): its settings, every key, dtype and shape. A malformed file is one
``ValueError`` line naming what is wrong. Either layout gives the same ``ESM2``.

Zip-format files (what torch >= 1.6 writes) are memory-mapped, and the model is assembled
on the meta device with ``load_state_dict(assign=True)``: with ``dtype=None`` its parameters
are the mapped tensors themselves, so nothing is read until used and nothing is copied.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import esm
import torch
from esm.model.esm2 import ESM2

from ..common import hub
from ..common.random_spec import random_name, warn_random
from ..common.safe_pickle import load_torch_file
from ..common.upload import placed
from .architecture import ALPHABET_NAME, ARCHITECTURES
from .checkpoint_format import FAIR_ESM, Config, Layout, checked_state, read_config, skeleton
from .hf_layout import HF_LAYOUT, read_hf_config
from .specs import ACCEPTED, MODEL_URL, RANDOM_PREFIX, checkpoint_path, source

__all__ = ["MODEL_URL", "RANDOM_PREFIX", "checkpoint_path", "load_model", "save_checkpoint"]


def load_model(
    spec: str | os.PathLike,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = torch.float32,
) -> tuple[ESM2, esm.data.Alphabet]:
    """A fair-esm ESM-2 model and its alphabet.

    Args:
        spec: one of
            - a Hugging Face id, e.g. "facebook/esm2_t36_3B_UR50D": its snapshot in the local
              Hugging Face cache (``HF_HUB_CACHE`` or ``HF_HOME``), never downloaded;
            - the path of a folder in transformers' layout: config.json (model_type "esm",
              rotary positions, token dropout; its layer_norm_eps honoured) and
              model.safetensors, pytorch_model.bin or a shard index; the LM head and contact
              head are read when present (``EsmForMaskedLM``), else filled (``EsmModel``);
            - a pretrained name from ``ARCHITECTURES``, e.g. "esm2_t33_650M_UR50D": read from
              fair-esm's torch hub cache, ``<torch.hub.get_dir()>/checkpoints/<name>.pt``,
              and downloaded there first if absent;
            - the path of a checkpoint in fair-esm's ESM-2 format (see ``save_checkpoint``);
            - "random:<name>", the "_UR50D" suffix optional: that architecture with random
              weights, meaningless for biology, for benchmarks and offline demos only.
        seed: seeds torch's global RNG before a random initialisation; unused otherwise.
        device: where a random model is built (fast for large ones on a GPU) or a loaded
            one's weights are put.
        dtype: the parameters' dtype. A dtype (default float32, as before this argument
            existed) gives a model that owns its memory, whatever the file holds. None keeps
            each tensor's stored dtype and, on the CPU, copies nothing: the parameters ARE
            the file's memory-mapped tensors (a private, copy-on-write mapping: writing to
            one never reaches the file). That is the fast start for a model read only once,
            e.g. by ``PackedESM2``, which copies the weights to the GPU in its own dtype;
            such a model reads the file's pages until it is freed, so replace the file by
            renaming a new one over it, never by rewriting it in place.
            Random models are built in float32 and then converted (None: float32).

    Returns:
        (model in eval mode on ``device``; fair-esm's ESM-1b alphabet).

    Raises:
        ValueError: unknown name; a Hub id not in the local cache (the line says how to
            download it); a directory without config.json; a file or folder that is not a
            well-formed ESM-2 checkpoint (each case one line naming the file, the field or
            key, its value and what was expected).
        FileNotFoundError: a checkpoint path that does not exist.
        RuntimeError: a pretrained model neither cached nor downloadable.
    """
    device = torch.device(device)
    name = random_name(spec)
    if name is not None:
        model = _random_model(name, seed, device)
        model = model if dtype is None else model.to(dtype)
    else:
        found = source(spec)
        model = _read_folder(found, dtype, device) if found.is_dir() else _read_model(found, dtype, device)
    return model.eval(), model.alphabet


def save_checkpoint(model: ESM2, path: str | os.PathLike) -> None:
    """Write ``model`` in fair-esm's ESM-2 checkpoint format.

    The file holds ``{"model": state_dict, "cfg": {"model": argparse.Namespace(encoder_layers,
    encoder_embed_dim, encoder_attention_heads, token_dropout)}}`` with the key prefixes of
    the published files ("encoder.sentence_encoder." for the encoder, "encoder." for lm_head
    and contact_head), so ``load_model(path)`` and fair-esm's
    ``esm.pretrained.load_model_and_alphabet_core("esm2_...", torch.load(path))`` both read it.
    Tensors are saved on the CPU in the model's dtype.
    """
    state = {}
    for key, tensor in model.state_dict().items():
        prefix = "encoder." if key.startswith(("lm_head.", "contact_head.")) else "encoder.sentence_encoder."
        state[prefix + key] = tensor.cpu()
    cfg = argparse.Namespace(
        encoder_layers=model.num_layers,
        encoder_embed_dim=model.embed_dim,
        encoder_attention_heads=model.attention_heads,
        token_dropout=model.token_dropout,
    )
    torch.save({"model": state, "cfg": {"model": cfg}}, path)


def _random_model(name: str, seed: int, device: torch.device) -> ESM2:
    full_name = name if name in ARCHITECTURES else f"{name}_UR50D"
    if full_name not in ARCHITECTURES:
        raise ValueError(f"unknown model {RANDOM_PREFIX + name!r}; {ACCEPTED}")
    warn_random(full_name, seed, stacklevel=3)
    layers, embed_dim, heads = ARCHITECTURES[full_name]
    torch.manual_seed(seed)
    with torch.device(device):
        return ESM2(layers, embed_dim, heads, alphabet=ALPHABET_NAME, token_dropout=True)


def _read_model(path: Path, dtype: torch.dtype | None, device: torch.device) -> ESM2:
    """An ESM-2 from a fair-esm checkpoint file, checked in full before anything is built."""
    data = _load_file(path)
    cfg: Config = read_config(data, path)
    return _assemble(cfg, checked_state(data["model"], cfg, path), FAIR_ESM, dtype, device)


def _read_folder(folder: Path, dtype: torch.dtype | None, device: torch.device) -> ESM2:
    """An ESM-2 from a folder in transformers' layout, checked in full before anything is built."""
    settings = read_hf_config(hub.read_config(folder), folder / hub.CONFIG)
    path = hub.weights_path(folder)
    state = checked_state(hub.read_weights(path), settings.cfg, path, HF_LAYOUT)
    model = _assemble(settings.cfg, state, HF_LAYOUT, dtype, device)
    for module in model.modules():  # fair-esm builds its LayerNorms with torch's eps, 1e-5
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = settings.layer_norm_eps
    return model


def _assemble(
    cfg: Config, state: dict[str, torch.Tensor], layout: Layout, dtype: torch.dtype | None, device: torch.device
) -> ESM2:
    """An ESM2 of ``cfg`` holding the checked ``state``, what ``layout`` derives, and fillers for absent heads."""
    model = skeleton(cfg, cfg.layers, ALPHABET_NAME)
    state = dict(state)
    if "lm_head.weight" in layout.derived:  # tied to the embedding, in fair-esm as in transformers
        state["lm_head.weight"] = state["embed_tokens.weight"]
    if "self_attn.rot_emb.inv_freq" in layout.derived:  # the skeleton computed them, on the CPU
        for i, layer in enumerate(model.layers):
            state[f"layers.{i}.self_attn.rot_emb.inv_freq"] = layer.self_attn.rot_emb.inv_freq
    state = {name: placed(tensor, dtype, device) for name, tensor in state.items()}
    # assign=True: the module's parameters become these tensors (the mmapped ones for
    # dtype=None on the CPU) instead of being copied into; every one was checked.
    model.load_state_dict(state, strict=False, assign=True)
    absent = sorted(name for group in layout.optional for name in group if name not in state)
    _fill(model, absent, dtype or state["embed_tokens.weight"].dtype, device)
    return model


def _fill(model: ESM2, names: list[str], dtype: torch.dtype, device: torch.device) -> None:
    """Seeded values for weights a file may lack (the contact regression, fair-esm ships it apart; an
    EsmModel's LM head): embeddings don't use them, so they need memory and finite values, not meaning."""
    generator = torch.Generator().manual_seed(0)
    values = {}
    for name in names:
        value = torch.empty(model.get_parameter(name).shape)
        if name.endswith("layer_norm.weight"):
            value.fill_(1.0)
        elif name.endswith("bias"):
            value.zero_()
        else:
            value.normal_(0.0, 0.02, generator=generator)
        values[name] = value.to(device=device, dtype=dtype)
    model.load_state_dict(values, strict=False, assign=True)


def _load_file(path: Path) -> object:
    """What ``torch.load`` reads from the fair-esm checkpoint ``path``, mmapped when it is a zip archive."""
    return load_torch_file(
        path,
        what="a fair-esm checkpoint",
        allowed=[argparse.Namespace],
        advice="if you wrote this file, save just the state dict and cfg, as virnucpro.models.save_checkpoint does",
    )
