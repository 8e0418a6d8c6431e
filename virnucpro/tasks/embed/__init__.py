"""``virnucpro embed``: FASTA to embedding files (``run_embed``).

``config``: ``EmbedConfig``, the run's options, validated once; ``run``: the task the job
machinery (``virnucpro.pipeline``) drives (``EmbedTask``) and ``EmbedSummary``, what a run did;
``provenance``: what an output records of its making. The output formats are the machinery's
(``pipeline/writers/``), shared with any task that stores embeddings.
"""

from .config import STORAGE, EmbedConfig
from .run import EmbedSummary, run_embed

__all__ = ["STORAGE", "EmbedConfig", "EmbedSummary", "run_embed"]
