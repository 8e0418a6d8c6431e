"""``ModelFamily``: everything the data layer and the pipeline need to know about a model family.

The pipeline never names ESM-2: it asks ``registry.family_for(spec)`` for a family and
uses only what is here. A second family is a folder beside ``esm2/`` that builds one of
these, plus one line in ``registry.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["ModelFamily", "Vocabulary"]


@dataclass(frozen=True)
class Vocabulary:
    """What the data layer must know of a family's tokenizer.

    Attributes:
        residues: the single-character tokens a normalised sequence may hold.
        special_tokens_per_sequence: tokens added to every sequence (ESM-2: BOS and EOS).
        max_length: residues per sequence the model was trained on (the default window).
    """

    residues: str
    special_tokens_per_sequence: int
    max_length: int


@dataclass(frozen=True)
class ModelFamily:
    """One family of models.

    Attributes:
        name: e.g. "esm2".
        vocabulary: see ``Vocabulary``.
        load: ``load(spec, device=...) -> (model, alphabet)``; the model exposes ``num_layers``
            and ``embed_dim``.
        batch_converter: the family's tokenizer, as ``VarlenCollator`` takes it.
        resolve_layers: ``(requested, num_layers, argument=...) -> layers`` in the family's numbering.
        packed: ``packed(model, dtype=, device=, options=)``, the packed forward (``forward(batch,
            repr_layers=)`` -> {"representations": {layer: (T, E)}}).
        max_tokens: ``max_tokens(model, dtype, device, num_layers_out, matmul=...)``, the default token budget.
    """

    name: str
    vocabulary: Vocabulary
    load: Callable[..., tuple[nn.Module, Any]]
    batch_converter: Callable[[], Any]
    resolve_layers: Callable[..., tuple[int, ...]]
    packed: Callable[..., nn.Module]
    max_tokens: Callable[..., int]

    def layers(self, requested: Sequence[int] | None, model: nn.Module) -> tuple[int, ...]:
        """``requested`` resolved for ``model``, the message naming the job's ``layers`` and its CLI flag."""
        layers = self.resolve_layers(requested, model.num_layers, argument="layers (CLI: --layers)")
        if len(set(layers)) < len(layers):  # -1 and the last layer's number, say: one layer stored twice
            twice = sorted({layer for layer in layers if layers.count(layer) > 1})
            raise ValueError(
                f"layers (CLI: --layers) {list(requested or ())} name layer(s) {twice} more than once (negative "
                f"numbers count from the end: -1 is layer {model.num_layers} of this model); give each layer once"
            )
        return layers
