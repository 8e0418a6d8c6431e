"""Resuming a run that a bad record stopped, once the input is fixed; and which option changes a resume allows.

A run stopped by a bad record at input position b has embedded only records before b: the
validation pass stops it before the GPU gets there, and every DataLoader worker normalises
every record in order, so no batch holding a record past b is ever built. Such a run notes
in each of its parts (``state.json``, key ``STOPPED``) the position b and the SHA-256 of the
records before it as the model is given them (``validation.records_digest``).

A resume whose input differs, by SHA-256, from the one the parts were embedded from is
allowed only from such parts, and only when the new input's records before b have the same
digest and every committed position is below b. The committed rows are then exactly the
rows the fixed input gives there, and batch boundaries before b are the same, so the run
continues as if the fixed input had been given from the start; its parts are restamped
with the new input's identity. Anything else about the input is refused as before: rows of
two different inputs are never mixed.

Options that only decide which records are accepted (``ACCEPTANCE``: ``invalid``,
``allow_nucleotide_like``) may change on a resume: the whole input is validated again under
their new values before any output is written, and a record accepted under both values is
embedded identically under either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .fingerprint import check_fingerprint, differences
from .parts import STOPPED, DamagedPartsError, Part, restate
from .parts.format import META_KEYS

__all__ = ["ACCEPTANCE", "adopt", "stop_marker"]

#: Fingerprint keys a resume may change: they decide which records are accepted, never how one is embedded.
ACCEPTANCE = ("invalid", "allow_nucleotide_like")


def stop_marker(position: int, digest: str) -> dict[str, Any]:
    """What a part notes when a bad record at input ``position`` stopped its run (``digest``: of the records before)."""
    return {"position": position, "records_sha256": digest}


def adopt(parts: Sequence[Part], wanted: dict[str, Any], digest_of: Callable[[int], str]) -> list[Part]:
    """This shard's verified ``parts``, checked to be resumable by the job ``wanted`` describes (its meta).

    ``digest_of(b)``: the digest of this job's records before position b. Parts whose
    fingerprint differs in what ``adopt`` allows are restamped with ``wanted``. Raises
    ``ValueError`` naming every other difference, or why a changed input cannot resume.
    """
    fingerprint = wanted["fingerprint"]
    digest_of = functools.cache(digest_of)
    stale = False
    for part in parts:
        differing = set(differences(part.fingerprint, fingerprint))
        if differing - {"inputs", *ACCEPTANCE}:
            check_fingerprint(part.directory, part.fingerprint, fingerprint)  # raises, naming every difference
        if "inputs" in differing:
            _check_fixed(part, fingerprint, digest_of)
        stale |= bool(differing)
    if not stale:
        return list(parts)
    meta = {key: wanted[key] for key in META_KEYS}
    return [restate(part, {**meta, STOPPED: None}) for part in parts]


def _check_fixed(part: Part, fingerprint: dict[str, Any], digest_of: Callable[[int], str]) -> None:
    """Refuse the changed input unless ``part``'s run was stopped by a bad record and only that record on changed."""
    marker = part.state.get(STOPPED)
    if not isinstance(marker, dict):  # another input altogether: the plain refusal names it
        check_fingerprint(part.directory, part.fingerprint, fingerprint)
    position = int(marker["position"])
    indices = part.indices()
    if indices.size and int(indices.max()) >= position:
        raise DamagedPartsError(
            f"{part.directory}: holds a record at input position {int(indices.max())}, at or past the bad record at "
            f"{position} that stopped its run; pass overwrite=True (CLI: --overwrite) to start over"
        )
    if digest_of(position) != marker["records_sha256"]:
        raise ValueError(
            f"{part.directory}: the input changed before the bad record that stopped its run: its first {position:,} "
            "records must stay as they were (the same ids and residues, in the same order) for their results to be "
            "kept; restore them, or pass overwrite=True (CLI: --overwrite) to start over"
        )
