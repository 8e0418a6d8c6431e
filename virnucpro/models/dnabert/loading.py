"""Load DNABERT models (a local folder, a Hub id in the local cache, or ``random:dnabert-s``), offline and safely.

A folder in Hugging Face layout holds config.json, tokenizer.json and the weights
(model.safetensors or pytorch_model.bin, maybe sharded): ``common.hub`` finds and reads them
without the network and without running anything (pickles only through
``weights_only=True``; the ``.py`` files such folders ship are never imported). Everything is
checked before anything is built (``checkpoint_format``, ``DNATokenizer``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..common import hub
from ..common.random_spec import RANDOM_PREFIX, random_name, spec_text, warn_random
from ..common.upload import placed
from .architecture import DNABERT_S, Config
from .checkpoint_format import checked_state, read_config
from .random_tokenizer import random_tokenizer
from .tokenizer import TOKENIZER, DNATokenizer
from .weights import DNABERTWeights, random_state

__all__ = ["RANDOM_NAMES", "files", "load", "owns", "tokenizer"]

#: ``random:<name>`` specs of this family, and the architecture each builds.
RANDOM_NAMES: dict[str, Config] = {"dnabert-s": DNABERT_S}
_ACCEPTED = (
    "pass a DNABERT-2 / DNABERT-S model folder (config.json, tokenizer.json, model.safetensors or "
    "pytorch_model.bin), a Hub id cached locally such as 'zhihan1996/DNABERT-S', or "
    f"{', '.join(repr(RANDOM_PREFIX + name) for name in RANDOM_NAMES)}"
)


def owns(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a DNABERT model: ``random:dnabert-s``; a folder (or cached Hub id) whose
    config.json says model_type "bert"; an uncached Hub id with "dnabert" in its name (so that the
    error says how to download it). Never raises, never touches the network."""
    text = spec_text(spec)
    if text is None:
        return False
    name = random_name(text)
    if name is not None:
        return name in RANDOM_NAMES
    try:
        config = hub.read_config(hub.local_folder(text))
    except (ValueError, OSError):
        return hub.is_hub_id(text) and "dnabert" in text.lower()
    return config.get("model_type") == "bert"


def load(
    spec: str | os.PathLike,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = torch.float32,
) -> tuple[DNABERTWeights, DNATokenizer]:
    """A DNABERT model's weights and its tokenizer.

    Args:
        spec: one of
            - the path of a folder in Hugging Face layout: config.json, tokenizer.json, and
              model.safetensors or pytorch_model.bin (or a sharded index of either);
            - a Hub id such as "zhihan1996/DNABERT-S", found in the local Hugging Face cache
              (never downloaded: the error says how to download it);
            - "random:dnabert-s": DNABERT-S's shape with random weights (``seed``) and a
              byte-pair tokenizer learnt from the bundled DNA (``random_tokenizer``); its
              embeddings are meaningless, for tests, demos and benchmarks only (it warns).
        seed: the random weights' seed; unused otherwise.
        device: where a random model is built or a loaded one's weights are put.
        dtype: the weights' dtype. None keeps each tensor's stored dtype and, on the CPU,
            copies nothing: the weights ARE the file's memory-mapped tensors (a private,
            copy-on-write mapping), the fast start for ``PackedDNABERT``, which copies them to
            the device in its own dtype. Random weights are float32 for None.

    Returns:
        (``DNABERTWeights`` with ``num_layers``, ``embed_dim``, ``config``; ``DNATokenizer``).

    Raises:
        ValueError: an unknown spec; a folder, config, tokenizer or weights file that is not
            a well-formed DNABERT model (one line naming the file and what is wrong); a Hub id
            not in the local cache.
    """
    device = torch.device(device)
    text = _spec_text(spec)
    name = random_name(text)
    if name is not None:
        config = _random_config(name)
        warn_random(name, seed, stacklevel=2)
        state = random_state(config, seed, device)
        model = DNABERTWeights(config, {name: t.to(dtype or t.dtype) for name, t in state.items()})
        return model, random_tokenizer(text)
    folder = hub.local_folder(text)
    config_path = folder / hub.CONFIG
    config = read_config(hub.read_config(folder), config_path)
    tokens = DNATokenizer.from_file(_tokenizer_path(folder))
    if tokens.vocab_size > config.vocab_size:
        raise ValueError(
            f"{folder / TOKENIZER}: gives ids up to {tokens.vocab_size - 1}, but {config_path} has vocab_size = "
            f"{config.vocab_size}; the tokenizer and the model disagree"
        )
    path = hub.weights_path(folder)
    state = checked_state(hub.read_weights(path), config, path)
    return DNABERTWeights(config, {name: placed(t, dtype, device) for name, t in state.items()}), tokens


def tokenizer(spec: str | os.PathLike) -> DNATokenizer:
    """The tokenizer of the model ``spec`` names (see ``load``), without reading its weights."""
    text = _spec_text(spec)
    name = random_name(text)
    if name is not None:
        _random_config(name)
        return random_tokenizer(text)
    return DNATokenizer.from_file(_tokenizer_path(hub.local_folder(text)))


def files(spec: str | os.PathLike) -> dict[str, Path]:
    """The files ``load(spec)`` reads, by role, for the resume fingerprint: "config", "tokenizer",
    "model" (the weights, or a sharded checkpoint's index) and "model-shard-<i>" for its shards;
    empty for ``random:`` specs, which read no model file. A Hub id's files are its cached snapshot's."""
    text = _spec_text(spec)
    if random_name(text) is not None:
        return {}
    folder = hub.local_folder(text)
    return hub.folder_files(folder) | {"tokenizer": _tokenizer_path(folder)}


def _spec_text(spec: str | os.PathLike) -> str:
    text = spec_text(spec)
    if text is None:
        raise TypeError(f"model must be a str or os.PathLike, got {type(spec).__name__}; {_ACCEPTED}")
    return text


def _random_config(name: str) -> Config:
    """The architecture ``random:<name>`` builds; ``ValueError`` for a name of no DNABERT."""
    if name not in RANDOM_NAMES:
        raise ValueError(f"unknown model {RANDOM_PREFIX + name!r}; {_ACCEPTED}")
    return RANDOM_NAMES[name]


def _tokenizer_path(folder: Path) -> Path:
    path = folder / TOKENIZER
    if not path.is_file():
        raise ValueError(f"{folder}: no {TOKENIZER}; a DNABERT model folder holds its tokenizer beside config.json")
    return path
