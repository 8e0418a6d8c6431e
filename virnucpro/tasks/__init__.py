"""The tasks built on the job machinery (``virnucpro.pipeline``), each in its own folder: ``embed/``
(FASTA to embedding files) and ``predict/`` (VirNucPro's classification)."""

__all__: list[str] = []
