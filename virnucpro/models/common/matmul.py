"""The matmul seam: how a block's four linear layers hold their weights and multiply.

``_Block`` of a packed model calls only this interface, so a matmul precision is one
implementation of ``Matmul`` and nothing else in the model changes:

* ``prepare_weight`` copies a linear layer's weights once, when the packed model is
  built, into whatever form the implementation multiplies with;
* ``add_layer_norm`` produces a block's normalised input, in the form ``linear`` takes
  (an implementation that quantises activations fuses that into the LayerNorm here);
* ``linear`` and ``linear_gelu`` compute ``x @ W.T + b`` and ``GELU(x @ W.T + b)``.

``NativeMatmul`` multiplies in the compute dtype with cuBLAS, bias (and, with
``gelu="tanh"`` on CUDA, the GELU) in the matmul's epilogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .kernels import Kernels

__all__ = ["Linear", "Matmul", "NativeMatmul", "Norm", "copy_tensor"]


class Linear(NamedTuple):
    """One prepared linear layer: ``weight`` (out, in), ``bias`` (out,), and an
    implementation's extra state (e.g. per-output-channel scales), None for native."""

    weight: Tensor
    bias: Tensor
    scale: Tensor | None = None


class Norm(NamedTuple):
    """A copy of fair-esm's LayerNorm (torch's or apex's): weight (E,), bias (E,), eps."""

    weight: Tensor
    bias: Tensor
    eps: float


class Matmul(Protocol):
    name: str

    def prepare_weight(self, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Linear:
        """One layer from row blocks stacked in order (e.g. q, k, v): (out_i, in) and (out_i,) each."""
        ...

    def add_layer_norm(self, x: Tensor, delta: Tensor | None, norm: Norm) -> tuple[Tensor, Tensor]:
        """(x + delta, LayerNorm(x + delta)), the second in the form ``linear`` takes."""
        ...

    def linear(self, x: Tensor, layer: Linear) -> Tensor: ...

    def linear_gelu(self, x: Tensor, layer: Linear) -> Tensor: ...


class NativeMatmul:
    """Matmuls in the compute ``dtype`` on ``device``.

    ``gelu``: "exact" (erf, as fair-esm) or "tanh" (the tanh approximation; on CUDA it
    runs in cuBLASLt's epilogue of the fc1 matmul, saving a pass over the 4E-wide
    activations).
    """

    name = "native"

    def __init__(self, dtype: torch.dtype, device: torch.device, kernels: Kernels, gelu: str) -> None:
        self.dtype, self.device, self.kernels, self.gelu = dtype, device, kernels, gelu

    def prepare_weight(self, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Linear:
        return Linear(self._stack(weights), self._stack(biases))

    def add_layer_norm(self, x: Tensor, delta: Tensor | None, norm: Norm) -> tuple[Tensor, Tensor]:
        return self.kernels.add_layer_norm(x, delta, *norm)

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
            out[start : start + source.shape[0]].copy_(source)
            start += source.shape[0]
        return out


def copy_tensor(source: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A new tensor holding ``source`` in ``dtype`` on ``device``; never a view of it."""
    return torch.empty(source.shape, dtype=dtype, device=device).copy_(source)
