"""Load fair-esm ESM-2 models (pretrained, local checkpoint or random) and save checkpoints.

A checkpoint is untrusted input. It is read with ``torch.load(weights_only=True)``,
allowing only ``argparse.Namespace`` beyond tensors and containers: fair-esm's own loader
unpickles whatever the file holds (and fails on torch >= 2.6). Everything the file claims
is then checked before anything is built from it (``checkpoint_format``): its cfg, every
key, dtype and shape. A malformed file is one ``ValueError`` line naming what is wrong.

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

from ..common.random_spec import RANDOM_PREFIX, warn_random
from ..common.safe_pickle import load_torch_file
from ..common.upload import placed
from .architecture import ALPHABET_NAME, ARCHITECTURES
from .checkpoint_format import CONTACT_REGRESSION, Config, checked_state, read_config, skeleton

__all__ = ["MODEL_URL", "RANDOM_PREFIX", "checkpoint_path", "load_model", "save_checkpoint"]

MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
_ACCEPTED = (
    f"pass one of {sorted(ARCHITECTURES)}, '{RANDOM_PREFIX}<name>' (e.g. '{RANDOM_PREFIX}esm2_t6_8M'), "
    "or the path of a fair-esm ESM-2 checkpoint (.pt)"
)


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
        ValueError: unknown name; a directory; a file that is not a well-formed ESM-2
            checkpoint (each case one line naming the file, the field or key, its value
            and what was expected).
        FileNotFoundError: a checkpoint path that does not exist.
        RuntimeError: a pretrained model neither cached nor downloadable.
    """
    device = torch.device(device)
    if isinstance(spec, str) and spec.startswith(RANDOM_PREFIX):
        model = _random_model(spec[len(RANDOM_PREFIX) :], seed, device)
        model = model if dtype is None else model.to(dtype)
    else:
        model = _read_model(_checkpoint_path(spec), dtype, device)
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
        raise ValueError(f"unknown model {RANDOM_PREFIX + name!r}; {_ACCEPTED}")
    warn_random(full_name, seed, stacklevel=3)
    layers, embed_dim, heads = ARCHITECTURES[full_name]
    torch.manual_seed(seed)
    with torch.device(device):
        return ESM2(layers, embed_dim, heads, alphabet=ALPHABET_NAME, token_dropout=True)


def _checkpoint_path(spec: str | os.PathLike) -> Path:
    """The checkpoint file ``spec`` names: a pretrained name's cached file, or a path."""
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model must be a str or os.PathLike, got {type(spec).__name__}; {_ACCEPTED}")
    if isinstance(spec, str) and spec in ARCHITECTURES:
        return _cached_checkpoint(spec)
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a checkpoint; pass the path of the fair-esm .pt file in it")
    if path.exists():
        raise ValueError(f"{path}: not a regular file (a device, socket or pipe); pass a fair-esm .pt file")
    if isinstance(spec, os.PathLike) or spec.endswith(".pt") or os.sep in spec:
        raise FileNotFoundError(f"model checkpoint {os.fspath(spec)!r} does not exist")
    raise ValueError(f"unknown model {spec!r}; {_ACCEPTED}")


def _cached_checkpoint(name: str) -> Path:
    """The path of pretrained ``name`` in fair-esm's hub cache, downloaded there if absent."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"
    if path.is_file():
        return path
    url = MODEL_URL.format(name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path))
    except OSError as err:  # URLError, HTTPError, timeouts: offline or moved
        raise RuntimeError(
            f"model {name!r} is not cached at {path} and downloading {url} failed ({err}); "
            f"download it elsewhere and place it at {path}, or pass the path of a local copy to load_model"
        ) from err
    return path


def _read_model(path: Path, dtype: torch.dtype | None, device: torch.device) -> ESM2:
    """An ESM-2 from a fair-esm checkpoint file, checked in full before anything is built."""
    data = _load_file(path)
    cfg: Config = read_config(data, path)
    state = checked_state(data["model"], cfg, path)
    model = skeleton(cfg, cfg.layers, ALPHABET_NAME)
    state = {name: placed(tensor, dtype, device) for name, tensor in state.items()}
    # assign=True: the module's parameters become these tensors (the mmapped ones for
    # dtype=None on the CPU) instead of being copied into; every one was checked.
    model.load_state_dict(state, strict=False, assign=True)
    if CONTACT_REGRESSION[0] not in state:  # fair-esm ships it apart; embeddings don't use it
        regression = model.contact_head.regression.to_empty(device=device)
        regression.reset_parameters()  # random: it needs memory and finite values, not meaning
        regression.to(dtype or state["embed_tokens.weight"].dtype)
    return model


def _load_file(path: Path) -> object:
    """What ``torch.load`` reads from the fair-esm checkpoint ``path``, tensors memory-mapped when it is a zip archive."""
    return load_torch_file(
        path,
        what="a fair-esm checkpoint",
        allowed=[argparse.Namespace],
        advice="if you wrote this file, save just the state dict and cfg, as virnucpro.models.save_checkpoint does",
    )


def checkpoint_path(spec: str | os.PathLike) -> Path | None:
    """The file ``load_model(spec)`` reads (a pretrained name's cached file, or the path itself);
    None for ``random:`` specs, which read no file."""
    if isinstance(spec, str) and spec.startswith(RANDOM_PREFIX):
        return None
    return _checkpoint_path(spec)
