"""The ``virnucpro embed`` job: FASTA to an HDF5 file of embeddings, async, resumable, exact-once."""

from virnucpro.pipeline.config import DTYPES, EmbedConfig, EmbedSummary
from virnucpro.pipeline.embed import run_embed

__all__ = ["EmbedConfig", "EmbedSummary", "run_embed", "DTYPES"]
