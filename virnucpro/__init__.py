"""virnucpro: fast, exact-once ESM-2 protein embeddings over fair-esm weights."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("virnucpro")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from virnucpro.reading import Embeddings, read_embeddings

__all__ = ["Embeddings", "__version__", "read_embeddings"]


def __getattr__(name: str):
    # Imported on first use, so that `virnucpro --version` and `--help` never import numpy or torch.
    if name in ("read_embeddings", "Embeddings"):
        from virnucpro import reading

        return getattr(reading, name)
    raise AttributeError(f"module 'virnucpro' has no attribute {name!r}")
