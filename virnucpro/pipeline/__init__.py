"""The ``virnucpro embed`` job: FASTA to embedding files, async, resumable, exact-once."""

from virnucpro.pipeline.config import DTYPES, STORAGE, EmbedConfig, EmbedSummary, JobResult, SelfCheck, Shard
from virnucpro.pipeline.embed import run_embed
from virnucpro.pipeline.finish import assemble_output
from virnucpro.pipeline.validation import InputError

__all__ = [
    "DTYPES",
    "STORAGE",
    "EmbedConfig",
    "EmbedSummary",
    "InputError",
    "JobResult",
    "SelfCheck",
    "Shard",
    "assemble_output",
    "run_embed",
]
