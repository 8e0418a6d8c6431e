"""Checks every family's checkpoint reader makes before anything is built from an untrusted file.

A checkpoint's config and state dict come from a file nobody here wrote. Each family checks
its config's fields against bounds (``bounded_int``), then every key and tensor against the
shapes its config implies (``named_weights``, ``check_block_indices``, ``check_weight``). Every
failure is one ``ValueError`` line: the file, the field or key, its value, what was expected.
File-sourced strings are shown through ``show``: clipped, and escaped so a message stays one line.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable
from os import PathLike

import torch
from torch import Tensor

__all__ = ["FLOAT_DTYPES", "bounded_int", "check_block_indices", "check_weight", "few", "named_weights", "show"]

#: The dtypes a checkpoint's weights may have: what the models compute in (or are converted from).
#: float8 and the like cannot be read as weights of these models.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother = 120, 60


def show(value: object) -> str:
    """``repr(value)``, clipped to ~120 characters and on one line."""
    return _REPR.repr(value)


def few(items: list[str], limit: int = 8) -> str:
    """The first ``limit`` of ``items``, comma-separated, with how many more were left out."""
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def bounded_int(value: object, name: str, high: int, path: str | PathLike, low: int = 1) -> int:
    """``value``, raising unless it is an int (not a bool) in ``low..high``; ``name`` says where it was read."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{path}: {name} = {show(value)}, expected an int in {low}..{high}")
    return value


def named_weights(
    raw: dict,
    path: str | PathLike,
    name: Callable[[str], str],
    example: str,
    ignored: re.Pattern[str] | None = None,
) -> dict[str, tuple[str, object]]:
    """{``name(key)``: (the file's key, its value)} for every key of ``raw`` but those ``ignored`` fullmatches.

    Keys must be strings that ``name`` maps to distinct names (the model's names for its
    weights: a format's prefixes stripped, or its names translated). ``example`` is a key of
    the format, shown when a key is not a string.
    """
    named: dict[str, tuple[str, object]] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ValueError(
                f"{path}: state dict key {show(key)} is a {type(key).__name__}, expected a str "
                f"naming a weight, such as {show(example)}"
            )
        if ignored is not None and ignored.fullmatch(key):
            continue
        weight = name(key)
        if weight in named:
            raise ValueError(
                f"{path}: state dict keys {show(named[weight][0])} and {show(key)} both name the weight "
                f"{show(weight)}; expected one"
            )
        named[weight] = (key, value)
    return named


def check_block_indices(found: set[str], layers: int, path: str | PathLike, field: str, config: str) -> None:
    """Raise unless the block indices ``found`` in the keys are exactly "0".."layers-1".

    ``field`` names the config field that gave ``layers``; ``config`` what holds it ("cfg", "config").
    """
    wanted = {str(i) for i in range(layers)}
    if found == wanted:
        return
    problems = []
    if wanted - found:
        problems.append(f"no weights for block(s) {few(sorted(wanted - found, key=int))}")
    if found - wanted:
        extra = sorted(found - wanted, key=lambda index: (len(index), index))
        shown = [index if re.fullmatch(r"[1-9][0-9]{0,8}", index) else show(index) for index in extra]
        problems.append(f"weights for block(s) {few(shown)}")
    raise ValueError(
        f"{path}: {field} = {layers} means blocks 0..{layers - 1}, but the state dict "
        f"has {' and '.join(problems)}; the {config} and the weights disagree"
    )


def check_weight(key: str, value: object, shape: torch.Size, path: str | PathLike, implied_by: str) -> None:
    """Raise unless ``value`` is a dense CPU tensor of a float dtype and of ``shape``.

    ``implied_by`` names the config values that give ``shape``, e.g. "cfg['model'] (encoder_layers=2, ...)".
    """
    if not isinstance(value, Tensor):
        raise ValueError(f"{path}: {show(key)} is a {type(value).__name__}, expected a tensor of shape {tuple(shape)}")
    if value.dtype not in FLOAT_DTYPES or value.layout != torch.strided or value.device.type != "cpu":
        raise ValueError(
            f"{path}: {show(key)} is a {value.dtype} tensor ({value.layout}, on {value.device}), "
            "expected a dense tensor of float16, bfloat16, float32 or float64"
        )
    if value.shape != shape:
        raise ValueError(f"{path}: {show(key)} has shape {tuple(value.shape)}, but {implied_by} implies {tuple(shape)}")
