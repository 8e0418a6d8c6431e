"""Which model specs are ESM-2's, and the file or folder each names.

A spec is one of:

- a Hub id, e.g. "facebook/esm2_t36_3B_UR50D": its snapshot in the local Hugging Face cache
  (``common.hub``; never downloaded);
- the path of a folder in transformers' layout (config.json saying model_type "esm", weights);
- a fair-esm name of ``ARCHITECTURES``, e.g. "esm2_t33_650M_UR50D": fair-esm's cache,
  ``<torch.hub.get_dir()>/checkpoints/<name>.pt``, downloaded there first if absent;
- the path of a fair-esm checkpoint file (.pt);
- "random:<name>": that architecture with random weights (no file).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..common import hub
from ..common.random_spec import RANDOM_PREFIX, random_name, spec_text
from .architecture import ARCHITECTURES

__all__ = ["ACCEPTED", "MODEL_URL", "RANDOM_PREFIX", "checkpoint_path", "files", "owns", "source"]

MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
#: What a message lists as the accepted forms, the Hugging Face cache first.
ACCEPTED = (
    "pass a Hugging Face id in the local cache (e.g. 'facebook/esm2_t33_650M_UR50D'), the path of a folder "
    f"in transformers' layout, one of {sorted(ARCHITECTURES)} (fair-esm's cache), the path of a fair-esm "
    f"ESM-2 checkpoint (.pt), or '{RANDOM_PREFIX}<name>' (e.g. '{RANDOM_PREFIX}esm2_t6_8M')"
)


def owns(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names an ESM-2 model; reads at most one config.json, never the network.

    True for "random:<ESM-2 name>", a name of ``ARCHITECTURES``, an existing file (read as a
    fair-esm checkpoint: its contents are checked when loaded), and a folder or cached Hub id
    whose config.json says model_type "esm". False for anything else, including a Hub id not
    in the local cache (no family can tell what it is) and a folder whose config.json is unreadable.
    """
    text = spec_text(spec)
    if text is None:
        return False
    name = random_name(text)
    if name is not None:
        return name in ARCHITECTURES or f"{name}_UR50D" in ARCHITECTURES
    if text in ARCHITECTURES or Path(text).is_file():
        return True
    try:
        return hub.read_config(hub.local_folder(text)).get("model_type") == "esm"
    except (ValueError, OSError):
        return False


def source(spec: str | os.PathLike) -> Path:
    """What ``spec`` (not "random:") names: a fair-esm checkpoint file, or a folder in transformers' layout.

    Raises:
        TypeError: ``spec`` is neither str nor os.PathLike.
        ValueError: an unknown name; a Hub id not in the local cache (how to download it); a folder
            without config.json; a path that is no regular file.
        FileNotFoundError: a checkpoint path that does not exist.
        RuntimeError: a fair-esm name neither cached nor downloadable.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model must be a str or os.PathLike, got {type(spec).__name__}; {ACCEPTED}")
    if isinstance(spec, str) and spec in ARCHITECTURES:
        return _cached_checkpoint(spec)
    if hub.is_hub_id(spec) and not os.fspath(spec).endswith(".pt"):  # "models/x.pt" is a path, mistyped
        return hub.local_folder(spec)
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        if not (path / hub.CONFIG).is_file():
            raise ValueError(
                f"{path}: is a directory, not a checkpoint, and holds no {hub.CONFIG}; pass a folder in "
                "transformers' layout (config.json and model.safetensors or pytorch_model.bin) or the path of "
                "a fair-esm .pt file"
            )
        return path
    if path.exists():
        raise ValueError(f"{path}: not a regular file (a device, socket or pipe); pass a fair-esm .pt file")
    if isinstance(spec, os.PathLike) or spec.endswith(".pt") or os.sep in spec:
        raise FileNotFoundError(f"model checkpoint {os.fspath(spec)!r} does not exist")
    raise ValueError(f"unknown model {spec!r}; {ACCEPTED}")


def checkpoint_path(spec: str | os.PathLike) -> Path | None:
    """The weights file ``load_model(spec)`` reads: a fair-esm checkpoint, or a folder's
    ``model.safetensors`` (a Hub id's in its cache snapshot), ``pytorch_model.bin`` or shard index;
    None for ``random:`` specs, which read no file."""
    if random_name(spec) is not None:
        return None
    found = source(spec)
    return hub.weights_path(found) if found.is_dir() else found


def files(spec: str | os.PathLike) -> dict[str, Path]:
    """The files ``load_model(spec)`` reads, by role, for the resume fingerprint: a fair-esm
    checkpoint as "model"; a folder's (a Hub id's cached snapshot's) config, weights and shards
    (``hub.folder_files``); none for ``random:``."""
    if random_name(spec) is not None:
        return {}
    found = source(spec)
    return hub.folder_files(found) if found.is_dir() else {"model": found}


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
            f"download it elsewhere and place it at {path}, or pass the path of a local copy as spec "
            "(CLI: --model PATH)"
        ) from err
    return path
