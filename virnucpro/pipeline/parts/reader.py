"""Reading a part: nothing is trusted before its files match their last commit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..fingerprint import check_fingerprint
from .format import IDS, META_KEYS, NOFOLLOW, ROWS, STATE, DamagedPartsError, PartLayout, crc32_of, damaged, part_state

__all__ = ["Part", "part_directories", "read_part", "verify_rows"]


@dataclass(frozen=True)
class Part:
    """The verified, committed content of one part folder, read lazily."""

    directory: Path
    layout: PartLayout
    state: dict[str, Any]

    @property
    def records(self) -> int:
        return self.state["records"]

    @property
    def rows(self) -> int:
        return self.state["rows"]

    @property
    def counts(self) -> dict[str, int]:
        return self.state["counts"]

    @property
    def check(self) -> dict[str, float]:
        """The FP8 self-check's (min, sum, count) of cosines over this part's checked rows; empty if none."""
        return self.state.get("check", {})

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.state["fingerprint"]

    @property
    def meta(self) -> dict[str, Any]:
        """The job's description as the run that wrote this part gave it."""
        return {key: self.state[key] for key in META_KEYS if key in self.state}

    def indices(self) -> np.ndarray:
        return self.column("index")

    def column(self, name: str) -> np.ndarray:
        return np.fromfile(self.directory / f"{name}.i64", dtype=np.int64, count=self.records)

    def ids(self) -> list[str]:
        with open(self.directory / IDS, "rb") as handle:
            return handle.read(self.state["files"][IDS]["size"]).decode("utf-8").split("\n")[: self.records]

    def rows_memmap(self) -> np.ndarray:
        if self.rows == 0:
            return np.empty((0, *self.layout.row_shape), dtype=self.layout.dtype)
        return np.memmap(
            self.directory / ROWS, dtype=self.layout.dtype, mode="r", shape=(self.rows, *self.layout.row_shape)
        )


def read_part(
    directory: Path,
    layout: PartLayout | None,
    fingerprint: dict[str, Any] | None,
    *,
    allow_tail: bool = False,
    rows_checksum: bool = True,
) -> Part:
    """The committed content of ``directory``, after checking it against its ``state.json``.

    ``layout``/``fingerprint``: what the caller expects (None: whatever is stored).
    ``allow_tail``: bytes past the committed size are an interrupted run's tail (resume
    cuts them) rather than damage. Raises ``DamagedPartsError`` naming the file otherwise.
    ``rows_checksum=False``: the rows file's size is checked, its CRC-32 left to ``verify_rows``
    (assembly runs it beside the writing of the output, which is installed only once it passes).
    """
    state = part_state(directory)
    stored = PartLayout(tuple(state["row_shape"]), np.dtype(state["dtype"]), tuple(state["columns"]))
    if fingerprint is not None:
        check_fingerprint(directory, state["fingerprint"], fingerprint)
    if layout is not None and stored != layout:
        raise damaged(f"{directory}: stores {stored}, this job writes {layout}")
    if set(state["files"]) != set(stored.files()):
        raise damaged(f"{directory / STATE} lists files {sorted(state['files'])}, not {stored.files()}")
    for name, committed in state["files"].items():
        checksum = rows_checksum or name != ROWS
        _verify_file(directory / name, committed["size"], committed["crc32"] if checksum else None, allow_tail)
    expected = {"index.i64": 8 * state["records"], ROWS: stored.row_bytes * state["rows"]}
    for name, size in expected.items():
        if state["files"][name]["size"] != size:
            raise damaged(f"{directory / STATE}: {name} holds {state['files'][name]['size']} bytes, not {size}")
    return Part(directory, stored, state)


def verify_rows(part: Part) -> None:
    """The CRC-32 check of ``part``'s rows file that ``read_part(..., rows_checksum=False)`` left out."""
    committed = part.state["files"][ROWS]
    _verify_file(part.directory / ROWS, committed["size"], committed["crc32"], allow_tail=False)


def _verify_file(path: Path, size: int, crc: int | None, allow_tail: bool) -> None:
    """``path``'s size against its last commit, and its committed bytes' CRC-32 unless ``crc`` is None."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError as err:
        raise damaged(f"{path}: cannot be opened ({err.strerror})") from err
    try:
        actual = os.fstat(fd).st_size
        if actual < size:
            raise damaged(f"{path} is shorter ({actual} bytes) than its last commit ({size} bytes)")
        if actual > size and not allow_tail:
            raise DamagedPartsError(
                f"{path} holds {actual - size} bytes past its last commit: the run that wrote it did not finish; "
                "rerun it with resume=True (CLI: --resume)"
            )
        if crc is not None and crc32_of(path, size, fd) != crc:
            raise damaged(f"{path}: its committed bytes do not match their checksum")
    finally:
        os.close(fd)


def part_directories(parts_dir: Path) -> Iterator[Path]:
    """Every part folder under ``parts_dir``, in name order; anything else there but lock files is refused."""
    for entry in sorted(os.scandir(parts_dir), key=lambda e: e.name):
        if entry.name.endswith(".lock") and entry.is_file(follow_symlinks=False):
            continue
        if entry.name == "assembled.json":
            continue
        if not entry.name.startswith("shard-") or not entry.is_dir(follow_symlinks=False):
            raise DamagedPartsError(
                f"{entry.path}: not a part folder virnucpro wrote (a symlink or a stray file); move it away, then rerun"
            )
        yield Path(entry.path)
