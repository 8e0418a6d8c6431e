"""The packed forward's work around its cuBLAS matmuls, as Triton kernels for CUDA and as plain torch.

Three operations sit around the matmuls of the blocks, each in two implementations
with the same signature: ``add_layer_norm`` (the residual add fused with the next
LayerNorm), ``rotary`` (rotary embedding of q and k, read straight from the fused
QKV projection; ESM-2) and ``gated_linear`` (a gated linear unit: the gate | value
projection and its GELU(gate) * value; DNABERT-S). ``add_layer_norm_torch``,
``rotary_torch`` and ``gated_linear_torch`` run anywhere and are the reference;
``_triton.add_layer_norm`` and ``_triton.rotary`` run on CUDA and make one pass over memory
each, in float32 registers, and ``_triton_gated_linear.gated_linear`` computes GELU(gate) * value
in its matmul's epilogue, so the (T, 2I) product never reaches memory. ``select_kernels`` picks a set.

The Triton kernels replace ``torch.compile``-generated code that read the residual
stream two or three times per LayerNorm (``benchmarks/results/forward_variants.json``).
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("triton", "torch")


class AddLayerNorm(Protocol):
    def __call__(
        self,
        x: Tensor,
        delta: Tensor | None,
        weight: Tensor,
        bias: Tensor,
        eps: float,
        out_dtype: torch.dtype | None = None,
    ) -> tuple[Tensor, Tensor]: ...


class Rotary(Protocol):
    def __call__(
        self, qkv: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, heads: int
    ) -> tuple[Tensor, Tensor, Tensor]: ...


class GatedLinear(Protocol):
    def __call__(self, x: Tensor, weight: Tensor, approximate: str) -> Tensor: ...


class Kernels(NamedTuple):
    name: str
    add_layer_norm: AddLayerNorm
    rotary: Rotary
    gated_linear: GatedLinear


def add_layer_norm_torch(
    x: Tensor,
    delta: Tensor | None,
    weight: Tensor,
    bias: Tensor,
    eps: float,
    out_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """(s, LayerNorm(s)) with s = x + delta (x itself when delta is None); x, delta (T, E).

    s is in x's dtype, LayerNorm(s) in ``out_dtype`` (default x's). With weight and bias in
    x's dtype, s is rounded to x's dtype before the LayerNorm, as eager PyTorch does (ESM-2:
    fair-esm's numbers). Otherwise the LayerNorm is the Triton kernel's: the float32 sum
    normalised as computed, with float32 parameters, only s and the result rounded (DNABERT,
    with float32 parameters; ESM-2's float32 residual stream, with x in float32 and the
    compute dtype's parameters).
    """
    out_dtype = x.dtype if out_dtype is None else out_dtype
    if weight.dtype == x.dtype == out_dtype:
        if delta is not None:
            x = x + delta
        return x, F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    total = x.float() if delta is None else x.float() + delta.float()
    normed = F.layer_norm(total, (x.shape[-1],), weight.float(), bias.float(), eps)
    return total.to(x.dtype), normed.to(out_dtype)


def rotary_torch(qkv: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split the fused projection and rotate q and k over the full head dim, in float32.

    Args:
        qkv: (T, 3E), q | k | v, each E = heads × D wide (head-major).
        positions: (T,) int, each row's position within its sequence.
        cos, sin: (P, D / 2) float32 tables, row p for position p.
        heads: H.

    Returns:
        q, k: (T, H, D) contiguous, rotated; v: (T, H, D), a view of ``qkv``.
    """
    total = qkv.shape[0]
    q, k, v = qkv.view(total, 3, heads, -1).unbind(1)
    cos = torch.cat((cos, cos), dim=-1)[positions][:, None, :]  # (T, 1, D), broadcast over heads
    sin = torch.cat((sin, sin), dim=-1)[positions][:, None, :]

    def rotate(x: Tensor) -> Tensor:
        x32 = x.float()
        x1, x2 = x32.chunk(2, dim=-1)
        return (x32 * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)

    return rotate(q), rotate(k), v


def gated_gelu_torch(x: Tensor, approximate: str) -> Tensor:
    """GELU(gate) * value of a gated linear unit, in ``x``'s dtype.

    Args:
        x: (T, 2I), gate | value: columns 0..I-1 are the gate, I..2I-1 the value.
        approximate: "none" (erf, exact) or "tanh", as ``F.gelu`` takes it.

    Returns:
        (T, I), contiguous.
    """
    gate, value = x.chunk(2, dim=-1)
    return F.gelu(gate, approximate=approximate) * value


def gated_linear_torch(x: Tensor, weight: Tensor, approximate: str) -> Tensor:
    """A gated linear unit without bias: x (T, K), weight (2I, K), gate rows then value rows => (T, I),
    ``gated_gelu_torch(x @ weight.T)``: the product rounded to x's dtype, then the GELU."""
    return gated_gelu_torch(F.linear(x, weight), approximate)


def triton_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("triton") is not None


def select_kernels(name: str, device: torch.device | str) -> Kernels:
    """The kernel set for ``name``: "auto" (Triton on CUDA when installed, else torch), "triton" or "torch"."""
    device = torch.device(device)
    if name == "auto":
        name = "triton" if device.type == "cuda" and triton_available() else "torch"
    if name == "torch":
        return Kernels("torch", add_layer_norm_torch, rotary_torch, gated_linear_torch)
    if name != "triton":
        raise ValueError(f"kernels (CLI: --kernels) must be 'auto' or one of {KERNELS}, got {name!r}")
    if device.type != "cuda" or not triton_available():
        raise ValueError(
            f"kernels='triton' (CLI: --kernels triton) needs CUDA and the triton package, not {device} "
            f"(triton {'found' if importlib.util.find_spec('triton') else 'missing'}); use kernels='torch' "
            "(CLI: --kernels torch) or kernels='auto' (CLI: --kernels auto)"
        )
    from . import _triton, _triton_gated_linear

    return Kernels("triton", _triton.add_layer_norm, _triton.rotary, _triton_gated_linear.gated_linear)
