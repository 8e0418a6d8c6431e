"""What made an output, as every task records it: the inputs and their SHA-256, the command line, the
software and hardware, and a model's digests. Each task adds its own options
(``tasks/embed/provenance.py``, ``tasks/predict/provenance.py``)."""

from __future__ import annotations

import importlib.metadata
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import virnucpro


__all__ = ["model_digests", "run_attributes", "software"]

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
