"""An exclusive lock on one output (or one shard of it), held for a whole run.

A POSIX record lock (``fcntl.lockf``) on a lock file in the output's parts folder: the
kernel drops it when the process ends, however it ends (``kill -9`` included), so a
stale lock never blocks the next run. Unlike ``flock``, it belongs to the process, not
to the open file, so the DataLoader workers a run forks do not inherit it and cannot
keep it alive after their parent died. The file holds the holder's pid and host, to
name them in the refusal.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

__all__ = ["JobLock", "LockedError"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class LockedError(RuntimeError):
    """Another run holds the lock."""


class JobLock:
    """Acquire at once or raise ``LockedError`` naming the running job's pid and host."""

    def __init__(self, path: Path, what: str):
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o666)
        except OSError as err:
            raise RuntimeError(
                f"{path}: cannot open the lock file ({err.strerror}); it must be a regular file"
            ) from err
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                os.close(self._fd)
                raise
            holder = os.pread(self._fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(self._fd)
            raise LockedError(
                f"{what} is being written by another run ({holder}); wait for it to finish or stop it"
            ) from None
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {started}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = -1
