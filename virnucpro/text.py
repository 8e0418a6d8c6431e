"""How a message shows what it is about: the one place ids are quoted and cut for messages."""

from __future__ import annotations

__all__ = ["ID_SHOWN", "quote_id"]

#: Characters of an id that a message shows: enough to find it, and a 1 MB header stays a short line.
ID_SHOWN = 60


def quote_id(record_id: str, limit: int = ID_SHOWN) -> str:
    """``repr(record_id)`` for a message, cut to its first ``limit`` characters when longer.

    ``'WP_0123'``, or ``'MKVLAAQQ...'... (1,000,000 characters)``; ``repr`` also shows
    control characters (``'\\x00'``) instead of writing them to the terminal.
    """
    if len(record_id) <= limit:
        return repr(record_id)
    return f"{record_id[:limit]!r}... ({len(record_id):,} characters)"
