"""Load fair-esm ESM-2 models (pretrained, local checkpoint or random) and save checkpoints.

Checkpoints are read with ``torch.load(weights_only=True)``, allowing only
``argparse.Namespace`` beyond tensors and containers: fair-esm's own loader calls
``torch.load`` without it, which fails on torch >= 2.6 and would otherwise run
arbitrary pickled code.
"""

from __future__ import annotations

import argparse
import os
import re
import warnings
from pathlib import Path

import esm
import torch
from esm.model.esm2 import ESM2

from .architecture import ALPHABET_NAME, ARCHITECTURES

__all__ = ["MODEL_URL", "RANDOM_PREFIX", "load_model", "save_checkpoint"]

MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
RANDOM_PREFIX = "random:"
_ACCEPTED = (
    f"pass one of {sorted(ARCHITECTURES)}, '{RANDOM_PREFIX}<name>' (e.g. '{RANDOM_PREFIX}esm2_t6_8M'), "
    "or the path of a fair-esm ESM-2 checkpoint (.pt)"
)

_CONFIG_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")
# fair-esm's upgrade_state_dict strips these; lm_head and contact_head sit under "encoder.".
_KEY_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
# Contact prediction only, shipped by fair-esm in separate files; embeddings don't need it.
_OPTIONAL_KEYS = "contact_head.regression."


def load_model(
    spec: str | os.PathLike, *, seed: int = 0, device: torch.device | str = "cpu"
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
            one is moved.

    Returns:
        (model in eval mode, float32, on ``device``; fair-esm's ESM-1b alphabet).

    Raises:
        ValueError: unknown name; a file that is not an ESM-2 checkpoint or lacks weights.
        FileNotFoundError: a checkpoint path that does not exist.
        RuntimeError: a pretrained model neither cached nor downloadable.
    """
    if isinstance(spec, str) and spec.startswith(RANDOM_PREFIX):
        model = _random_model(spec[len(RANDOM_PREFIX) :], seed, device)
    elif spec in ARCHITECTURES:
        model = _read_model(_cached_checkpoint(spec)).to(device)
    elif Path(spec).is_file():
        model = _read_model(Path(spec)).to(device)
    elif isinstance(spec, os.PathLike) or spec.endswith(".pt") or os.sep in spec:
        raise FileNotFoundError(f"model checkpoint {os.fspath(spec)!r} does not exist")
    else:
        raise ValueError(f"unknown model {spec!r}; {_ACCEPTED}")
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


def _random_model(name: str, seed: int, device: torch.device | str) -> ESM2:
    full_name = name if name in ARCHITECTURES else f"{name}_UR50D"
    if full_name not in ARCHITECTURES:
        raise ValueError(f"unknown model {RANDOM_PREFIX + name!r}; {_ACCEPTED}")
    warnings.warn(
        f"{RANDOM_PREFIX}{full_name}: weights are RANDOM (seed {seed}), its embeddings are meaningless "
        "for biology; use it for benchmarks and offline demos only",
        stacklevel=3,
    )
    layers, embed_dim, heads = ARCHITECTURES[full_name]
    torch.manual_seed(seed)
    with torch.device(device):
        return ESM2(layers, embed_dim, heads, alphabet=ALPHABET_NAME, token_dropout=True)


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


def _read_model(path: Path) -> ESM2:
    """Build an ESM-2 from a fair-esm checkpoint file, checking its structure and weights."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:  # an unreadable file says so itself
        raise
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, KeyError...: not a torch checkpoint
        raise ValueError(
            f"{path}: not a readable fair-esm checkpoint (read with torch.load(weights_only=True), "
            f"allowing argparse.Namespace): {type(err).__name__}: {err}"
        ) from err
    cfg = _config(data, path)
    with torch.device("meta"):  # no random initialisation (minutes for large models): weights come from the file
        model = ESM2(
            num_layers=cfg.encoder_layers,
            embed_dim=cfg.encoder_embed_dim,
            attention_heads=cfg.encoder_attention_heads,
            alphabet=ALPHABET_NAME,
            token_dropout=cfg.token_dropout,
        )
    state = {_KEY_PREFIX.sub("", key): tensor.float() for key, tensor in data["model"].items()}
    expected = model.state_dict().keys()
    absent = expected - state.keys()
    missing = sorted(key for key in absent if not key.startswith(_OPTIONAL_KEYS))
    if missing:
        raise ValueError(
            f"{path}: checkpoint lacks {len(missing)} weight(s) of its ESM-2 architecture: {_few(missing)}"
        )
    unexpected = sorted(state.keys() - expected)
    if unexpected:
        warnings.warn(f"{path}: ignoring {len(unexpected)} unexpected weight(s): {_few(unexpected)}", stacklevel=3)
    try:
        model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{path}: weights do not fit the architecture in its cfg: {err}") from err
    if absent:  # only the contact regression, which fair-esm ships apart: give it memory, random weights
        model.contact_head.regression.to_empty(device="cpu").reset_parameters()
    return model


def _config(data: object, path: Path) -> argparse.Namespace:
    """The ``cfg["model"]`` of an ESM-2 checkpoint, or a ValueError saying what is wrong."""
    shape = "{'model': state_dict, 'cfg': {'model': argparse.Namespace(...)}}"
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a fair-esm ESM-2 checkpoint: expected {shape}, got a {type(data).__name__}")
    if "args" in data and "cfg" not in data:
        raise ValueError(f"{path}: this is an ESM-1/ESM-1b checkpoint ('args', no 'cfg'); only ESM-2 is supported")
    cfg = data.get("cfg")
    cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(data.get("model"), dict) or not isinstance(cfg, argparse.Namespace):
        raise ValueError(
            f"{path}: not a fair-esm ESM-2 checkpoint: expected {shape}, got keys {sorted(map(str, data))}"
        )
    absent = [field for field in _CONFIG_FIELDS if not hasattr(cfg, field)]
    if absent:
        raise ValueError(f"{path}: checkpoint cfg['model'] lacks {absent}")
    return cfg


def _few(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
