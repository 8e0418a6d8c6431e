"""ESM-2: its architecture table, checkpoint loading, packed forward and memory model."""

from ..family import ModelFamily, Vocabulary
from .architecture import (
    ARCHITECTURES,
    MAX_LENGTH,
    RESIDUES,
    SPECIAL_TOKENS_PER_SEQUENCE,
    alphabet,
    resolve_layers,
)
from .hf_layout import save_hf_folder
from .loading import load_model, save_checkpoint
from .memory import auto_max_tokens
from .packed import PackedESM2
from .specs import checkpoint_path, owns

VOCABULARY = Vocabulary(RESIDUES, SPECIAL_TOKENS_PER_SEQUENCE, MAX_LENGTH)

FAMILY = ModelFamily(
    name="esm2",
    vocabulary=VOCABULARY,
    load=load_model,
    batch_converter=lambda: alphabet().get_batch_converter(),
    resolve_layers=resolve_layers,
    packed=PackedESM2,
    max_tokens=auto_max_tokens,
)

__all__ = [
    "ARCHITECTURES",
    "FAMILY",
    "VOCABULARY",
    "PackedESM2",
    "alphabet",
    "auto_max_tokens",
    "checkpoint_path",
    "load_model",
    "owns",
    "resolve_layers",
    "save_checkpoint",
    "save_hf_folder",
]
