"""The job machinery every task runs on: claims and locks, the async loop, parts, resume, shards,
assembly, input validation and provenance. The tasks themselves live in ``virnucpro.tasks``
(``embed``, ``predict``); ``task.py`` is the seam between the two."""

from virnucpro.pipeline.config import DTYPES, JobConfig, JobResult, RunResult, SelfCheck, Shard
from virnucpro.pipeline.finish import assemble_output
from virnucpro.pipeline.validation import InputError

__all__ = [
    "DTYPES",
    "InputError",
    "JobConfig",
    "JobResult",
    "RunResult",
    "SelfCheck",
    "Shard",
    "assemble_output",
]
