"""FP8 matmuls behind the matmul seam: e4m3 weights and activations, bf16 everything else.

Weights are quantised once, per output channel (one float32 scale per row of W, amax /
448), when the packed model is built. Activations are quantised per row (token) right
before each matmul, in the pass that produces them: the residual add + LayerNorm before
QKV and fc1, the GELU after fc1 (before fc2), a plain quantising pass over the attention
output (before out_proj). ``torch._scaled_mm`` multiplies with both sets of scales and
the bias in its epilogue and writes bf16. Attention, LayerNorm arithmetic, the residual
stream and pooling stay in bf16 / float32.

This module holds the quantisation arithmetic in torch, which is the reference for the
Triton kernels of ``_triton_fp8`` and the path on the CPU or with ``kernels="torch"``,
and ``Fp8Matmul``. Levers that trade speed for accuracy are one frozen ``Fp8Levers``
(``fp8_levers``). Each half of a block, attention and MLP, computes in one ``Matmul``
(``block_matmuls``), so a half kept in bf16 is a ``NativeMatmul``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .fp8_levers import Fp8Levers, fold_layer_norm
from .kernels import Kernels
from .matmul import Linear, LinearInput, Matmul, NativeMatmul, Norm, Quantised, copy_norm, copy_tensor

# Batches with fewer token rows are padded to this many before an FP8 matmul: cuBLASLt
# found no algorithm for the row-wise scaled product at small M with K = 10240 on the H200.
_MIN_ROWS = 1024

__all__ = [
    "E4M3",
    "E4M3_MAX",
    "Fp8Levers",
    "Fp8Matmul",
    "block_matmuls",
    "cpu_fp8_for_tests",
    "fold_layer_norm",
    "fp8_selfcheck_cosine",
    "fp8_unsupported",
    "gelu_quantise_torch",
    "layer_norm_quantise_torch",
    "quantise_rows",
]

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0  # torch.finfo(E4M3).max
# A row of zeros has amax 0; clamping gives it a positive scale, with which it codes as zeros.
MIN_AMAX = 1e-12
_CPU_FOR_TESTS = False


def quantise_rows(x: Tensor) -> Quantised:
    """Each row of x (M, K), any float dtype, as e4m3 codes with one float32 scale.

    scale = amax(|row|) * (1 / 448) and codes = round(row * (1 / scale)), so the largest
    element of a row maps to ±448; every element's error is at most 2^-4 of its magnitude
    (3 mantissa bits), or half the subnormal step, 2^-10 × scale. The Triton kernels do
    this arithmetic in this order, each step one IEEE float32 rounding, so their codes are
    bitwise those of this function for the same float32 input.
    """
    x = x.float()
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(MIN_AMAX) * (1.0 / E4M3_MAX)
    codes = (x * scale.reciprocal()).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return Quantised(codes, scale)


def layer_norm_quantise_torch(
    x: Tensor, delta: Tensor | None, weight: Tensor, bias: Tensor, eps: float
) -> tuple[Tensor, Quantised]:
    """(s, quantise_rows(LayerNorm(s))), s = x + delta; x, delta (T, E) bf16; weight, bias (E,).

    As the Triton kernel: s is stored rounded to x's dtype, and the float32 sum is normalised.
    """
    total = x.float() if delta is None else x.float() + delta.float()
    normed = F.layer_norm(total, (total.shape[-1],), weight.float(), bias.float(), eps)
    return (x if delta is None else total.to(x.dtype)), quantise_rows(normed)


def gelu_quantise_torch(y: Tensor, gelu: str) -> Quantised:
    """quantise_rows(GELU(y)) in float32; y (T, N); gelu "exact" (erf) or "tanh"."""
    return quantise_rows(F.gelu(y.float(), approximate="tanh" if gelu == "tanh" else "none"))


class _Ops(NamedTuple):
    """The three quantising passes, in torch (this module) or Triton (``_triton_fp8``), same signatures."""

    add_layer_norm_quantise: Callable[[Tensor, Tensor | None, Tensor, Tensor, float], tuple[Tensor, Quantised]]
    quantise_rows: Callable[[Tensor], Quantised]
    gelu_quantise: Callable[[Tensor, str], Quantised]


class Fp8Matmul:
    """``Matmul`` in FP8 (e4m3) on CUDA GPUs with FP8 tensor cores, bf16 around the matmuls.

    On the CPU only inside ``cpu_fp8_for_tests``: torch's CPU ``_scaled_mm`` does the same
    arithmetic, slowly. ``linear`` takes bf16 rows (quantised first) or ``Quantised`` ones.

    Args:
        device: where the weights live and the products run.
        kernels: the model's kernel set; with "triton" the fused kernels of ``_triton_fp8``
            quantise, else this module's torch arithmetic.
        gelu: "exact" (erf) or "tanh", as ``NativeMatmul`` takes it.
        levers: ``Fp8Levers``; ``bf16_ends`` and ``bf16_attention`` are the caller's (``block_matmuls``).
    """

    name = "fp8"

    def __init__(self, device: torch.device | str, kernels: Kernels, gelu: str, levers: Fp8Levers) -> None:
        self.device, self.gelu, self.levers = torch.device(device), gelu, levers
        self._native = NativeMatmul(torch.bfloat16, self.device, kernels, gelu)  # layers kept in bf16
        self._ops = _select_ops(kernels.name)
        self.bias_in_epilogue = _bias_in_epilogue(self.device)

    def prepare_weight(self, weights: Sequence[Tensor], biases: Sequence[Tensor], role: str) -> Linear:
        """e4m3 codes (N, K) contiguous, bias (N,) bf16, scale (1, N) float32: one per output channel."""
        if role == "fc2" and self.levers.bf16_fc2:
            return self._native.prepare_weight(weights, biases, role)
        weight = torch.cat([copy_tensor(w, torch.float32, self.device) for w in weights])  # (N, K)
        if weight.shape[0] % 16 or weight.shape[1] % 16:
            raise ValueError(
                "matmul='fp8' (CLI: --dtype fp8) needs layer widths divisible by 16 (torch._scaled_mm), got a "
                f"{role} weight of shape {tuple(weight.shape)}; use matmul='native' (CLI: --dtype bf16)"
            )
        codes, scale = quantise_rows(weight)
        bias = torch.cat([copy_tensor(b, torch.float32, self.device) for b in biases]).to(torch.bfloat16)
        return Linear(codes, bias, scale.view(1, -1))

    def prepare_norm_linear(
        self, norm: Norm, weights: Sequence[Tensor], biases: Sequence[Tensor], role: str
    ) -> tuple[Norm, Linear]:
        if self.levers.fold is not None:
            norm, weights, biases = fold_layer_norm(norm, weights, biases, self.levers.fold)
        return copy_norm(norm, torch.bfloat16, self.device), self.prepare_weight(weights, biases, role)

    def add_layer_norm(self, x: Tensor, delta: Tensor | None, norm: Norm) -> tuple[Tensor, Quantised]:
        return self._ops.add_layer_norm_quantise(x, delta, *norm)

    def linear(self, x: LinearInput, layer: Linear) -> Tensor:
        """x (T, K) bf16 or ``Quantised`` => (T, N) bf16."""
        if layer.scale is None:  # kept in bf16 (Fp8Levers.bf16_fc2)
            if isinstance(x, Quantised):
                raise TypeError("a layer kept in bf16 got quantised input; its producer must write bf16")
            return self._native.linear(x, layer)
        if not isinstance(x, Quantised):
            x = self._ops.quantise_rows(x)
        rows = x.codes.shape[0]
        if rows < _MIN_ROWS:  # cuBLASLt has no row-wise FP8 algorithm for some small M (3B's fc2, K = 10240)
            x = Quantised(F.pad(x.codes.view(torch.uint8), (0, 0, 0, _MIN_ROWS - rows)).view(x.codes.dtype),
                          F.pad(x.scale, (0, 0, 0, _MIN_ROWS - rows), value=1.0))  # fmt: skip
        bias = layer.bias if self.bias_in_epilogue else None
        out = torch._scaled_mm(
            x.codes, layer.weight.t(), scale_a=x.scale, scale_b=layer.scale, bias=bias,
            out_dtype=torch.bfloat16, use_fast_accum=self.levers.fast_accum,
        )[:rows]  # fmt: skip
        return out if bias is not None else out.add_(layer.bias)

    def linear_gelu(self, x: LinearInput, layer: Linear) -> LinearInput:
        """GELU(x @ W.T + b), quantised for fc2, or bf16 with ``levers.bf16_fc2``."""
        y = self.linear(x, layer)  # (T, N) bf16, bias included
        if self.levers.bf16_fc2:
            return F.gelu(y, approximate="tanh" if self.gelu == "tanh" else "none")
        return self._ops.gelu_quantise(y, self.gelu)


def _select_ops(kernels: str) -> _Ops:
    if kernels == "triton":
        from . import _triton_fp8

        return _Ops(_triton_fp8.add_layer_norm_quantise, _triton_fp8.quantise_rows, _triton_fp8.gelu_quantise)
    return _Ops(layer_norm_quantise_torch, quantise_rows, gelu_quantise_torch)


@functools.cache
def _bias_in_epilogue(device: torch.device) -> bool:
    """Whether this torch's ``_scaled_mm`` takes a bias with row-wise scales on ``device``.

    Through cuBLASLt (12.9 and later on Hopper) or CUTLASS it does; where it refuses, the
    bias is added after the product, one more pass over the output. Tried once per
    device on a 16 x 16 product, when the first model is built, never in a forward.
    """
    codes = torch.zeros(16, 16, dtype=E4M3, device=device)
    ones = torch.ones(16, 1, device=device)
    bias = torch.zeros(16, dtype=torch.bfloat16, device=device)
    try:
        torch._scaled_mm(codes, codes.t(), scale_a=ones, scale_b=ones.view(1, -1), bias=bias, out_dtype=torch.bfloat16)
    except RuntimeError:
        return False
    return True


def block_matmuls(
    matmul: str,
    levers: Fp8Levers,
    num_layers: int,
    dtype: torch.dtype,
    device: torch.device,
    kernels: Kernels,
    gelu: str,
) -> list[tuple[Matmul, Matmul]]:
    """(attention half, MLP half) ``Matmul`` of each of a model's ``num_layers`` blocks, in order.

    "native": ``NativeMatmul`` in ``dtype`` everywhere. "fp8": one ``Fp8Matmul`` shared by
    the blocks; ``NativeMatmul`` (bf16) for both halves of the first and last block with
    ``levers.bf16_ends``, and for every attention half with ``levers.bf16_attention``.
    """
    native = NativeMatmul(dtype, device, kernels, gelu)
    if matmul == "native":
        return [(native, native)] * num_layers
    if matmul != "fp8":
        raise ValueError(f"matmul must be 'native' or matmul='fp8' (CLI: --dtype fp8), got {matmul!r}")
    fp8 = Fp8Matmul(device, kernels, gelu, levers)
    ends = {0, num_layers - 1} if levers.bf16_ends else set()
    attention = native if levers.bf16_attention else fp8
    return [(native, native) if i in ends else (attention, fp8) for i in range(num_layers)]


def fp8_unsupported(device: torch.device | str, dtype: torch.dtype) -> str | None:
    """Why ``matmul="fp8"`` cannot run on ``device`` computing in ``dtype``; None where it can."""
    device = torch.device(device)
    if dtype != torch.bfloat16:
        return (
            f"matmul='fp8' computes in bfloat16 around its FP8 matmuls, not in {dtype}; "
            "build the model with dtype=torch.bfloat16 (the CLI's --dtype fp8 does)"
        )
    if device.type == "cuda" and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= (8, 9):
            return None
        what = f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    elif device.type == "cpu" and _CPU_FOR_TESTS:
        return None
    else:
        what = str(device)
    return (
        "matmul='fp8' (CLI: --dtype fp8) needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9, "
        f"e.g. H100/H200); this is {what}; use matmul='native' (CLI: --dtype bf16)"
    )


@contextlib.contextmanager
def cpu_fp8_for_tests() -> Iterator[None]:
    """Within it, ``matmul="fp8"`` is accepted on the CPU, where torch's ``_scaled_mm`` does
    the same arithmetic slowly: for tests and benchmark smoke runs, not for users."""
    global _CPU_FOR_TESTS
    previous, _CPU_FOR_TESTS = _CPU_FOR_TESTS, True
    try:
        yield
    finally:
        _CPU_FOR_TESTS = previous


def fp8_selfcheck_cosine(fp8_pooled: Tensor, bf16_pooled: Tensor) -> tuple[Tensor, Tensor]:
    """(min, mean) over sequences of the cosine between FP8 and bf16 pooled embeddings.

    Args:
        fp8_pooled, bf16_pooled: (N, E), any float dtype, same device: the same N sequences.

    Returns:
        Two 0-dim float32 tensors on that device; nothing synchronises until they are read.
    """
    if fp8_pooled.ndim != 2 or fp8_pooled.shape != bf16_pooled.shape:
        raise ValueError(
            f"fp8_pooled {tuple(fp8_pooled.shape)} and bf16_pooled {tuple(bf16_pooled.shape)} must be "
            "(N, E) embeddings of the same sequences"
        )
    cosine = F.cosine_similarity(fp8_pooled.float(), bf16_pooled.float(), dim=1)
    return cosine.min(), cosine.mean()
