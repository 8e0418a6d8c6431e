"""Functions that DataLoader workers run on each record, reporting what their process saw.

Their own module, importing nothing that asks about CUDA: under ``spawn`` a worker unpickles
its ``collate_fn`` by importing the module that defines it, before the dataset isolates the
worker. A test module imports ``conftest``, whose ``requires_cuda`` calls
``torch.cuda.is_available()`` at import; torch caches the device count it finds then, so a probe
defined there would report the CUDA that the worker's import saw, not what the dataset left it.
"""

from __future__ import annotations

import os

import torch


def probe(record) -> dict:
    """What the DataLoader process that produced ``record`` saw (module level: workers pickle it)."""
    return {
        "id": record["id"],
        "sequence": record["sequence"],
        "file": record["file"],
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def cuda_probe(record) -> dict:
    """``probe``, and whether CUDA is available to the process (only where it could be: after spawn)."""
    return {**probe(record), "cuda_available": torch.cuda.is_available()}


def init_cuda(worker_id: int) -> None:
    torch.cuda.init()
