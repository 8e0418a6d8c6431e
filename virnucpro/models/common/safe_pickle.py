"""Reading an untrusted PyTorch pickle file: ``torch.load(weights_only=True)``, refusals in one line.

A ``.pt`` or ``.bin`` file is a pickle, and a pickle can run code when it is read. Torch's
weights-only unpickler allows tensors, containers and the globals named here, and refuses
everything else before calling it; its refusal advises retrying with ``weights_only=False``,
which is what would run a malicious payload, so only the refused global (or the unpickler's
detail) is kept in the message raised here. Zip-format files (what torch >= 1.6 writes) are
memory-mapped.
"""

from __future__ import annotations

import pickle
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["load_torch_file"]

# The first bytes of a zip archive: torch's format since 1.6, the only one torch can mmap.
_ZIP_MAGIC = b"PK\x03\x04"
# What torch's weights-only unpickler names when it refuses a global (a class or function).
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")


def load_torch_file(path: Path, *, what: str, allowed: Sequence[type] = (), advice: str) -> object:
    """What ``torch.load(path, weights_only=True)`` reads, on the CPU, mmapped when the file is a zip archive.

    Args:
        path: the file; never unpickled with code allowed.
        what: what the file should be, for messages ("a fair-esm checkpoint").
        allowed: globals allowed beyond tensors and containers (e.g. ``argparse.Namespace``).
        advice: how the writer of a refused file can write it instead, ending the refusal message.

    Raises:
        ValueError: an empty file, one torch cannot read (truncated, corrupt, not a pickle) or one
            that would unpickle a refused global; one line naming ``path``, and nothing in it run.
        OSError: an unreadable file.
    """
    with path.open("rb") as handle:  # an unreadable file raises OSError, which says so itself
        magic = handle.read(len(_ZIP_MAGIC))
    if not magic:
        raise ValueError(f"{path}: empty file (0 bytes), not {what}; re-download or re-save it")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=magic == _ZIP_MAGIC)
    except OSError:
        raise
    except pickle.UnpicklingError as err:  # weights_only refused something, or this is no pickle at all
        raise ValueError(_refusal(path, err, what, allowed, advice)) from err
    except Exception as err:  # RuntimeError (bad zip), EOFError (truncated legacy file), ...
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise ValueError(
            f"{path}: not a readable {_bare(what)}: torch.load failed with {type(err).__name__}: "
            f"{textwrap.shorten(lines[0], 200) if lines else 'no detail'}; if it is one, it is "
            "truncated or corrupt: re-download or re-save it"
        ) from err


def _refusal(path: Path, err: pickle.UnpicklingError, what: str, allowed: Sequence[type], advice: str) -> str:
    """One line for a file torch's weights-only unpickler refused, without torch's unsafe advice."""
    text = str(err)
    refused = _REFUSED_GLOBAL.search(text)
    detail = _UNPICKLER_DETAIL.search(text)
    if refused:
        reason = f"it asks to unpickle {refused[1]}, which was refused"
    else:
        reason = f"torch's weights-only unpickler refused it ({detail[1].strip()[:200] if detail else 'no detail'})"
    kinds = ["tensors", "containers", *(f"{kind.__module__}.{kind.__qualname__}" for kind in allowed)]
    return (
        f"{path}: not a readable {_bare(what)}: {reason}; virnucpro never unpickles code: only "
        f"{', '.join(kinds[:-1])} and {kinds[-1]} are allowed ({advice})"
    )


def _bare(what: str) -> str:
    """``what`` without its article: "a fair-esm checkpoint" -> "fair-esm checkpoint"."""
    return re.sub(r"^(an?|the) ", "", what)
