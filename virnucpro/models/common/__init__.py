"""Parts of a packed forward that no model family owns: attention, kernels, matmuls, pooling, segments."""

from .attention import BACKENDS, AttentionFn, reference_attention, select_attention
from .kernels import KERNELS, Kernels, select_kernels
from .matmul import Linear, Matmul, NativeMatmul, Norm
from .pooling import POOLINGS, Pooling, bos_pool, get_pooling, mean_pool, residue_rows
from .segments import segment_ids

__all__ = [
    "BACKENDS",
    "KERNELS",
    "POOLINGS",
    "AttentionFn",
    "Kernels",
    "Linear",
    "Matmul",
    "NativeMatmul",
    "Norm",
    "Pooling",
    "bos_pool",
    "get_pooling",
    "mean_pool",
    "reference_attention",
    "residue_rows",
    "segment_ids",
    "select_attention",
    "select_kernels",
]
