"""Hugging Face model folders, read offline and safely: for every model family.

A model in Hugging Face's layout is a folder holding ``config.json`` and its weights
(``model.safetensors``, else ``pytorch_model.bin``, or either sharded with an index). It is
named by its path, or by a Hub id ("owner/name") whose snapshot is looked up in the local
Hugging Face cache with huggingface_hub's cache functions: nothing here opens a connection,
whatever ``HF_HUB_OFFLINE`` says; a model not cached is one line saying how to download it.

Everything read is untrusted: the config is size-bounded JSON, safetensors files are read by
the safetensors library (no code, memory-mapped), and pickled ``.bin`` files only through
``torch.load(weights_only=True)`` (``safe_pickle``). No ``.py`` file of a folder is imported.

Memory: with the "pt" framework, safetensors (0.8 measured) maps the whole file privately and
returns tensors viewing that mapping: in ``/proc/self/maps`` every tensor's bytes lie inside an
``rw-p`` mapping of the file, and writing to one leaves the file unchanged (tests/models/common/
test_hub.py). Pages are read from the page cache when touched; nothing is read twice.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import SafetensorError, safe_open

from .safe_pickle import load_torch_file

__all__ = [
    "CONFIG",
    "MAX_CONFIG_BYTES",
    "WEIGHTS",
    "cache_folder",
    "folder_files",
    "is_hub_id",
    "local_folder",
    "read_config",
    "read_weights",
    "weight_files",
    "weights_path",
]

CONFIG = "config.json"
#: Weight files in the order transformers prefers them: a single file before a sharded index.
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
#: A published config.json is a few kB; a bigger one is not a config.
MAX_CONFIG_BYTES = 1 << 20
# "owner/name": one slash between two Hub-legal names (huggingface_hub checks the rest).
_HUB_ID = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# A shard named by an index: a plain file name in the same folder, never a path.
_SHARD_NAME = re.compile(r"[A-Za-z0-9_.-]+\.(safetensors|bin)")


def cache_folder() -> Path:
    """The local Hugging Face hub cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, as huggingface_hub resolves it)."""
    return Path(constants.HF_HUB_CACHE)


def is_hub_id(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` is a Hub id, "owner/name" with Hub-legal characters, and not an existing local path."""
    text = os.fspath(spec)
    if not isinstance(text, str) or not _HUB_ID.fullmatch(text) or os.path.lexists(text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def local_folder(spec: str | os.PathLike) -> Path:
    """The folder, in Hugging Face layout, that ``spec`` names; nothing is downloaded.

    Args:
        spec: the path of a folder holding ``config.json``, or a Hub id ("owner/name") whose
            snapshot of revision "main" is in the local Hugging Face cache (``cache_folder()``).

    Returns:
        The folder (for a Hub id, ``<cache>/models--owner--name/snapshots/<commit>``).

    Raises:
        ValueError: a path that is not a folder or lacks config.json; a Hub id not in the
            cache (one line naming the id, the cache folder and the download command).
    """
    text = os.fspath(spec)
    if is_hub_id(text):
        config = try_to_load_from_cache(text, CONFIG, cache_dir=cache_folder())
        if not isinstance(config, str):  # None: not cached; _CACHED_NO_EXIST: the Hub said it has none
            raise ValueError(
                f"model {text!r} is not in the local Hugging Face cache ({cache_folder()}), nor a local path; "
                f"download it with `huggingface-cli download {text}` (or `hf download {text}`), or set "
                "HF_HUB_CACHE or HF_HOME to the cache that holds it"
            )
        return Path(config).parent
    folder = Path(text)
    if not folder.is_dir():
        state = "does not exist" if not os.path.lexists(folder) else "is not a folder"
        raise ValueError(f"{folder}: {state}; expected a model folder in Hugging Face layout (config.json and weights)")
    if not (folder / CONFIG).is_file():
        raise ValueError(
            f"{folder}: no {CONFIG}; expected a model folder in Hugging Face layout (config.json and weights)"
        )
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    """``folder/config.json``: a JSON object of at most ``MAX_CONFIG_BYTES``, keys unique, numbers finite.

    Raises:
        ValueError: one line naming the file: too big, not UTF-8 JSON, or not an object.
    """
    return _json_object(folder / CONFIG, MAX_CONFIG_BYTES, "a model's config.json is a few kB")


def weights_path(folder: Path) -> Path:
    """The weights file of ``folder``: the first of ``WEIGHTS`` present (an index for sharded weights).

    Raises:
        ValueError: none of them is a file in ``folder``; the message names the folder and ``WEIGHTS``.
    """
    for name in WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise ValueError(
        f"{folder}: no weights; expected one of {', '.join(WEIGHTS)} beside {CONFIG} (Hugging Face layout)"
    )


def folder_files(folder: Path) -> dict[str, Path]:
    """The files loading ``folder`` reads, by role, for the resume fingerprint: "config", "model"
    (the weights, or a sharded checkpoint's index) and "model-shard-<i>" for each shard, so that
    replacing any one of them is seen."""
    weights, *shards = weight_files(weights_path(folder))
    found = {"config": folder / CONFIG, "model": weights}
    return found | {f"model-shard-{i}": shard for i, shard in enumerate(shards, start=1)}


def weight_files(path: Path) -> list[Path]:
    """The files ``read_weights(path)`` reads: ``path``, and for an index the shards it names, in order."""
    if not path.name.endswith(".index.json"):
        return [path]
    return [path, *dict.fromkeys(path.parent / name for name in _weight_map(path).values())]


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a weights file, on the CPU, keyed as the file keys them.

    Args:
        path: a ``.safetensors`` file (read by the safetensors library, memory-mapped: the
            tensors are views of a private, copy-on-write mapping of the file, so nothing is
            read until used and nothing is copied), a ``.bin`` pickle (``torch.load`` with
            ``weights_only=True``, memory-mapped when it is a zip archive), or an
            ``.index.json`` naming shards of either kind in the same folder.

    Returns:
        {key: tensor}, tensors in their stored dtype and shape. Replace a file by renaming a
        new one over it, never by rewriting it in place, while its tensors are in use.

    Raises:
        ValueError: a file that is not what its name says, a pickle that would run code
            (nothing in it is run), keys that are not strings, values that are not tensors,
            an index naming a path or a key twice; one line naming the file.
    """
    if path.name.endswith(".index.json"):
        return _read_shards(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    state = load_torch_file(
        path,
        what="a PyTorch weights file",
        advice="save the model with safetensors, or torch.save just its state_dict()",
    )
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, expected a state dict {{name: tensor}}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{path}: entry {str(key)[:100]!r} is a {type(key).__name__} -> {type(value).__name__}, "
                "expected str -> tensor (a state dict)"
            )
    return dict(state)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors: views of the mapping safetensors makes (``UntypedStorage.from_file``)."""
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({str(err)[:200]}); re-download it") from err


def _read_shards(index: Path) -> dict[str, torch.Tensor]:
    """The tensors an index's shards hold, each key from the shard the index names for it."""
    weight_map = _weight_map(index)
    state: dict[str, torch.Tensor] = {}
    for shard in dict.fromkeys(weight_map.values()):
        for key, tensor in read_weights(index.parent / shard).items():
            if weight_map.get(key) != shard:
                raise ValueError(f"{index.parent / shard}: holds {key[:100]!r}, which {index.name} places elsewhere")
            state[key] = tensor
    absent = sorted(set(weight_map) - state.keys())
    if absent:
        raise ValueError(f"{index}: names {len(absent)} weight(s) its shards lack, e.g. {absent[0][:100]!r}")
    return state


def _weight_map(index: Path) -> dict[str, str]:
    """An index's ``weight_map`` {key: shard file name}, each name a plain file in the index's folder."""
    # An index lists every weight's name: ~100 kB for the largest published ESM-2.
    data = _json_object(index, 16 * MAX_CONFIG_BYTES, "a weights index is ~100 kB")
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index}: no 'weight_map' object {{weight name: shard file}}; re-download the model")
    kind = ".safetensors" if index.name.startswith("model.safetensors") else ".bin"
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not _SHARD_NAME.fullmatch(shard) or not shard.endswith(kind):
            raise ValueError(
                f"{index}: weight {key[:100]!r} is placed in {str(shard)[:100]!r}, expected the name of a {kind} "
                "file in the same folder"
            )
    return weight_map


def _json_object(path: Path, limit: int, usual: str) -> dict[str, Any]:
    """The JSON object in ``path``, of at most ``limit`` bytes (``usual``: what such a file weighs)."""
    with path.open("rb") as handle:  # an unreadable file raises OSError, which says so itself
        data = handle.read(limit + 1)  # bounded even if the file grows meanwhile
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit} bytes; {usual}")
    try:
        value = json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: not valid JSON ({detail[:200]}); re-download the model") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path}: holds a JSON {type(value).__name__}, expected an object")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (readers disagree on which wins)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        repeated = next(key for i, (key, _) in enumerate(pairs) if key in dict(pairs[:i]))
        raise ValueError(f"key {repeated[:100]!r} appears twice")
    return result


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
