"""virnucpro: fast, exact-once ESM-2 protein embeddings over fair-esm weights."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("virnucpro")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
