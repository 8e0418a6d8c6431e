"""Whether a tensor's memory is a mapping of a file: how tests see that nothing was copied (Linux)."""

from __future__ import annotations

import pathlib

import pytest
import torch


def mapped_ranges(path: pathlib.Path) -> list[tuple[int, int]]:
    """The address ranges at which this process has ``path`` memory-mapped now (Linux)."""
    maps = pathlib.Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs Linux's /proc/self/maps")
    ranges = []
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path.resolve()):
            start, end = fields[0].split("-")
            ranges.append((int(start, 16), int(end, 16)))
    return ranges


def in_mapping(tensor: torch.Tensor, ranges: list[tuple[int, int]]) -> bool:
    """Whether all of ``tensor``'s bytes lie inside one of ``ranges``."""
    first, last = tensor.data_ptr(), tensor.data_ptr() + tensor.numel() * tensor.element_size()
    return any(start <= first and last <= end for start, end in ranges)
