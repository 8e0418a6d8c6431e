"""ESM-2: its architecture table, checkpoint loading, tokenizer, packed forward and memory model."""

from ..family import ModelFamily
from ..options import ForwardOptions
from .architecture import ARCHITECTURES, MAX_LENGTH, alphabet, resolve_layers
from .hf_layout import save_hf_folder
from .loading import load_model, save_checkpoint
from .memory import auto_max_tokens
from .packed import PackedESM2
from .specs import checkpoint_path, files, owns
from .tokenizer import TOKENIZER, tokenizer


FAMILY = ModelFamily(
    name="esm2",
    owns=owns,
    tokenizer=tokenizer,
    load=load_model,
    resolve_layers=resolve_layers,
    packed=PackedESM2,
    max_tokens=auto_max_tokens,
    files=files,
    resolve_options=ForwardOptions.resolve,
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
    "checkpoint_path",
    "load_model",
    "owns",
    "resolve_layers",
    "save_checkpoint",
    "save_hf_folder",
]
