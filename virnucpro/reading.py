"""``read_embeddings``: an output file back as ids, embeddings and an id -> rows lookup, whatever its format."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro.text import resume_command

__all__ = ["Embeddings", "read_attributes", "read_embeddings"]

#: Above this many bytes an HDF5 ``embeddings`` dataset is returned as an h5py dataset (read on
#: indexing) rather than loaded into memory.
IN_MEMORY_BYTES = 1 << 30


@dataclass(frozen=True)
class Embeddings:
    """One output file's content.

    Attributes:
        ids: (N,) str, in input order; duplicates allowed (row i is input record i).
        embeddings: (N, E) / (N, L, E) pooled, or (R, E) / (R, L, E) per-token rows; a NumPy
            array, or for large HDF5 files an h5py dataset (valid while the file is open).
        columns: (N,) int64 per-record columns by name: ``lengths`` (residues embedded),
            ``input_lengths`` (residues in the input), and those of the input kind.
        offsets: (N + 1,) int64 for per-token files (record i's rows are
            ``embeddings[offsets[i]:offsets[i + 1]]``), else None.
        attrs: the job's attributes (model, options, counts, provenance).
    """

    ids: np.ndarray
    embeddings: Any
    columns: Mapping[str, np.ndarray]
    offsets: np.ndarray | None
    attrs: Mapping[str, Any]
    _rows_of: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def rows(self, record_id: str) -> list[int]:
        """The record positions whose id is ``record_id`` (several for a duplicate id); KeyError if none."""
        if not self._rows_of:
            index = defaultdict(list)
            for i, rid in enumerate(self.ids.tolist()):
                index[rid].append(i)
            self._rows_of.update(index)
        return self._rows_of[record_id]

    def __getitem__(self, record_id: str) -> np.ndarray:
        """The embedding of the one record with ``record_id``; ValueError for a duplicate id."""
        rows = self.rows(record_id)
        if len(rows) > 1:
            raise ValueError(f"id {record_id!r} belongs to {len(rows)} records (rows {rows[:5]}); use rows() instead")
        i = rows[0]
        if self.offsets is not None:
            return np.asarray(self.embeddings[int(self.offsets[i]) : int(self.offsets[i + 1])])
        return np.asarray(self.embeddings[i])


def read_embeddings(path: str | os.PathLike, *, in_memory: bool | None = None) -> Embeddings:
    """Read an output of ``virnucpro embed`` (.h5, .npz or .parquet).

    ``in_memory``: load the embeddings into memory (default: unless an HDF5 file's exceed
    ``IN_MEMORY_BYTES``; then ``embeddings`` is an h5py dataset of the file, left open).

    Raises ``FileNotFoundError`` for a missing file, saying so when it is an output whose run
    stopped before writing it (its ``.parts`` folder is there) and how to finish it.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(_missing(path))
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _read_hdf5(path, in_memory)
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise ValueError(f"{path}: not a virnucpro output (.h5, .npz or .parquet)")


def read_attributes(path: str | os.PathLike) -> dict[str, Any]:
    """Only the job's attributes of an output (model, options, counts, provenance)."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            return {key: _plain(value) for key, value in f.attrs.items()}
    return dict(read_embeddings(path).attrs)


def _read_hdf5(path: Path, in_memory: bool | None) -> Embeddings:
    import h5py

    f = h5py.File(path, "r")
    emb = f["embeddings"]
    load = in_memory if in_memory is not None else emb.size * emb.dtype.itemsize <= IN_MEMORY_BYTES
    special = {"ids", "embeddings", "offsets"}
    result = Embeddings(
        ids=f["ids"].asstr()[:],
        embeddings=emb[:] if load else emb,
        columns={name: f[name][:] for name in f if name not in special},
        offsets=f["offsets"][:] if "offsets" in f else None,
        attrs={key: _plain(value) for key, value in f.attrs.items()},
    )
    if load:
        f.close()
    return result


def _read_npz(path: Path) -> Embeddings:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    attrs = json.loads(str(arrays.pop("attributes")))
    offsets = arrays.pop("offsets", None)
    ids, emb = arrays.pop("ids"), arrays.pop("embeddings")
    return Embeddings(ids=ids, embeddings=emb, columns=arrays, offsets=offsets, attrs=attrs)


def _read_parquet(path: Path) -> Embeddings:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    attrs = json.loads(pq.ParquetFile(path).metadata.metadata[b"virnucpro"])  # the file footer's key-value data
    layers = [name for name in table.column_names if name.startswith("embedding")]
    stacked = [np.stack(table.column(name).to_numpy(zero_copy_only=False)) for name in layers]
    emb = stacked[0] if len(stacked) == 1 else np.stack(stacked, axis=1)
    columns = {n: table.column(n).to_numpy() for n in table.column_names if n != "id" and n not in layers}
    return Embeddings(
        ids=np.asarray(table.column("id").to_pylist(), dtype=object), embeddings=emb, columns=columns, offsets=None,
        attrs=attrs,
    )  # fmt: skip


_SPLIT = re.compile(r"^shard-\d+-of-(\d+)\.rank-")


def _missing(path: Path) -> str:
    """Why ``path`` cannot be read: there is no such file, or its run has not finished it."""
    parts = path.with_name(path.name + ".parts")
    if not parts.is_dir() or parts.is_symlink():
        return f"{path}: no such file"
    folders = sorted(entry.name for entry in parts.iterdir() if entry.is_dir() and not entry.is_symlink())
    if any((m := _SPLIT.match(name)) and int(m.group(1)) > 1 for name in folders):
        return (
            f"{path} is not finished: {parts} holds the results of its --shard runs so far; rerun an unfinished "
            f"shard with resume=True (CLI: --resume), then, once every shard is done, assemble_output "
            f"(CLI: virnucpro assemble {path})"
        )
    command = next(filter(None, (_stored_command(parts / name) for name in folders)), "")
    how = f"resume=True (CLI: {resume_command(command)})" if command else "resume=True (CLI: its command with --resume)"
    return f"{path} is not finished: {parts} holds the partial results of a run that stopped; finish it with {how}"


def _stored_command(part: Path) -> str:
    """The command line a part's run recorded (its provenance), or "" where there is none to read."""
    try:
        command = json.loads((part / "state.json").read_text())["attributes"]["command"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return command if isinstance(command, str) else ""


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value
