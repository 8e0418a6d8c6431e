"""Packed protein language models: the ESM-2 family, and the generic parts any family shares.

``common/`` holds what does not depend on the model (attention backends, Triton kernels,
the matmul seam, pooling, segment maps, window merging); ``esm2/`` what does; ``registry`` maps a model
spec to its family; ``options`` the forward's options.
"""

from .common.attention import BACKENDS, select_attention
from .common.fp8 import Fp8Levers, fp8_selfcheck_cosine
from .common.kernels import KERNELS, select_kernels
from .common.pooling import POOLINGS, Pooling, WindowTensors, bos_pool, get_pooling, mean_pool, residue_rows
from .common.segments import segment_ids
from .common.windows import RowGroup, WindowMerger, window_partials
from .esm2 import ARCHITECTURES, PackedESM2, auto_max_tokens, load_model, resolve_layers, save_checkpoint
from .family import ModelFamily
from .options import GELUS, MATMULS, ForwardOptions
from .registry import FAMILIES, family_for

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "FAMILIES",
    "ForwardOptions",
    "Fp8Levers",
    "GELUS",
    "KERNELS",
    "MATMULS",
    "ModelFamily",
    "POOLINGS",
    "PackedESM2",
    "Pooling",
    "RowGroup",
    "WindowMerger",
    "WindowTensors",
    "auto_max_tokens",
    "bos_pool",
    "family_for",
    "fp8_selfcheck_cosine",
    "get_pooling",
    "load_model",
    "mean_pool",
    "residue_rows",
    "resolve_layers",
    "save_checkpoint",
    "segment_ids",
    "select_attention",
    "select_kernels",
    "window_partials",
]
