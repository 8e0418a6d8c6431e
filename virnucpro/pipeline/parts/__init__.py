"""Crash-safe partial results: per-(shard, rank) append-only folders, verified before they are trusted."""

from .format import STOPPED, DamagedPartsError, Meta, NeverCommittedError, PartLayout, part_state
from .reader import Part, part_directories, read_part, verify_rows
from .writer import PartWriter, cut_tail, restate

__all__ = [
    "STOPPED",
    "DamagedPartsError",
    "Meta",
    "NeverCommittedError",
    "Part",
    "PartLayout",
    "PartWriter",
    "cut_tail",
    "part_directories",
    "part_state",
    "read_part",
    "restate",
    "verify_rows",
]
