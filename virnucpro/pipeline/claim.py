"""Claiming an output: decide, under its lock, whether this run starts, resumes, replaces or skips it.

Everything a run writes for ``OUT`` lives in ``OUT.parts/``, a folder this run creates
(``os.mkdir``, never through a symlink) or finds as a real directory it wrote before:

* ``shard-I-of-N.lock``: held (``lockf``) by the run of shard I for its whole life;
* ``shard-I-of-N.rank-R-of-W/``: one part per rank of that shard (``parts.py``);
* ``assembled.json``: written just before ``OUT`` appears, so that a kill between the
  final rename and the clean-up is recognised as a finished job, not an obstacle.

A plain run is shard 0 of 1. Shards of one output share its parts folder and may run
at the same time, each under its own lock; ``--overwrite`` of a plain run takes every
shard's lock before it discards anything.

An output that exists beside a parts folder was being replaced (by ``--overwrite``) when
its run stopped: ``--resume`` continues the new parts, and the old output is replaced
only when the new one is complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .config import Shard
from .jobs import Job
from .lock import JobLock
from .outputs import OutputKind
from .parts import DamagedPartsError, NeverCommittedError, part_state

__all__ = ["Claim", "Shard", "claim_output", "mark_assembled", "part_name", "release"]

_ASSEMBLED = "assembled.json"
_SHARD = re.compile(r"^shard-(\d+)-of-(\d+)(\.lock|\.rank-(\d+)-of-(\d+))$")


def part_name(shard: Shard, rank: int, world_size: int) -> str:
    return f"{shard.prefix}.rank-{rank}-of-{world_size}"


@dataclass
class Claim:
    """A claimed output: ``done`` when it needs no work (a resumed run found it complete);
    ``existing`` when a resumed run found the output and no parts: done if the output holds
    this job's results, which the caller checks against the job's fingerprint."""

    job: Job
    locks: list[JobLock] = field(default_factory=list)
    done: bool = False
    existing: bool = False
    created_root: bool = False


def claim_output(job: Job, shard: Shard, *, overwrite: bool, resume: bool, output: OutputKind) -> Claim:
    """Lock ``job``'s output for ``shard`` and prepare its parts folder; refuse by name what is not ours.

    ``output``: the shape of the output (a file or a folder, ``outputs.py``)."""
    parts = job.parts_dir
    _check_root(parts)
    if resume and _finished(job, output):
        shutil.rmtree(parts)
        return Claim(job, done=True)
    if resume and output.exists(job.output) and not parts.exists():
        return Claim(job, existing=True)
    if output.exists(job.output) and not (overwrite or resume):  # resume: an interrupted replacement
        raise FileExistsError(f"{job.output} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    created = not parts.exists()
    if created:
        os.mkdir(parts)
    claim = Claim(job, created_root=created)
    try:
        claim.locks.append(JobLock(parts / f"{shard.prefix}.lock", f"{job.output} ({shard.prefix})"))
        _check_split(parts, shard, overwrite)
        if overwrite:
            _discard(claim, shard)
        elif not resume and any(_ours(parts, shard)):
            raise FileExistsError(
                f"{parts} holds partial results of an earlier run; pass resume=True (CLI: --resume) to continue it "
                "or overwrite=True (CLI: --overwrite) to start over"
            )
    except BaseException:
        release(claim, failed=True)
        raise
    return claim


def release(claim: Claim, *, failed: bool) -> None:
    """Drop the locks; after a failure, remove a parts folder this run created if it holds nothing committed."""
    parts = claim.job.parts_dir
    if failed and claim.created_root and parts.is_dir() and not _has_commits(parts):
        shutil.rmtree(parts)
    for lock in claim.locks:
        lock.release()
    claim.locks.clear()


def mark_assembled(job: Job, tmp: Path, output: OutputKind) -> None:
    """Record, before ``tmp`` is renamed onto the output, what the finished output looks like."""
    marker = {"output": job.output.name, "stamp": output.stamp(tmp)}
    (job.parts_dir / _ASSEMBLED).write_text(json.dumps(marker))


def _finished(job: Job, output: OutputKind) -> bool:
    """Whether the parts folder is the leftover of a run whose output was renamed into place."""
    marker = job.parts_dir / _ASSEMBLED
    if not marker.is_file() or marker.is_symlink() or not output.exists(job.output):
        return False
    try:
        recorded = json.loads(marker.read_text())
        stamp = output.stamp(job.output)
    except (OSError, ValueError):
        return False
    return recorded == {"output": job.output.name, "stamp": stamp}


def _check_root(parts: Path) -> None:
    if os.path.lexists(parts) and (parts.is_symlink() or not parts.is_dir()):
        raise DamagedPartsError(
            f"{parts} exists but is not a folder virnucpro made (a {'symlink' if parts.is_symlink() else 'file'}); "
            "move it away or remove it, then rerun"
        )


def _entries(parts: Path) -> list[tuple[Path, re.Match[str] | None]]:
    return [(entry, _SHARD.match(entry.name)) for entry in sorted(parts.iterdir()) if entry.name != _ASSEMBLED]


def _check_split(parts: Path, shard: Shard, overwrite: bool) -> None:
    for entry, match in _entries(parts):
        if match is None:
            raise DamagedPartsError(f"{entry}: not something virnucpro wrote in {parts}; move it away, then rerun")
        if int(match.group(2)) != shard.count and not (overwrite and shard.count == 1):
            raise ValueError(
                f"{parts} holds shards of a split into {match.group(2)}, this run is shard {shard.index}/{shard.count}; "
                "finish that split, assemble_output (CLI: virnucpro assemble), or start over as one run with "
                "overwrite=True (CLI: --overwrite, without --shard)"
            )


def _ours(parts: Path, shard: Shard) -> list[Path]:
    return [entry for entry, match in _entries(parts) if match and entry.name.startswith(shard.prefix + ".rank-")]


def _discard(claim: Claim, shard: Shard) -> None:
    """--overwrite: remove this shard's parts; a plain run first locks and removes every shard's."""
    parts = claim.job.parts_dir
    if shard.count == 1:
        for entry, match in _entries(parts):
            if match and match.group(3) == ".lock" and entry.name != f"{shard.prefix}.lock":
                claim.locks.append(JobLock(entry, f"{claim.job.output} ({entry.stem})"))
    for entry, match in _entries(parts):
        if match is None or (shard.count > 1 and not entry.name.startswith(shard.prefix + ".")):
            continue
        if match.group(3) != ".lock":
            shutil.rmtree(entry)
        elif entry.name != f"{shard.prefix}.lock":  # another split's lock, held by us now
            entry.unlink()
    (parts / _ASSEMBLED).unlink(missing_ok=True)


def _has_commits(parts: Path) -> bool:
    """Whether any part folder has committed a record (so that a resume would keep something)."""
    for entry, match in _entries(parts):
        if match and match.group(4):
            try:
                if part_state(entry)["records"] > 0:
                    return True
            except NeverCommittedError:
                continue
            except DamagedPartsError:  # unreadable: keep it for inspection rather than delete it
                return True
    return False
