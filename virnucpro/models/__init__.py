"""ESM-2 over packed sequences: loading fair-esm models, the packed forward, pooling."""

from .attention import BACKENDS, select_attention
from .kernels import KERNELS, select_kernels
from .loading import ARCHITECTURES, load_model, save_checkpoint
from .packed_esm2 import GELUS, PackedESM2, resolve_options
from .pooling import bos_pool, mean_pool, residue_rows
from .segments import segment_ids

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "GELUS",
    "KERNELS",
    "PackedESM2",
    "bos_pool",
    "load_model",
    "mean_pool",
    "residue_rows",
    "resolve_options",
    "save_checkpoint",
    "segment_ids",
    "select_attention",
    "select_kernels",
]
