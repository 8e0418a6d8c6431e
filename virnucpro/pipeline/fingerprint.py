"""The resume fingerprint: what must not change between an interrupted run and its continuation.

Files are identified by content (SHA-256 and size), not by name or time: a checkpoint
copied over the model's path is caught, while the same checkpoint reached through
another path, or touched, still resumes. The model's files are those its family names
(``ModelFamily.files``): a checkpoint, or a folder's config.json, tokenizer.json and weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virnucpro.data import InputKind
from virnucpro.models import ModelFamily

from .digests import FileIdentity, identify

__all__ = [
    "FORMAT",
    "check_fingerprint",
    "differences",
    "input_identities",
    "job_fingerprint",
    "model_fields",
    "model_identities",
    "same_job",
]

FORMAT = 3
# May differ between the shards of one output (each sizes its batches for its own GPU).
_PER_SHARD = ("max_tokens",)


def model_identities(family: ModelFamily, model: str) -> dict[str, FileIdentity]:
    """SHA-256 and size of every file the model spec reads, by its role (``ModelFamily.files``:
    "model", "config", "tokenizer", ...); empty for ``random:`` specs."""
    return {role: identify(path) for role, path in family.files(model).items()}


def input_identities(inputs: Sequence[Path]) -> list[FileIdentity]:
    """SHA-256 and size of every input, in order."""
    return [identify(path) for path in inputs]


def _content(identity: FileIdentity) -> dict[str, Any]:
    return {"sha256": identity.sha256, "size": identity.size}


def job_fingerprint(
    task: str,
    inputs: Sequence[FileIdentity],
    kind: InputKind,
    max_tokens: int,
    shards: int,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """What a job's partial results depend on: the machinery's fields and the task's ``fields``
    (its models, options and precision)."""
    return {
        "format": FORMAT,
        "task": task,
        "inputs": [_content(identity) for identity in inputs],
        "input_kind": kind.describe(),
        "max_tokens": max_tokens,
        "shards": shards,
        **fields,
    }


def model_fields(spec: str, files: dict[str, FileIdentity]) -> dict[str, Any]:
    """A model's entry in a fingerprint: its seed for ``random:``, its checkpoint's content, or each
    file's by role (``model_identities``)."""
    if not files:
        return {"random": spec, "seed": 0}
    if set(files) == {"model"}:
        return _content(files["model"])
    return {role: _content(identity) for role, identity in sorted(files.items())}


def differences(a: dict[str, Any], b: dict[str, Any], *, across_shards: bool = False) -> list[str]:
    """The keys on which two fingerprints differ; ``across_shards``: leaving out what shards of one
    job may have apart (their batch budgets)."""
    ignored = _PER_SHARD if across_shards else ()
    return sorted(k for k in set(a) | set(b) if k not in ignored and a.get(k) != b.get(k))


def same_job(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two shards' fingerprints describe one job."""
    return not differences(a, b, across_shards=True)


def check_fingerprint(where: Path, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse, naming every difference, partial results whose job differs from this one."""
    differing = differences(found, wanted)
    if differing:
        details = "; ".join(f"{k}: stored {found.get(k)!r}, now {wanted.get(k)!r}" for k in differing)
        raise ValueError(
            f"{where}: the partial results come from a different job ({details}); "
            "rerun with the same inputs and options to resume, or pass overwrite=True (CLI: --overwrite) to start over"
        )
