"""Parts of a packed forward that no model family owns: attention (ALiBi included), kernels, matmuls,
pooling, segments, window merging; the packed model's base, checkpoint checks, Hugging Face folders."""

from .alibi import alibi_slopes
from .attention import ALIBI_BACKENDS, BACKENDS, AttentionFn, reference_attention, select_attention
from .fp8 import Fp8Levers, Fp8Matmul
from .kernels import KERNELS, Kernels, select_kernels
from .matmul import Linear, Matmul, NativeMatmul, Norm, Quantised
from .memory import token_budget
from .packed_model import PackedModel
from .pooling import POOLINGS, Pooling, WindowTensors, bos_pool, get_pooling, mean_pool, residue_rows
from .random_spec import RANDOM_PREFIX
from .segments import segment_ids
from .windows import RowGroup, WindowMerger, window_partials

__all__ = [
    "ALIBI_BACKENDS",
    "BACKENDS",
    "KERNELS",
    "POOLINGS",
    "RANDOM_PREFIX",
    "AttentionFn",
    "Fp8Levers",
    "Fp8Matmul",
    "Kernels",
    "Linear",
    "Matmul",
    "NativeMatmul",
    "Norm",
    "PackedModel",
    "Pooling",
    "Quantised",
    "RowGroup",
    "WindowMerger",
    "WindowTensors",
    "alibi_slopes",
    "bos_pool",
    "get_pooling",
    "mean_pool",
    "reference_attention",
    "residue_rows",
    "segment_ids",
    "select_attention",
    "select_kernels",
    "token_budget",
    "window_partials",
]
