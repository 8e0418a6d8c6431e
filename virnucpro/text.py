"""How messages are written: the one place ids are quoted and cut, and options are named for library and CLI.

A library message that suggests an option names the library's argument and, right after
it, the CLI's flag: ``pass overwrite=True (CLI: --overwrite)``. Library users read both;
the CLI shows only the flag (``for_cli``: ``pass --overwrite``), so that CLI users see
only flags that exist.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["ID_SHOWN", "LIBRARY_AND_CLI", "for_cli", "quote_id", "resume_command"]

#: Characters of an id that a message shows: enough to find it, and a 1 MB header stays a short line.
ID_SHOWN = 60

#: A library argument (``name`` or ``name=value``) followed by its CLI form in parentheses. The
#: CLI form holds no parentheses; the argument starts a word, so ``(e.g. invalid='X' (CLI: ...))``
#: keeps its own parenthesis.
LIBRARY_AND_CLI = re.compile(r"""(?<![\w.'"=-])[A-Za-z_][\w.]*(?:=(?:'[^']*'|"[^"]*"|[^\s()]+))? \(CLI: ([^()]*)\)""")


def quote_id(record_id: str, limit: int = ID_SHOWN) -> str:
    """``repr(record_id)`` for a message, cut to its first ``limit`` characters when longer.

    ``'WP_0123'``, or ``'MKVLAAQQ...'... (1,000,000 characters)``; ``repr`` also shows
    control characters (``'\\x00'``) instead of writing them to the terminal.
    """
    if len(record_id) <= limit:
        return repr(record_id)
    return f"{record_id[:limit]!r}... ({len(record_id):,} characters)"


def for_cli(message: str) -> str:
    """``message`` as a CLI user reads it: each ``argument (CLI: --flag)`` becomes ``--flag``.

    ``"pass invalid='X' (CLI: --invalid X) to replace them"`` -> ``"pass --invalid X to replace them"``.
    """
    return LIBRARY_AND_CLI.sub(r"\1", message)


def resume_command(command: str) -> str:
    """The command line ``command`` with ``--resume`` (and without ``--overwrite``): what continues its run."""
    words = [word for word in shlex.split(command) if word != "--overwrite"]
    return shlex.join(words if "--resume" in words else [*words, "--resume"])
