"""ESM-2: its architecture table, checkpoint loading, tokenizer, packed forward and memory model."""

from pathlib import Path

from ..common.random_spec import RANDOM_PREFIX
from ..family import ModelFamily
from .architecture import ARCHITECTURES, MAX_LENGTH, alphabet, resolve_layers
from .loading import checkpoint_path, load_model, save_checkpoint
from .memory import auto_max_tokens
from .packed import PackedESM2
from .tokenizer import TOKENIZER, tokenizer


def owns(spec: str) -> bool:
    """Whether ``spec`` names an ESM-2: a fair-esm name, ``random:esm2...``, or a fair-esm ``.pt`` file."""
    return spec in ARCHITECTURES or spec.startswith(RANDOM_PREFIX + "esm2") or spec.endswith(".pt")


def files(spec: str) -> dict[str, Path]:
    """The checkpoint file ``spec`` loads (a fair-esm name's cached file), as "model"; none for ``random:``."""
    path = checkpoint_path(spec)
    return {} if path is None else {"model": path}


FAMILY = ModelFamily(
    name="esm2",
    owns=owns,
    tokenizer=tokenizer,
    load=load_model,
    resolve_layers=resolve_layers,
    packed=PackedESM2,
    max_tokens=auto_max_tokens,
    files=files,
    reads="protein",
    mean_includes_special_tokens=False,  # esm-extract's mean: residues only, BOS and EOS left out
)

__all__ = [
    "ARCHITECTURES",
    "FAMILY",
    "MAX_LENGTH",
    "TOKENIZER",
    "PackedESM2",
    "alphabet",
    "auto_max_tokens",
    "load_model",
    "owns",
    "resolve_layers",
    "save_checkpoint",
]
