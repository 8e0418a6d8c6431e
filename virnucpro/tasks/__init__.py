"""Tasks built on the embedding machinery: each in its own folder (``predict/``: VirNucPro's classification)."""

__all__: list[str] = []
