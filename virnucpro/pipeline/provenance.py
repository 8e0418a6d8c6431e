"""What made an output: the job's options, the software and hardware, and the identity of every file."""

from __future__ import annotations

import importlib.metadata
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import virnucpro

from .config import EmbedConfig
from .digests import FileIdentity

__all__ = ["job_attributes", "model_digests", "run_attributes", "software"]

_TOKENIZER = "tokenizer"


def software(device: torch.device) -> dict[str, str]:
    """Versions of the software, and the GPU, that computed the embeddings."""
    try:
        fair_esm = importlib.metadata.version("fair-esm")
    except importlib.metadata.PackageNotFoundError:
        fair_esm = "unknown"
    return {
        "virnucpro_version": virnucpro.__version__,
        "torch_version": str(torch.__version__),
        "fair_esm_version": fair_esm,
        "cuda_version": torch.version.cuda or "none",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }


def job_attributes(
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


def run_attributes(
    inputs: Sequence[Path], fingerprint: dict[str, Any], command: str, device: torch.device
) -> dict[str, Any]:
    """What every task's output records of its run: the inputs and their SHA-256 and sizes, the
    command line, the time, the fingerprint (as JSON text) and the software and GPU."""
    identities = fingerprint["inputs"]
    return {
        "inputs": [str(path) for path in inputs],
        "input_sha256": [identity["sha256"] for identity in identities],
        "input_bytes": [identity["size"] for identity in identities],
        "command": command,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        **software(device),
    }


def model_digests(model: dict[str, Any], prefix: str = "model", tokenizer: str = "tokenizer") -> dict[str, Any]:
    """``{prefix}_sha256``: the weights' digest (a checkpoint's, a folder's weights file or shard
    index; "" for ``random:``); for a folder also each file's by role (``{prefix}_files_sha256``)
    and the tokenizer's (``{tokenizer}_sha256``). ``model``: its fingerprint entry
    (``fingerprint.model_fields``)."""
    if "sha256" in model or "random" in model:
        return {f"{prefix}_sha256": model.get("sha256", "")}
    digests = {name: content["sha256"] for name, content in model.items()}
    named = {f"{tokenizer}_sha256": digests[_TOKENIZER]} if _TOKENIZER in digests else {}
    return {f"{prefix}_sha256": digests["model"], f"{prefix}_files_sha256": digests, **named}
