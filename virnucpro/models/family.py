"""``ModelFamily``: everything the data layer and the pipeline need to know about a model family.

The pipeline never names a family: it asks ``registry.family_for(spec)`` for one and uses
only what is here. The data layer knows none: a family hands it its ``Tokenizer``
(``virnucpro.data.tokenizer``). A second family is a folder beside ``esm2/`` that builds one
of these (``FAMILY`` in its ``__init__.py``), plus one line in ``registry.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from virnucpro.data.tokenizer import Tokenizer

from .options import ForwardOptions

__all__ = ["ModelFamily"]


@dataclass(frozen=True)
class ModelFamily:
    """One family of models.

    Attributes:
        name: e.g. "esm2", "dnabert".
        owns: ``owns(spec) -> bool``, whether a model spec is this family's; the registry asks
            each family in turn (ESM-2 last, the fallback).
        tokenizer: ``tokenizer(spec) -> Tokenizer``, the data-layer tokenizer for a spec (its
            alphabet, special tokens and default ``max_length``).
        load: ``load(spec, *, dtype=None | torch.dtype, device=...) -> (model, extra)``; the model
            exposes ``num_layers`` and ``embed_dim``.
        resolve_layers: ``(requested, num_layers, argument=...) -> layers`` in the family's numbering.
        packed: ``packed(model, dtype=, device=, options=)``, the packed forward (``forward(batch,
            repr_layers=)`` -> {"representations": {layer: (T, E)}}, and ``warm_up()``).
        max_tokens: ``max_tokens(model, dtype, device, num_layers_out, matmul=...)``, the default token budget.
        files: ``files(spec) -> {role: path}``, every file ``load(spec)`` and ``tokenizer(spec)``
            read, which the resume fingerprint identifies by content: ``"model"`` (the checkpoint
            or weights) and, for a folder, ``"config"``, ``"tokenizer"``, ...; empty for
            ``random:`` specs.
        resolve_options: ``resolve_options(options, device, dtype) -> ForwardOptions``, the concrete
            options ``packed`` runs with (its attention, kernels and GELU), for the fingerprint,
            the output's attributes and the refusals before a run; ``packed`` resolves the same way.
        reads: which FASTA the family embeds: "protein", or "nucleotide" (DNA, read as DNA).
        mean_includes_special_tokens: the family's published mean recipe: False, residues only
            (ESM-2, as esm-extract); True, every token with the special ones (DNABERT-S).
    """

    name: str
    owns: Callable[[str], bool]
    tokenizer: Callable[[str], Tokenizer]
    load: Callable[..., tuple[nn.Module, Any]]
    resolve_layers: Callable[..., tuple[int, ...]]
    packed: Callable[..., nn.Module]
    max_tokens: Callable[..., int]
    files: Callable[[str], dict[str, Path]]
    resolve_options: Callable[..., ForwardOptions]
    reads: Literal["protein", "nucleotide"] = "protein"
    mean_includes_special_tokens: bool = False

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
