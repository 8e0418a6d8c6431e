"""A local Hugging Face hub cache built in a test's folder, laid out as huggingface_hub lays it out.

``<cache>/models--owner--name/blobs/<sha256>`` hold the files' bytes, ``snapshots/<commit>/<name>``
are relative symlinks to them and ``refs/main`` holds the commit. huggingface_hub has no offline
API that writes a cache, so it is written here and checked with huggingface_hub's own
``scan_cache_dir``, which would disagree with a wrong layout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants, scan_cache_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache that huggingface_hub (imported already) and subprocesses use; no network allowed."""
    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline must not depend on it
    # huggingface_hub reads the variables when imported: point its constant at the test's cache too
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_model(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT) -> Path:
    """Put every file of ``folder`` into ``cache`` as repo ``repo_id`` at ``commit``; the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(folder.iterdir()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    scanned = {info.repo_id: info for info in scan_cache_dir(cache).repos}
    assert [str(rev.snapshot_path) for rev in scanned[repo_id].revisions] == [str(snapshot)], scanned
    return snapshot
