"""Representation layer numbers, as fair-esm numbers them: 0 the embedding, k the output of block k."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["resolve_layer_numbers"]


def resolve_layer_numbers(
    requested: Sequence[int] | None, num_layers: int, *, argument: str, last: str
) -> tuple[int, ...]:
    """``requested`` as layer numbers in 0..num_layers, negative ones counted from the end (-1 = last).

    None means ``(num_layers,)``. Raises ``ValueError`` naming the bad values and the valid range;
    ``argument`` names the argument (and its CLI flag), ``last`` says what layer ``num_layers`` is.
    """
    layers = (num_layers,) if requested is None else tuple(requested)
    bad = [layer for layer in layers if not isinstance(layer, int) or not -(num_layers + 1) <= layer <= num_layers]
    if not layers or bad:
        raise ValueError(
            f"{argument} {list(layers)} has invalid layer(s) {bad}: this model has layers 0..{num_layers} "
            f"(0 = embedding, {num_layers} = {last})"
        )
    return tuple(layer % (num_layers + 1) for layer in layers)
