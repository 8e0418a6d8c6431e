"""SHA-256 of files, cached by file identity, so that a 5 GB checkpoint is hashed once and not every run.

The cache is a JSON file, by default ``default_cache_path()``:
``$XDG_CACHE_HOME/virnucpro/sha256.json``, or ``~/.cache/virnucpro/sha256.json`` when that
variable is unset or not absolute (the XDG rule). It maps each resolved path to the stamp
``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` the file had when hashed, and the
digest; a lookup hits only when the file's stamp is still that one. ctime is in the stamp
because ``cp -p`` and ``touch -r`` restore size and mtime after the content changed, while
nothing but the kernel sets ctime, and it sets it on every change.

Timestamps come from a coarse clock (and some file systems keep seconds), so a file
rewritten twice within one tick keeps its stamp. A digest is therefore stored only for a
file whose ctime was at least ``RACY_WINDOW_NS`` old when it was hashed: a file written
just now is hashed again next time, never trusted from the cache.

The cache never fails a call. A missing, unreadable or corrupt cache file means hashing
(with a warning, except when it is missing); a corrupt one is rewritten. The cache file
itself is never followed through a symlink. Writes are atomic (a uniquely named file in the
cache's folder, then ``os.replace``), merged with what other processes stored meanwhile; a
process writing in the same instant may lose its new entries (those files are hashed again
next time), never corrupt the file. Only the ``MAX_ENTRIES`` most recently used are kept.

No temporary file is left behind: a process that ends without its interpreter's teardown
first lets a write in progress finish (``close_cache``), and temporaries that a killed
process left are removed by the next write once ``STALE_TEMPORARY_S`` old.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DEFAULT_CACHE",
    "MAX_ENTRIES",
    "RACY_WINDOW_NS",
    "STALE_TEMPORARY_S",
    "FileIdentity",
    "close_cache",
    "default_cache_path",
    "identify",
    "identify_all",
    "sha256_file",
]

#: Entries kept: a run looks up its checkpoint and each input; 4096 hold many runs' worth
#: in a file of about 1 MB, read and rewritten in milliseconds.
MAX_ENTRIES = 4096
#: 2 s: the coarsest timestamps in common use (FAT's; ext3 and NFSv3 keep seconds).
RACY_WINDOW_NS = 2_000_000_000
# Large reads: hashlib releases the GIL while it digests them, so hashing can run in a
# thread beside loading the model.
_BLOCK = 8 << 20
_ATTEMPTS = 3
_MAX_CACHE_BYTES = 16 << 20  # far above MAX_ENTRIES entries; anything larger is not ours
_VERSION = 1
_HEX = re.compile(r"[0-9a-f]{64}")
#: A cache temporary this old was left by a killed process (a write takes milliseconds).
STALE_TEMPORARY_S = 600
# Held while this process writes the cache file: ``close_cache`` takes it for good.
_WRITING = threading.Lock()
# O_NONBLOCK: opening a FIFO planted where a file was expected returns at once instead of hanging.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

_Stamp = tuple[int, int, int, int, int]


class _Default(enum.Enum):
    """The type of ``DEFAULT_CACHE``: a marker resolved when a call runs, so XDG_CACHE_HOME is read then."""

    CACHE = "the default cache"


#: ``cache=DEFAULT_CACHE``: the cache at ``default_cache_path()``.
DEFAULT_CACHE = _Default.CACHE
_CacheArg = os.PathLike | str | None | _Default


@dataclass(frozen=True)
class FileIdentity:
    """A file as it was hashed.

    path: absolute, symlinks resolved. size: bytes. mtime_ns: modification time, ns since
    the epoch. sha256: the digest of its content, 64 lowercase hex digits.
    """

    path: Path
    size: int
    mtime_ns: int
    sha256: str


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/virnucpro/sha256.json``, or under ``~/.cache`` when that is unset or relative."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # XDG: a relative value is invalid
    return root / "virnucpro" / "sha256.json"


def sha256_file(path: str | os.PathLike, *, cache: _CacheArg = DEFAULT_CACHE) -> str:
    """The SHA-256 of the file at ``path`` (64 lowercase hex digits); ``cache`` as in ``identify_all``."""
    return identify(path, cache=cache).sha256


def identify(path: str | os.PathLike, *, cache: _CacheArg = DEFAULT_CACHE) -> FileIdentity:
    """The ``FileIdentity`` of the file at ``path``; ``cache`` as in ``identify_all``."""
    return identify_all([path], cache=cache)[0]


def identify_all(paths: Iterable[str | os.PathLike], *, cache: _CacheArg = DEFAULT_CACHE) -> list[FileIdentity]:
    """The ``FileIdentity`` of each file, in order, the cache read and written once for all.

    Args:
        paths: regular files (symlinks to them are resolved).
        cache: ``DEFAULT_CACHE`` (``default_cache_path()``), the path of another cache
            file, or None to hash every file and touch no cache.

    Raises:
        FileNotFoundError: a path that does not exist. ValueError: one that is not a
        regular file. OSError: a file that cannot be read. RuntimeError: a file that kept
        changing while it was hashed. Never because of the cache.
    """
    files = [_regular_file(path) for path in paths]
    store = _Store(_cache_file(cache))
    identities = []
    for resolved, status in files:
        digest = store.lookup(str(resolved), _stamp(status))
        if digest is None:
            digest, status, started_ns = _hash_file(resolved)
            if started_ns - status.st_ctime_ns >= RACY_WINDOW_NS:
                store.record(str(resolved), _stamp(status), digest)
        identities.append(FileIdentity(resolved, status.st_size, status.st_mtime_ns, digest))
    store.save()
    return identities


def _regular_file(path: str | os.PathLike) -> tuple[Path, os.stat_result]:
    resolved = Path(path).resolve(strict=True)
    status = resolved.stat()
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"{os.fspath(path)}: not a regular file, so it has no content digest; pass a file")
    return resolved, status


def _stamp(status: os.stat_result) -> _Stamp:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _hash_file(path: Path) -> tuple[str, os.stat_result, int]:
    """(digest, the file's status while it was read, time_ns just before), the stamp unchanged across the read."""
    for _ in range(_ATTEMPTS):
        started_ns = time.time_ns()
        with open(os.open(path, _OPEN_FLAGS), "rb", buffering=0) as handle:
            before = os.fstat(handle.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise ValueError(f"{path}: not a regular file, so it has no content digest; pass a file")
            digest = hashlib.sha256()
            buffer = bytearray(_BLOCK)
            view = memoryview(buffer)
            while count := handle.readinto(buffer):
                digest.update(view[:count])
            after = os.fstat(handle.fileno())
        if _stamp(before) == _stamp(after):
            return digest.hexdigest(), before, started_ns
    raise RuntimeError(
        f"{path}: changed while it was being hashed, {_ATTEMPTS} times in a row; hash it when nothing writes to it"
    )


def _cache_file(cache: _CacheArg) -> Path | None:
    if cache is None:
        return None
    if cache is not DEFAULT_CACHE:
        return Path(cache)
    try:
        return default_cache_path()
    except RuntimeError as err:  # Path.home(): no HOME and no password entry
        _warn(f"no digest cache: its default location is unknown ({err}); set XDG_CACHE_HOME")
        return None


def _warn(message: str) -> None:
    # The cache must never fail a call; what goes wrong with it is said, not raised.
    warnings.warn(message, RuntimeWarning, stacklevel=3)


class _Read(NamedTuple):
    """What reading the cache file gave: its valid ``entries``; whether it may be ``replaced``
    (not when it exists but could not be read); the ``problem`` to warn about, if any."""

    entries: dict[str, list]
    replaceable: bool
    problem: str | None


class _Store:
    """One call's view of the cache file: read once, then written once if it learnt something.

    ``entries``: path => [st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns, sha256], least
    recently used first, as in the file. ``used``: what this call looked up or hashed.
    """

    def __init__(self, file: Path | None):
        self.file = file
        self.used: dict[str, list] = {}
        read = _read_entries(file) if file is not None else _Read({}, False, None)
        if read.problem:
            _warn(read.problem)
        self.entries, self.writable = read.entries, read.replaceable
        self.changed = read.problem is not None  # a corrupt file is rewritten

    def lookup(self, key: str, stamp: _Stamp) -> str | None:
        entry = self.used.get(key) or self.entries.get(key)  # used: hashed earlier in this call
        if entry is None or tuple(entry[:5]) != stamp:
            return None
        self.used[key] = entry
        return entry[5]

    def record(self, key: str, stamp: _Stamp, digest: str) -> None:
        self.used[key] = [*stamp, digest]
        self.changed = True

    def save(self) -> None:
        """Write the entries others stored since this call read the file, then this call's, newest last."""
        if not (self.writable and self.changed):
            return
        current = _read_entries(self.file)
        if not current.replaceable:  # it became unreadable, or a symlink, meanwhile: leave it alone
            return
        merged = {key: entry for key, entry in current.entries.items() if key not in self.used} | self.used
        _write(self.file, dict(list(merged.items())[-MAX_ENTRIES:]))


def _read_entries(file: Path) -> _Read:
    """The cache file's valid entries; an absent file is an empty cache, without a problem."""
    try:
        fd = os.open(file, _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0))
    except (FileNotFoundError, NotADirectoryError):  # no cache yet (or no folder for it: writing will say)
        return _Read({}, True, None)
    except OSError as err:  # ELOOP: a symlink; EACCES; ...
        return _Read({}, False, f"digest cache {file} is unusable ({err}); hashing without it")
    try:
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise IsADirectoryError(f"{file} is not a regular file")
            raw = handle.read(_MAX_CACHE_BYTES + 1)
    except OSError as err:
        return _Read({}, False, f"digest cache {file} is unusable ({err}); hashing without it")
    try:
        data = json.loads(raw) if len(raw) <= _MAX_CACHE_BYTES else None
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError), or absurdly nested
        data = None
    if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("entries"), dict):
        return _Read({}, True, f"digest cache {file} is corrupt; hashing without it and rewriting it")
    entries = {key: entry for key, entry in data["entries"].items() if _valid(entry)}
    dropped = len(data["entries"]) - len(entries)
    return _Read(entries, True, f"digest cache {file}: dropped {dropped} corrupt entries" if dropped else None)


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 6
        and all(type(field) is int for field in entry[:5])
        and isinstance(entry[5], str)
        and _HEX.fullmatch(entry[5]) is not None
    )


def close_cache() -> None:
    """Let a cache write in progress finish, and block any later one: for a process about to end
    without its interpreter's teardown (``os._exit``), which would otherwise cut a write short and
    leave its temporary file behind."""
    _WRITING.acquire()


def _write(file: Path, entries: dict[str, list]) -> None:
    """Replace ``file`` atomically by one holding ``entries``; warn and leave it as it was on failure."""
    with _WRITING:
        _write_locked(file, entries)


def _remove_stale_temporaries(file: Path) -> None:
    """Temporaries of processes killed while writing the cache (never a fresh one: another process's write)."""
    for stale in file.parent.glob(f".{file.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if not stale.is_symlink() and time.time() - stale.stat().st_mtime > STALE_TEMPORARY_S:
                stale.unlink()


def _write_locked(file: Path, entries: dict[str, list]) -> None:
    text = json.dumps({"version": _VERSION, "entries": entries}, separators=(",", ":"))
    temp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(file)
        fd, temp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # No fsync: after a crash the cache may be empty or corrupt, which only costs a re-hash.
        os.replace(temp, file)  # replaces a link at ``file`` itself, never what it points to
    except OSError as err:
        if temp is not None:
            with contextlib.suppress(OSError):  # our own temp file; the failure itself is warned about below
                os.unlink(temp)
        _warn(f"cannot write the digest cache {file} ({err}); these files will be hashed again next time")
