"""Appending to a part and committing it; cutting a part back to its last commit."""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..permissions import new_file_mode
from .format import FORMAT, IDS, META_KEYS, NOFOLLOW, ROWS, STATE, STOPPED, Meta, PartLayout
from .reader import Part

__all__ = ["PartWriter", "cut_tail", "restate", "write_atomically"]


class PartWriter:
    """One rank's append-only part: ``create`` a new one or ``resume`` a committed one.

    Args (both constructors):
        directory: this part's folder, e.g. ``OUT.h5.parts/shard-0-of-1.rank-0-of-1``.
        layout: what each record holds.
        meta: the job's description: ``"fingerprint"`` (resuming with another is refused) and
            whatever else assembly needs (inputs, attributes); or a function giving it: the
            first commit waits for it, so that file digests can be computed while the first
            batches run. Nothing is committed before it is known.

    ``notes``: further state keys written with every commit (``format.STOPPED``).
    """

    def __init__(self, directory: Path, layout: PartLayout, meta: Meta, state: dict[str, Any]):
        self.directory, self.layout, self.meta = directory, layout, meta
        self.records, self.rows = state["records"], state["rows"]
        self.counts: dict[str, int] = dict(state["counts"])
        self.check: dict[str, float] = dict(state.get("check", {}))
        self._sizes = {name: f["size"] for name, f in state["files"].items()}
        self._crcs = {name: f["crc32"] for name, f in state["files"].items()}
        self._fds: dict[str, int] = {}
        self.notes: dict[str, Any] = {}

    @classmethod
    def create(cls, directory: Path, layout: PartLayout, meta: Meta) -> PartWriter:
        os.mkdir(directory)  # FileExistsError if anything, a symlink included, has the name
        state = {"records": 0, "rows": 0, "counts": {}, "files": {n: {"size": 0, "crc32": 0} for n in layout.files()}}
        writer = cls(directory, layout, meta, state)
        for name in layout.files():
            writer._fds[name] = os.open(directory / name, os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
        return writer

    @classmethod
    def resume(cls, part: Part) -> PartWriter:
        """Continue ``part`` (verified by ``read_part(..., allow_tail=True)``) after its last commit."""
        directory, layout = part.directory, part.layout
        writer = cls(directory, layout, {k: part.state[k] for k in part.state if k in META_KEYS}, part.state)
        if STOPPED in part.state:  # the same input: where its run stopped still holds
            writer.notes[STOPPED] = part.state[STOPPED]
        for name in layout.files():
            fd = os.open(directory / name, os.O_RDWR | NOFOLLOW)
            os.ftruncate(fd, writer._sizes[name])  # drop what a crash left past the last commit; never extends
            os.lseek(fd, 0, os.SEEK_END)
            writer._fds[name] = fd
        return writer

    def append(
        self, indices: np.ndarray, columns: dict[str, np.ndarray], ids: list[str], rows: np.ndarray, **counts: int
    ) -> None:
        """Append N records: ``indices`` (N,) input positions, ``columns`` the layout's (N,) int64
        columns, ``ids`` N str, ``rows`` (M, *row_shape); ``counts`` are added to the part's totals."""
        if rows.shape[1:] != self.layout.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not match this part's {self.layout.row_shape}")
        encoded = "".join(f"{i}\n" for i in ids).encode("utf-8")
        self._write("index.i64", np.ascontiguousarray(indices, dtype=np.int64).tobytes())
        for name in self.layout.columns:
            self._write(f"{name}.i64", np.ascontiguousarray(columns[name], dtype=np.int64).tobytes())
        self._write(IDS, encoded)
        self._write(ROWS, np.ascontiguousarray(rows, dtype=self.layout.dtype).tobytes())
        self.records += len(ids)
        self.rows += rows.shape[0]
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)

    def record_check(self, cosines: np.ndarray) -> None:
        """Fold one self-checked batch's cosines into the part's (min, sum, count)."""
        if cosines.size:
            self.check = {
                "min": min(self.check.get("min", 1.0), float(cosines.min())),
                "sum": self.check.get("sum", 0.0) + float(cosines.sum(dtype=np.float64)),
                "count": self.check.get("count", 0) + int(cosines.size),
            }

    def _write(self, name: str, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fds[name], view) :]
        self._sizes[name] += len(data)
        self._crcs[name] = zlib.crc32(data, self._crcs[name])

    def commit(self) -> None:
        """Make everything appended so far durable, then record it in ``state.json``."""
        for fd in self._fds.values():
            os.fsync(fd)
        state = {
            "format": FORMAT,
            "records": self.records,
            "rows": self.rows,
            "counts": self.counts,
            "check": self.check,
            "row_shape": list(self.layout.row_shape),
            "dtype": np.dtype(self.layout.dtype).str,
            "columns": list(self.layout.columns),
            "files": {name: {"size": self._sizes[name], "crc32": self._crcs[name]} for name in self.layout.files()},
            **(self.meta() if callable(self.meta) else self.meta),
            **self.notes,
        }
        write_atomically(self.directory / STATE, json.dumps(state).encode())

    def close(self, commit: bool = True) -> None:
        """Commit (unless ``commit`` is False: a failed run keeps its last commit) and close the files."""
        if self._fds and commit:
            self.commit()
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}


def cut_tail(part: Part) -> None:
    """Cut every file of ``part`` (verified with ``allow_tail``) back to its last commit: what an
    interrupted run appended after it is not part of the results. Never extends a file."""
    for name, committed in part.state["files"].items():
        fd = os.open(part.directory / name, os.O_RDWR | NOFOLLOW)
        try:
            if os.fstat(fd).st_size > committed["size"]:
                os.ftruncate(fd, committed["size"])
        finally:
            os.close(fd)


def restate(part: Part, changes: dict[str, Any]) -> Part:
    """``part`` with its ``state.json`` rewritten atomically: each key of ``changes`` set, or removed where None.

    Only for a part that no run is appending to (its shard's lock held, before the run appends).
    """
    state = {key: value for key, value in {**part.state, **changes}.items() if value is not None}
    write_atomically(part.directory / STATE, json.dumps(state).encode())
    return Part(part.directory, part.layout, state)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a new, exclusively created sibling, so a reader sees old or new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.write(fd, data)
        os.fsync(fd)
        os.fchmod(fd, new_file_mode())  # readable as any other file once in place (assemble runs by lab-mates)
    finally:
        os.close(fd)
    os.replace(tmp, path)
