"""``ModelFamily``: everything the data layer and the pipeline need to know about a model family.

The pipeline never names a family: it asks ``registry.family_for(spec)`` for one and uses
only what is here. The data layer knows none: a family hands it its ``Tokenizer``
(``virnucpro.data.tokenizer``). A second family is a folder beside ``esm2/`` that builds one
of these (``FAMILY`` in its ``__init__.py``), plus one line in ``registry.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn

from virnucpro.data.tokenizer import Tokenizer

from .common.random_spec import RANDOM_PREFIX

__all__ = ["RANDOM_PREFIX", "ModelFamily", "folder_files"]

# The files of a model folder that decide its output, in the order they are looked for.
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER = "tokenizer.json"


def folder_files(spec: str) -> dict[str, Path]:
    """The files a model spec's output depends on, by role: ``{"model": weights}`` and, in a
    folder that has one, ``"tokenizer"``; empty for ``random:`` specs, which read no file.

    A file spec is its own ``"model"``; a folder's weights are the first of ``model.safetensors``
    and ``pytorch_model.bin`` it holds. Families whose specs are neither (names resolved to a
    cache) give their own ``ModelFamily.files``.
    """
    if spec.startswith(RANDOM_PREFIX):
        return {}
    path = Path(os.path.expanduser(spec))
    if not path.is_dir():
        return {"model": path}
    weights = next((path / name for name in _WEIGHTS if (path / name).is_file()), path / _WEIGHTS[0])
    files = {"model": weights}
    if (path / _TOKENIZER).is_file():
        files["tokenizer"] = path / _TOKENIZER
    return files


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
        reads: which FASTA the family embeds: "protein", or "nucleotide" (DNA, read as DNA).
        mean_includes_special_tokens: the family's published mean recipe: False, residues only
            (ESM-2, as esm-extract); True, every token with the special ones (DNABERT-S).
        files: ``files(spec) -> {role: path}``, the files a spec's output depends on (the
            resume fingerprint hashes them): ``"model"`` (weights) and, where the family reads
            one, ``"tokenizer"``; default ``folder_files``.
    """

    name: str
    owns: Callable[[str], bool]
    tokenizer: Callable[[str], Tokenizer]
    load: Callable[..., tuple[nn.Module, Any]]
    resolve_layers: Callable[..., tuple[int, ...]]
    packed: Callable[..., nn.Module]
    max_tokens: Callable[..., int]
    reads: Literal["protein", "nucleotide"] = "protein"
    mean_includes_special_tokens: bool = False
    files: Callable[[str], dict[str, Path]] = field(default=folder_files)

    def layers(self, requested: Sequence[int] | None, model: nn.Module) -> tuple[int, ...]:
        """``requested`` resolved for ``model``, the message naming the job's ``layers`` (CLI: --layers)."""
        return self.resolve_layers(requested, model.num_layers, argument="layers (CLI: --layers)")
