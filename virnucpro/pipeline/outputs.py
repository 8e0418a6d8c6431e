"""How a job's output appears on disk: one file (``embed``) or one folder of files (``predict``).

The machinery knows these two shapes, not what is in them. Either way the output is
written whole under a new, uniquely named temporary sibling (never a name that could have
been planted), flushed to disk, then renamed onto the output's name: whatever carries the
output's name is complete. A folder output replaces only a folder virnucpro wrote: one
that holds nothing but the task's own file names (an empty folder the user made is fine),
and never follows a symlink.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .permissions import publish, publish_folder
from .writers import check_format

__all__ = ["FileOutput", "FolderOutput", "OutputKind", "fsync_path"]


class OutputKind(Protocol):
    """One shape of output. ``suffix``: what ``--output-dir`` adds to an input's name (``.h5``; "" for a folder)."""

    suffix: str

    def check(self, path: Path) -> None:
        """Refuse, before anything is written, a path that cannot hold this output (one line, the fix)."""
        ...

    def exists(self, path: Path) -> bool:
        """Whether an output is there that a run would replace (refused without ``overwrite``)."""
        ...

    def temporary(self, path: Path) -> Path:
        """A new, uniquely named sibling of ``path`` to write the output into."""
        ...

    def discard(self, temporary: Path) -> None:
        """Remove a temporary that will not become the output."""
        ...

    def remove_stale(self, path: Path) -> None:
        """Temporaries of runs killed while writing ``path`` (the caller holds every lock of it)."""
        ...

    def stamp(self, path: Path) -> dict[str, Any]:
        """What identifies this exact output (sizes and times), kept in ``assembled.json``."""
        ...

    def install(self, temporary: Path, path: Path) -> None:
        """Make the written temporary durable and rename it onto ``path``, replacing an earlier output."""
        ...


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file or folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileOutput:
    """One file (HDF5, NPZ or Parquet, by its suffix); ``per_token``: its rows are residues, which not
    every format holds."""

    suffix = ".h5"

    def __init__(self, per_token: bool = False) -> None:
        self.per_token = per_token

    def check(self, path: Path) -> None:
        if path.is_dir():
            raise ValueError(f"output {path} is a directory; name the output file to write (e.g. {path}/out.h5)")
        check_format(path, per_token=self.per_token)

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)

    def temporary(self, path: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        return Path(name)

    def discard(self, temporary: Path) -> None:
        temporary.unlink(missing_ok=True)

    def remove_stale(self, path: Path) -> None:
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()

    def stamp(self, path: Path) -> dict[str, Any]:
        st = path.lstat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def install(self, temporary: Path, path: Path) -> None:
        fsync_path(temporary)
        publish(temporary)  # private while written, then readable as any other new file
        os.replace(temporary, path)
        fsync_path(path.parent)


class FolderOutput:
    """A folder holding the task's ``files`` (names, no folders), written together.

    Args:
        files: every name the task may write into the folder; anything else found in an
            existing folder of the output's name is not ours, and the folder is refused.
        what: names the output in messages (e.g. "virnucpro predict's output folder").
    """

    suffix = ""

    def __init__(self, files: Sequence[str], what: str) -> None:
        self.files, self.what = tuple(files), what

    def check(self, path: Path) -> None:
        if not os.path.lexists(path):
            return
        if path.is_symlink():  # replacing it would replace the link, never what it points to: refused as unclear
            raise ValueError(
                f"{path} is a symbolic link; {self.what} is a folder that virnucpro creates itself: choose another name"
            )
        if not path.is_dir():
            raise ValueError(f"{path} exists and is not a folder; {self.what} is a folder: choose another name")
        with os.scandir(path) as entries:
            foreign = sorted(entry.name for entry in entries if not self._ours(entry))
        if foreign:
            shown = f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}"
            if all(name in self.files for name in foreign):  # our names, but links or folders
                held = f"{shown} as a link or folder, not as the plain file {self.what} holds"
            else:
                held = f"{shown}, which {self.what} never holds"
            raise ValueError(f"{path} holds {held}; choose a new or empty output folder")

    def _ours(self, entry: os.DirEntry) -> bool:
        return entry.name in self.files and entry.is_file(follow_symlinks=False)

    def exists(self, path: Path) -> bool:
        if not os.path.lexists(path):
            return False
        if path.is_symlink() or not path.is_dir():
            return True
        with os.scandir(path) as entries:
            return any(entries)

    def temporary(self, path: Path) -> Path:
        return Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))  # 0700 while written

    def discard(self, temporary: Path) -> None:
        if temporary.is_dir() and not temporary.is_symlink():
            shutil.rmtree(temporary)

    def remove_stale(self, path: Path) -> None:
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            self.discard(stale)

    def stamp(self, path: Path) -> dict[str, Any]:
        with os.scandir(path) as entries:
            stats = {entry.name: entry.stat(follow_symlinks=False) for entry in entries}
        return {name: [st.st_size, st.st_mtime_ns] for name, st in sorted(stats.items())}

    def install(self, temporary: Path, path: Path) -> None:
        with os.scandir(temporary) as entries:
            for entry in entries:
                fsync_path(Path(entry.path))
        fsync_path(temporary)
        publish_folder(temporary)  # private while written, then as any other new folder
        aside = None
        if self.exists(path):  # an earlier output (check() found only our files): moved aside, then removed
            self.check(path)
            aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
            os.rename(path, aside)  # onto the empty folder just made: no other name is touched
        os.rename(temporary, path)  # onto nothing, or onto the empty folder the user made
        fsync_path(path.parent)
        if aside is not None:
            shutil.rmtree(aside)
