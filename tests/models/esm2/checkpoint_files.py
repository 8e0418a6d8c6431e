"""Checkpoint files for the loading tests: a tiny model saved, its contents, and how a refusal must read."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch
from conftest import tiny_esm2
from esm.model.esm2 import ESM2

from virnucpro.models import load_model, save_checkpoint


def tiny_checkpoint(tmp_path: pathlib.Path, dtype: torch.dtype = torch.float32) -> tuple[ESM2, pathlib.Path]:
    """(a tiny random ESM-2 of 2 blocks, width 64, 4 heads, in ``dtype``; the path it was saved to)."""
    model = tiny_esm2(2, 64, 4, seed=5).to(dtype)
    path = tmp_path / f"tiny_{str(dtype).removeprefix('torch.')}.pt"
    save_checkpoint(model, path)
    return model, path


def contents(path: pathlib.Path) -> dict:
    """What a checkpoint file holds (our own test file: unpickled in full)."""
    return torch.load(path, weights_only=False)


def written(tmp_path: pathlib.Path, data: object, name: str = "bad.pt") -> pathlib.Path:
    torch.save(data, tmp_path / name)
    return tmp_path / name


def refused(path: pathlib.Path, *patterns: str) -> str:
    """The message of the ValueError ``load_model(path)`` raises: one line, naming the file and each of ``patterns``."""
    with pytest.raises(ValueError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message
