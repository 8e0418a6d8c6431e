"""sha256_file, identify and their cache, against hashlib on the files' bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time

import pytest

from virnucpro.pipeline import digests
from virnucpro.pipeline.digests import MAX_ENTRIES, RACY_WINDOW_NS, FileIdentity, identify, identify_all, sha256_file


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries(cache) -> dict:
    return json.loads(cache.read_text())["entries"]


@pytest.fixture(scope="module")
def aged(tmp_path_factory):
    """A folder of files old enough to be cached: their ctime is past the racy window."""
    folder = tmp_path_factory.mktemp("aged")
    for i in range(32):
        (folder / f"f{i}.bin").write_bytes(os.urandom(1000 + i))
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.2)
    return folder


@pytest.mark.parametrize("size", [0, 1, 8 << 20, (8 << 20) + 3, 20_000_001])
def test_the_digest_is_hashlibs_of_the_bytes(tmp_path, size):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(size))
    assert sha256_file(path, cache=None) == sha256(path)
    assert sha256_file(path, cache=tmp_path / "cache.json") == sha256(path)


def test_the_identity_is_the_resolved_file_as_hashed(aged, tmp_path):
    link = tmp_path / "link.bin"
    link.symlink_to(aged / "f0.bin")
    identity = identify(link, cache=None)
    status = (aged / "f0.bin").stat()
    assert identity == FileIdentity((aged / "f0.bin").resolve(), status.st_size, status.st_mtime_ns, sha256(link))
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.sha256 = "0" * 64


def test_a_cached_digest_is_used_while_the_stamp_holds(aged, tmp_path):
    cache, path = tmp_path / "cache.json", aged / "f1.bin"
    assert sha256_file(path, cache=cache) == sha256(path)
    key = str(path.resolve())
    assert entries(cache)[key][5] == sha256(path)
    # Forge the cached digest: if the file were read again, the forgery would not come back.
    data = json.loads(cache.read_text())
    data["entries"][key][5] = "0" * 64
    cache.write_text(json.dumps(data))
    assert sha256_file(path, cache=cache) == "0" * 64
    assert sha256_file(path, cache=None) == sha256(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_cache_hit_does_not_open_the_file(aged, tmp_path):
    cache, path = tmp_path / "cache.json", aged / "f2.bin"
    expected = sha256_file(path, cache=cache)
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        assert sha256_file(path, cache=cache) == expected
    finally:
        path.chmod(mode)


def test_same_size_content_with_its_mtime_restored_is_hashed_again(aged, tmp_path):
    cache, path = tmp_path / "cache.json", aged / "f3.bin"
    before = path.stat()
    assert sha256_file(path, cache=cache) == sha256(path)
    with path.open("r+b") as handle:  # same inode, same size: what cp -p or touch -r leaves
        handle.write(os.urandom(before.st_size))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert sha256_file(path, cache=cache) == sha256(path)


def test_a_file_written_just_now_is_not_cached(tmp_path):
    cache, path = tmp_path / "cache.json", tmp_path / "new.bin"
    path.write_bytes(b"fresh")
    assert sha256_file(path, cache=cache) == sha256(path)
    assert not cache.exists() or str(path.resolve()) not in entries(cache)


@pytest.mark.parametrize(
    "content", [b"\x00\xffnot json", b"[1, 2]", b'{"version": 99, "entries": {}}', b"[" * 100_000], ids=repr
)
def test_a_corrupt_cache_is_ignored_and_rewritten(aged, tmp_path, content):
    cache, path = tmp_path / "cache.json", aged / "f4.bin"
    cache.write_bytes(content)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert sha256_file(path, cache=cache) == sha256(path)
    assert entries(cache)[str(path.resolve())][5] == sha256(path)


def test_corrupt_entries_are_dropped_and_good_ones_kept(aged, tmp_path):
    cache, good, bad = tmp_path / "cache.json", aged / "f5.bin", aged / "f6.bin"
    sha256_file(good, cache=cache)
    data = json.loads(cache.read_text())
    data["entries"][str(bad.resolve())] = [1, 2, True, 4, 5, "not a digest"]
    cache.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match="dropped 1 corrupt entries"):
        assert sha256_file(bad, cache=cache) == sha256(bad)
    assert {str(good.resolve()), str(bad.resolve())} <= entries(cache).keys()


def test_an_unwritable_cache_folder_only_costs_a_warning(aged, tmp_path):
    (tmp_path / "not_a_folder").write_text("")
    cache, path = tmp_path / "not_a_folder" / "cache.json", aged / "f7.bin"
    with pytest.warns(RuntimeWarning, match="cannot write the digest cache"):
        assert sha256_file(path, cache=cache) == sha256(path)


def test_a_symlinked_cache_file_is_neither_followed_nor_replaced(aged, tmp_path):
    path, target, cache = aged / "f8.bin", tmp_path / "elsewhere.json", tmp_path / "cache.json"
    stamp = digests._stamp(path.resolve().stat())
    forged = json.dumps({"version": 1, "entries": {str(path.resolve()): [*stamp, "0" * 64]}})
    target.write_text(forged)
    cache.symlink_to(target)
    with pytest.warns(RuntimeWarning, match="unusable"):
        assert sha256_file(path, cache=cache) == sha256(path)
    assert cache.is_symlink() and target.read_text() == forged


def test_the_cache_keeps_the_most_recent_entries(aged, tmp_path):
    cache, path = tmp_path / "cache.json", aged / "f9.bin"
    fake = {f"/nowhere/{i}": [0, i, 1, 1, 1, "0" * 64] for i in range(MAX_ENTRIES)}
    cache.write_text(json.dumps({"version": 1, "entries": fake}))
    sha256_file(path, cache=cache)
    kept = list(entries(cache))
    assert len(kept) == MAX_ENTRIES and kept[-1] == str(path.resolve()) and "/nowhere/0" not in kept


def test_concurrent_writers_never_corrupt_the_cache(aged, tmp_path):
    cache = tmp_path / "cache.json"
    paths = [aged / f"f{i}.bin" for i in range(10, 30)]
    results: dict = {}

    def work(share):
        for path in share:
            results[path] = sha256_file(path, cache=cache)

    threads = [threading.Thread(target=work, args=(paths[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[path] == sha256(path) for path in paths)
    assert all(entry[5] == sha256(aged / os.path.basename(key)) for key, entry in entries(cache).items())
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_identify_all_keeps_the_order(aged, tmp_path):
    paths = [aged / "f31.bin", aged / "f30.bin", aged / "f31.bin"]
    assert [i.sha256 for i in identify_all(paths, cache=tmp_path / "c.json")] == [sha256(p) for p in paths]


def test_the_default_cache_follows_xdg(aged, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    sha256_file(aged / "f0.bin")
    assert str((aged / "f0.bin").resolve()) in entries(tmp_path / "xdg" / "virnucpro" / "sha256.json")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert digests.default_cache_path() == tmp_path / "home" / ".cache" / "virnucpro" / "sha256.json"


def test_what_has_no_content_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "absent.bin", cache=None)
    with pytest.raises(ValueError, match="not a regular file"):
        sha256_file(tmp_path, cache=None)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="pipe: not a regular file"):
        sha256_file(tmp_path / "pipe", cache=None)


def test_a_killed_writers_temporaries_are_removed_and_a_live_ones_kept(aged, tmp_path):
    cache = tmp_path / "cache.json"
    stale, fresh = tmp_path / ".cache.json.killed.tmp", tmp_path / ".cache.json.writing.tmp"
    stale.write_text("")  # what a process killed between creating and writing it leaves
    fresh.write_text("")
    old = time.time() - digests.STALE_TEMPORARY_S - 60
    os.utime(stale, (old, old))
    assert sha256_file(aged / "f12.bin", cache=cache) == sha256(aged / "f12.bin")
    assert not stale.exists() and fresh.exists(), "only a temporary no live writer can own is removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.json.writing.tmp", "cache.json"]


def test_closing_the_cache_waits_for_a_write_and_blocks_the_next(aged, tmp_path):
    # virnucpro.cli.entry() ends the process with os._exit: a hashing thread must not be cut mid-write.
    entered, release = threading.Event(), threading.Event()
    original = digests._write_locked

    def slow_write(file, entries):
        entered.set()
        release.wait(10)
        original(file, entries)

    digests._write_locked = slow_write
    late = None
    try:
        writer = threading.Thread(target=sha256_file, args=(aged / "f13.bin",), kwargs={"cache": tmp_path / "c.json"})
        writer.start()
        assert entered.wait(10)
        closer = threading.Thread(target=digests.close_cache)
        closer.start()
        closer.join(0.3)
        assert closer.is_alive(), "close_cache returned while a write was in progress"
        release.set()
        closer.join(10)
        assert not closer.is_alive() and (tmp_path / "c.json").is_file()
        writer.join(10)
        late = threading.Thread(target=sha256_file, args=(aged / "f14.bin",), kwargs={"cache": tmp_path / "c.json"})
        late.start()
        late.join(0.3)
        assert late.is_alive(), "a write after close_cache must wait for the process to end"
    finally:
        digests._write_locked = original
        release.set()
        if digests._WRITING.locked():
            digests._WRITING.release()  # reopen the cache for the rest of this test process
        if late is not None:
            late.join(10)
