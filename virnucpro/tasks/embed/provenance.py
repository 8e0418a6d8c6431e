"""What made an ``embed`` output: the model and its digests, the layers, pooling and precision, how
long and odd records were treated, and what every task records (``pipeline.provenance``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from virnucpro.pipeline.digests import FileIdentity
from virnucpro.pipeline.provenance import model_digests, run_attributes

from .config import EmbedConfig

__all__ = ["embed_attributes"]


def embed_attributes(
    config: EmbedConfig,
    inputs: Sequence[Path],
    fingerprint: dict[str, Any],
    device: torch.device,
    model_files: dict[str, FileIdentity] | None = None,
) -> dict[str, Any]:
    """The output's attributes (the assembler adds the counts); ``model_files``: the files the model
    was read from, by role ("model": the weights, a Hub id's in the Hugging Face cache; "tokenizer"),
    none for random weights."""
    model_file = (model_files or {}).get("model")
    return {
        "model": config.model,
        "model_file": "" if model_file is None else str(model_file.path),
        **model_digests(fingerprint["model"]),
        "layers": fingerprint["layers"],
        "pooling": config.pooling,
        "compute_dtype": fingerprint["dtype"].removeprefix("torch."),
        **fingerprint["forward"],
        "storage_dtype": config.storage,
        "max_length": config.max_length,
        "max_tokens": fingerprint["max_tokens"],
        "on_overlength": config.on_overlength,
        "window_stride": config.window_stride or (config.max_length // 2 if config.on_overlength == "window" else 0),
        "invalid": config.invalid,
        **{f"input_{key}" if key != "input" else "input_kind": value for key, value in config.kind.describe().items()},
        **run_attributes(inputs, fingerprint, config.command, device),
    }
