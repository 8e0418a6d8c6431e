"""Output formats, chosen by the output's suffix."""

from __future__ import annotations

from pathlib import Path

from .base import OutputLayout, OutputWriter, Span
from .hdf5 import HDF5Writer
from .npz import NPZWriter
from .parquet import ParquetWriter, require_pyarrow

__all__ = ["FORMATS", "OutputLayout", "OutputWriter", "Span", "check_format", "writer_for"]

#: Every output format, by the suffixes that choose it.
FORMATS: dict[str, type] = {suffix: cls for cls in (HDF5Writer, NPZWriter, ParquetWriter) for suffix in cls.suffixes}


def writer_for(path: Path) -> OutputWriter:
    """A new writer for ``path``'s format; ``ValueError`` naming the known suffixes otherwise."""
    check_format(path)
    return FORMATS[path.suffix.lower()]()


def check_format(path: Path, *, per_token: bool = False) -> None:
    """Refuse, before anything is written, an output whose format is unknown, cannot be written here, or
    cannot hold per-token rows (``per_token``)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown output format {suffix!r}; name the output with one of {sorted(FORMATS)}")
    if per_token and not FORMATS[suffix].per_token:
        holding = sorted(s for s, cls in FORMATS.items() if cls.per_token)
        raise ValueError(
            f"{path}: {suffix} cannot hold pooling='per-token' (CLI: --pooling per-token), whose rows per record "
            f"vary in number; name the output with one of {holding}"
        )
    if FORMATS[suffix] is ParquetWriter:
        require_pyarrow()
