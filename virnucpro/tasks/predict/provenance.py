"""What made a ``predict`` output: both models' and the classifier's SHA-256, the chunk size, the
options, versions, inputs and command line (``provenance.json``, and the features file's attributes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from virnucpro.pipeline.provenance import model_digests, run_attributes

from .config import PredictConfig

__all__ = ["predict_attributes"]


def predict_attributes(
    config: PredictConfig, inputs: Sequence[Path], fingerprint: dict[str, Any], device: torch.device, random: bool
) -> dict[str, Any]:
    """The output's attributes (the assembler adds the counts: ``records`` = frames, ``duplicate_ids``...).

    ``random``: the classifier's weights are random (a demo's), its scores meaningless.
    """
    return {
        "task": "predict",
        "chunk_size": config.chunk_size,
        "frames": fingerprint["input_kind"]["frames"],
        "translation": fingerprint["input_kind"]["translation"],
        "model": config.model,
        **model_digests(fingerprint["esm2"], "model", "model_tokenizer"),
        "dnabert": config.dnabert,
        **model_digests(fingerprint["dnabert"], "dnabert", "dnabert_tokenizer"),
        "classifier": str(config.classifier),
        "classifier_sha256": fingerprint["classifier"]["sha256"],
        "classifier_random": random,
        "features": config.save_features or "",
        "compute_dtype": fingerprint["dtype"].removeprefix("torch."),
        "esm2_layer": fingerprint["esm2_layer"],
        "dnabert_layer": fingerprint["dnabert_layer"],
        "esm2_forward": fingerprint["esm2_forward"],
        "dnabert_forward": fingerprint["dnabert_forward"],
        "max_tokens": fingerprint["max_tokens"],
        **run_attributes(inputs, fingerprint, config.command, device),
    }
