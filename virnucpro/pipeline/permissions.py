"""Files like any other: what a run leaves for others gets the mode the user's umask gives a new file.

``tempfile.mkstemp`` creates a file only its owner can read (0600). That is right for a
temporary, which nobody should read half-written, and wrong for the output it becomes:
lab-mates in a shared project folder could not read the results. So a temporary keeps
0600 while it is written and gets ``0o666 & ~umask``, the mode ``open()`` gives a new file,
just before it is renamed into place. Folders and the files ``os.open`` creates get their
mode from the umask directly.
"""

from __future__ import annotations

import os

__all__ = ["new_file_mode", "publish", "publish_folder"]

_STATUS = "/proc/self/status"


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``Umask:``, Linux >= 4.7)."""
    try:
        with open(_STATUS) as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere reading the umask means setting it: set the strictest for that instant, so that a
    # file another thread creates meanwhile is only ever more private, never less.
    current = os.umask(0o077)
    os.umask(current)
    return current


def new_file_mode() -> int:
    """``0o666 & ~umask``: the permission bits ``open()`` gives a new file in this process."""
    return 0o666 & ~_umask()


def publish(path: str | os.PathLike) -> None:
    """Give the private temporary at ``path`` (about to be renamed into place) a new file's mode."""
    os.chmod(path, new_file_mode())


def publish_folder(path: str | os.PathLike) -> None:
    """Give the private temporary folder at ``path`` (``tempfile.mkdtemp``'s 0700, about to be renamed
    into place) the mode ``os.mkdir`` gives a new folder: ``0o777 & ~umask``."""
    os.chmod(path, 0o777 & ~_umask())
