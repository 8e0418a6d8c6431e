"""Input files that are not what they should be, read through ``SequenceDataset`` as a user reads them.

Each error must be one line that names the file (and the record or byte where
reading stopped) and says what to do. The reference for what a compressed file
holds is the text it was made from, compressed here with the standard library.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from virnucpro.data import SequenceDataset, read_fasta, require_fasta_file

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# bzip2 at level 1 cuts 100 kB blocks, so that a truncated file still holds whole blocks to read.
COMPRESS = {"gzip": lambda b: gzip.compress(b, mtime=0), "bzip2": lambda b: bz2.compress(b, 1), "xz": lzma.compress}


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def proteins(n: int, seed: int = 1) -> list[str]:
    """``n`` FASTA records of 200 random residues, ids ``r0``, ``r1``, ..."""
    rng = random.Random(seed)
    return [f">r{i} protein {i}\n{''.join(rng.choices(AMINO_ACIDS, k=200))}\n" for i in range(n)]


def error_of(call: Callable[[], object]) -> BaseException:
    """The exception ``call()`` raises, checked to be one line (no traceback, no record dump)."""
    with pytest.raises(Exception) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, f"not one short line: {message[:600]!r}"
    return info.value


def read_all(path: Path, **kwargs) -> list[tuple[str, str]]:
    return [(r.id, r.sequence) for r in SequenceDataset(path, **kwargs).records()]


# --- what the path names -------------------------------------------------------------------


def test_a_directory_is_named_as_one(tmp_path):
    folder = tmp_path / "proteins"
    folder.mkdir()
    err = error_of(lambda: SequenceDataset(folder))
    assert isinstance(err, IsADirectoryError), repr(err)
    assert str(err).startswith(f"{folder}: is a directory") and "not a FASTA file" in str(err), str(err)


def test_a_link_to_a_directory_says_both(tmp_path):
    folder = tmp_path / "proteins"
    folder.mkdir()
    (tmp_path / "link.faa").symlink_to(folder)
    err = error_of(lambda: SequenceDataset(tmp_path / "link.faa"))
    assert isinstance(err, IsADirectoryError) and "is a directory" in str(err) and "symbolic link" in str(err), err


def test_a_fifo_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "stream.faa"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: it must not be opened
    err = error_of(lambda: SequenceDataset(fifo))
    assert isinstance(err, ValueError), repr(err)
    assert str(err).startswith(f"{fifo}: is not a regular file (a FIFO)"), str(err)
    err = error_of(lambda: list(read_fasta(fifo)))
    assert "(a FIFO)" in str(err), str(err)


def test_a_character_device_is_refused():
    err = error_of(lambda: SequenceDataset("/dev/null"))
    assert isinstance(err, ValueError) and "is not a regular file (a character device)" in str(err), err


def test_a_link_to_a_regular_file_is_read(tmp_path):
    target = write(tmp_path / "real.faa.gz", gzip.compress(b">a\nMKV\n>b\nQQ\n"))
    link = tmp_path / "link.faa"
    link.symlink_to(target)
    assert read_all(link) == [("a", "MKV"), ("b", "QQ")]


def test_a_dangling_link_says_it_is_one(tmp_path):
    link = tmp_path / "gone.faa"
    link.symlink_to(tmp_path / "deleted.faa")
    err = error_of(lambda: SequenceDataset(link))
    assert isinstance(err, FileNotFoundError) and "no such FASTA file" in str(err), repr(err)
    assert "symbolic link" in str(err) and "deleted.faa" in str(err), str(err)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder any user can enter (pytest's own tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="virnucpro-perm-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def outcome_without_privileges(call: Callable[[], object]) -> str:
    """``"Type: message"`` of what ``call()`` raises, run as user nobody when we are root.

    Root reads any file whatever its mode, so an unreadable file can only be
    tested from a process that dropped root: a forked child, which already has
    virnucpro imported and so needs to read nothing else.
    """
    if os.geteuid() != 0:
        try:
            call()
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        return "no error"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run, report through the pipe, exit without cleanup
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                call()
                result = "no error"
            except Exception as err:
                result = f"{type(err).__name__}: {err}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return result


def test_an_unreadable_file_is_one_line(shared_dir):
    path = write(shared_dir / "secret.faa", ">a\nMKV\n")
    path.chmod(0)
    got = outcome_without_privileges(lambda: SequenceDataset(path))
    assert got == f"PermissionError: {path}: cannot read: Permission denied", got
    got = outcome_without_privileges(lambda: list(read_fasta(path)))
    assert got == f"PermissionError: {path}: cannot read: Permission denied", got


def test_require_fasta_file_accepts_a_readable_file_and_names_a_missing_one(tmp_path):
    path = write(tmp_path / "ok.faa", ">a\nMKV\n")
    assert require_fasta_file(str(path)) == path
    err = error_of(lambda: require_fasta_file(tmp_path / "missing.faa"))
    assert isinstance(err, FileNotFoundError) and str(err) == f"{tmp_path / 'missing.faa'}: no such FASTA file"


# --- compression ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bzip2", "xz"])
def test_bzip2_and_xz_are_read_by_content(tmp_path, kind):
    text = "".join(proteins(300))
    path = write(tmp_path / "proteins.dat", COMPRESS[kind](text.encode()))
    plain = write(tmp_path / "proteins.faa", text)
    assert read_all(path) == read_all(plain) and len(read_all(path)) == 300


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_concatenated_streams_are_read_whole(tmp_path, kind):
    # `cat a.gz b.gz > c.gz` and parallel compressors (pigz, pbzip2, xz -T) write several streams.
    records = proteins(40)
    data = b"".join(COMPRESS[kind]("".join(records[k : k + 10]).encode()) for k in range(0, 40, 10))
    path = write(tmp_path / f"multi.{kind}", data)
    assert [i for i, _ in read_all(path)] == [f"r{i}" for i in range(40)]


@pytest.mark.parametrize(
    ("magic", "name"), [(b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip")], ids=["zstd", "zip"]
)
def test_unsupported_compression_is_named(tmp_path, magic, name):
    path = write(tmp_path / "proteins.faa", magic + bytes(100))
    err = error_of(lambda: read_all(path))
    assert isinstance(err, ValueError) and str(err).startswith(f"{path}: is {name}-compressed"), str(err)


def corrupt_second_member(records: list[str], cut: int) -> bytes:
    """A two-member gzip file whose second member's first deflate block has the invalid type 3."""
    second = bytearray(gzip.compress("".join(records[cut:]).encode(), mtime=0))
    second[10] = 0x06  # BFINAL=0, BTYPE=11: zlib says "invalid block type"
    return gzip.compress("".join(records[:cut]).encode(), mtime=0) + bytes(second)


def damaged(kind: str, how: str) -> bytes:
    records = proteins(1000)
    whole = COMPRESS[kind]("".join(records).encode())
    if how == "corrupt":
        return corrupt_second_member(records, 500)
    if how == "truncated":
        return whole[: len(whole) // 2]
    if how == "bad crc":  # gzip's CRC-32 is the 8th- to 5th-last byte
        return whole[:-8] + bytes([whole[-8] ^ 1]) + whole[-7:]
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("kind", "how"),
    [("gzip", "corrupt"), ("gzip", "truncated"), ("gzip", "bad crc"), ("bzip2", "truncated"), ("xz", "truncated")],
)
def test_damaged_compressed_data_names_the_file_and_the_last_good_record(tmp_path, kind, how):
    path = write(tmp_path / "proteins.faa.z", damaged(kind, how))
    read = []
    err = error_of(lambda: read.extend(read_fasta(path)))
    pattern = rf"{re.escape(str(path))}: corrupt or truncated {kind} data after record (\d+): .+; re-download or re-compress the file"  # noqa: E501
    match = re.fullmatch(pattern, str(err))
    assert isinstance(err, ValueError) and match, str(err)
    assert int(match.group(1)) == len(read) > 0, f"records read before the error: {len(read)}; message: {err}"
    assert [r.id for r in read] == [f"r{i}" for i in range(len(read))]


def test_corrupt_gzip_in_a_worker_reaches_the_main_process_naming_the_file(tmp_path):
    path = write(tmp_path / "proteins.faa.gz", corrupt_second_member(proteins(500), 250))
    loader = DataLoader(SequenceDataset(path, report=False), batch_size=None, num_workers=1, timeout=60)
    pattern = rf"{re.escape(str(path))}: corrupt or truncated gzip data after record 249: [^\n]*invalid block type"
    with pytest.raises(ValueError, match=pattern):
        list(loader)
