"""Copies of an ESM-2 with injected activation outliers, to probe how a matmul precision copes.

Trained transformers grow a few hidden channels far larger than the rest; random weights
have none. Two edits put them in, on a few channels of a few layers, by factors 20 to 100:

* "norm-scale": the channels of both LayerNorms' weights scaled: outliers in the
  normalised inputs of QKV and fc1, which folding (``Fp8Levers.fold``) moves into the
  weights;
* "massive": the channels' rows of out_proj's and fc2's weights and biases scaled:
  "massive activations" in the residual stream itself, which no folding removes.

The reference for such a model is fair-esm's forward of the same copy.
"""

from __future__ import annotations

import copy
import math

import torch
from esm.model.esm2 import ESM2

__all__ = ["OUTLIERS", "outlier_layers", "with_outliers"]

OUTLIERS = ("norm-scale", "massive")


def outlier_layers(num_layers: int) -> list[int]:
    """The blocks edited: a quarter, half and three quarters of the way through."""
    return sorted({num_layers // 4, num_layers // 2, 3 * num_layers // 4})


@torch.no_grad()
def with_outliers(model: ESM2, kind: str, *, channels: int = 6, seed: int = 0) -> ESM2:
    """A deep copy of ``model`` with outliers of ``kind`` (one of ``OUTLIERS``); ``model`` is left as it is.

    ``channels`` hidden channels, drawn from ``seed``, scaled by factors from 20 to 100
    (geometrically spaced) in the blocks of ``outlier_layers``.
    """
    if kind not in OUTLIERS:
        raise ValueError(f"kind={kind!r} is unknown; choose one of {OUTLIERS}")
    out = copy.deepcopy(model)
    index = torch.randperm(model.embed_dim, generator=torch.Generator().manual_seed(seed))[:channels]
    factors = torch.logspace(math.log10(20), 2, channels)
    for i in outlier_layers(model.num_layers):
        layer = out.layers[i]
        if kind == "norm-scale":
            params = [(layer.self_attn_layer_norm.weight, 1), (layer.final_layer_norm.weight, 1)]
        else:
            linears = (layer.self_attn.out_proj, layer.fc2)
            params = [(m.weight, 2) for m in linears] + [(m.bias, 1) for m in linears]
        for param, ndim in params:
            scale = factors.to(param.device, param.dtype)
            rows = index.to(param.device)
            param[rows] *= scale if ndim == 1 else scale[:, None]
    return out
