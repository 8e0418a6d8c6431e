"""The matmul seam: how a block's four linear layers hold their weights and multiply.

``_Block`` of a packed model calls only this interface, so a matmul precision is one
implementation of ``Matmul`` and nothing else in the model changes:

* ``prepare_weight`` copies a linear layer's weights once, when the packed model is
  built, into whatever form the implementation multiplies with; ``prepare_norm_linear``
  does so for a LayerNorm and the layer that reads its output together (an
  implementation may fold the norm's per-channel scale into the weights). ``role`` names
  which of a block's four layers it is (``ROLES``), for implementations that treat
  them differently;
* ``add_layer_norm`` produces a block's normalised input, in the form ``linear`` takes
  (an implementation that quantises activations fuses that into the LayerNorm here);
* ``linear`` and ``linear_gelu`` compute ``x @ W.T + b`` and ``GELU(x @ W.T + b)``; the
  latter's result, too, is in the form ``linear`` takes.

Each half of a block (attention: LayerNorm, QKV, out_proj; MLP: LayerNorm, fc1, fc2)
computes in one implementation, and a model may give its blocks and halves different
ones (``fp8.block_matmuls``): between them the residual stream is the compute dtype, or float32
(``options.RESIDUALS``) with native matmuls.

``NativeMatmul`` multiplies in the compute dtype with cuBLAS, bias (and, with
``gelu="tanh"`` on CUDA, the GELU) in the matmul's epilogue. ``fp8.Fp8Matmul``
multiplies e4m3 weights with activations quantised per row (``Quantised``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .kernels import Kernels
from .upload import upload_into

__all__ = ["ROLES", "Linear", "LinearInput", "Matmul", "NativeMatmul", "Norm", "Quantised", "copy_norm", "copy_tensor"]

#: A pre-LayerNorm block's four linear layers: fused QKV, attention output, MLP in and out.
ROLES = ("qkv", "out", "fc1", "fc2")


class Linear(NamedTuple):
    """One prepared linear layer: ``weight`` (out, in), ``bias`` (out,) or None for a layer
    without one, and an implementation's extra state (e.g. per-output-channel scales), None
    for native."""

    weight: Tensor
    bias: Tensor | None
    scale: Tensor | None = None


class Norm(NamedTuple):
    """A LayerNorm's parameters (fair-esm's, torch's or apex's): weight (E,), bias (E,), eps."""

    weight: Tensor
    bias: Tensor
    eps: float


class Quantised(NamedTuple):
    """Rows quantised with one scale each: row i stands for ``codes[i].float() * scale[i]``."""

    codes: Tensor  # (M, K) float8_e4m3fn, contiguous
    scale: Tensor  # (M, 1) float32, contiguous


#: What ``linear`` multiplies: rows in the compute dtype, or already quantised.
LinearInput = Tensor | Quantised


class Matmul(Protocol):
    name: str

    def prepare_weight(self, weights: Sequence[Tensor], biases: Sequence[Tensor] | None, role: str) -> Linear:
        """One layer from row blocks stacked in order (e.g. q, k, v): (out_i, in) and (out_i,) each;
        ``biases`` None for a layer without bias (``NativeMatmul`` only)."""
        ...

    def prepare_norm_linear(
        self, norm: Norm, weights: Sequence[Tensor], biases: Sequence[Tensor], role: str
    ) -> tuple[Norm, Linear]:
        """A LayerNorm (the source's parameters) and the layer reading its output; same function."""
        ...

    def add_layer_norm(self, x: Tensor, delta: Tensor | None, norm: Norm) -> tuple[Tensor, LinearInput]:
        """(x + delta, LayerNorm(x + delta)), the second in the form ``linear`` takes."""
        ...

    def linear(self, x: LinearInput, layer: Linear) -> Tensor: ...

    def linear_gelu(self, x: LinearInput, layer: Linear) -> LinearInput: ...


class NativeMatmul:
    """Matmuls in the compute ``dtype`` on ``device``.

    ``gelu``: "exact" (erf, as fair-esm) or "tanh" (the tanh approximation; on CUDA it
    runs in cuBLASLt's epilogue of the fc1 matmul, saving a pass over the 4E-wide
    activations).
    """

    name = "native"

    def __init__(self, dtype: torch.dtype, device: torch.device, kernels: Kernels, gelu: str) -> None:
        self.dtype, self.device, self.kernels, self.gelu = dtype, device, kernels, gelu

    def prepare_weight(self, weights: Sequence[Tensor], biases: Sequence[Tensor] | None, role: str = "") -> Linear:
        return Linear(self._stack(weights), None if biases is None else self._stack(biases))

    def prepare_norm_linear(
        self, norm: Norm, weights: Sequence[Tensor], biases: Sequence[Tensor], role: str = ""
    ) -> tuple[Norm, Linear]:
        return copy_norm(norm, self.dtype, self.device), self.prepare_weight(weights, biases, role)

    def add_layer_norm(self, x: Tensor, delta: Tensor | None, norm: Norm) -> tuple[Tensor, Tensor]:
        # x may be a float32 residual stream (``options.RESIDUALS``); the matmuls read the compute dtype.
        return self.kernels.add_layer_norm(x, delta, *norm, out_dtype=self.dtype)

    def linear(self, x: Tensor, layer: Linear) -> Tensor:
        return F.linear(x, layer.weight, layer.bias)

    def linear_gelu(self, x: Tensor, layer: Linear) -> Tensor:
        if self.gelu == "exact":
            return F.gelu(F.linear(x, layer.weight, layer.bias))  # erf, as fair-esm
        if x.is_cuda:  # cuBLASLt's GELU epilogue computes the tanh approximation
            return torch._addmm_activation(layer.bias, x, layer.weight.t(), use_gelu=True)
        return F.gelu(F.linear(x, layer.weight, layer.bias), approximate="tanh")

    def _stack(self, sources: Sequence[Tensor]) -> Tensor:
        """``torch.cat(sources)`` in dtype on device, each source rounded once, without a float32 concatenation."""
        if len(sources) == 1:
            return copy_tensor(sources[0], self.dtype, self.device)
        out = torch.empty(
            (sum(t.shape[0] for t in sources), *sources[0].shape[1:]), dtype=self.dtype, device=self.device
        )
        start = 0
        for source in sources:
            upload_into(out[start : start + source.shape[0]], source)
            start += source.shape[0]
        return out


def copy_norm(norm: Norm, dtype: torch.dtype, device: torch.device) -> Norm:
    """``norm`` with its weight and bias copied into ``dtype`` on ``device``."""
    return Norm(copy_tensor(norm.weight, dtype, device), copy_tensor(norm.bias, dtype, device), norm.eps)


def copy_tensor(source: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A new tensor holding ``source`` in ``dtype`` on ``device``; never a view of it."""
    out = torch.empty(source.shape, dtype=dtype, device=device)
    upload_into(out, source)
    return out
