"""Text that is not sequence text: bytes that are not UTF-8, control and non-ASCII characters, huge ids.

Read through ``SequenceDataset`` as a user reads them. Positions and offsets in
the expected messages are computed here from the bytes written, by hand, so a
reader that counts characters where it should count bytes (or residues after
a letter that ``str.upper`` turned into two) disagrees.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import warnings
from pathlib import Path

import pytest

from pipeline.cli_helpers import run_cli

from virnucpro.data import DnaInput, SequenceDataset, VarlenCollator


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def error_message(path: Path, **kwargs) -> str:
    """The one-line ``ValueError`` that reading ``path`` through ``SequenceDataset`` raises."""
    with pytest.raises(ValueError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            list(SequenceDataset(path, **kwargs).records())
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, f"not one short line: {message[:600]!r}"
    return message


# --- bytes that are not UTF-8 --------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_byte_that_is_not_utf8_is_placed_by_byte_offset_and_line(tmp_path, compressed):
    # Multi-byte characters before it (2, 3 and 4 bytes) make byte and character offsets differ.
    good = "".join(f">r{i} protéine ∆ 🧬\nMKVLAAQQRRST\nMKV\n" for i in range(3000))  # past any read-ahead
    content = good.encode() + b">bad\nMK\xff\xfeVL\n>after\nMKV\n"
    offset = content.index(b"\xff")
    line = content[:offset].count(b"\n") + 1
    path = write(tmp_path / "proteins.faa", gzip.compress(content) if compressed else content)
    message = error_message(path)
    where = "of the decompressed data" if compressed else "of the file"
    expected = (
        f"{path}: record 3001 ('bad'): not UTF-8 text in its sequence: byte 0xff at byte offset {offset} {where} "
        f"(line {line})"
    )
    assert message.startswith(expected), f"expected {expected!r}, got {message!r}"


# Where the first byte that is not UTF-8 is, and what the error must say of it. The file after
# it holds more records, so a reader that blames its read-ahead buffer, not the record, disagrees.
_LATIN1 = "é".encode("latin-1")
_HEADER, _SEQUENCE = "not UTF-8 text in its header", "not UTF-8 text in its sequence"
_PLACES = {
    "record-1-header": (b">caf" + _LATIN1 + b" x\nMKV\n>b\nMKV\n", f"record 1 ('caf\\udce9'): {_HEADER}"),
    "record-2-header": (b">a\nMKV\n>caf" + _LATIN1 + b"\nMKV\n>c\nMKV\n", f"record 2 ('caf\\udce9'): {_HEADER}"),
    "record-2-description": (b">a\nMKV\n>b prot" + _LATIN1 + b"ine\nMKV\n", f"record 2 ('b'): {_HEADER}"),
    "record-2-sequence": (b">a\nMKV\n>b\nMK" + _LATIN1 + b"V\n>c\nMKV\n", f"record 2 ('b'): {_SEQUENCE}"),
    "last-record-past-the-buffer": (
        b"".join(b">r%d\nMKVLAAQQRRST\n" % i for i in range(4000)) + b">last\nMKV" + _LATIN1 + b"\n",
        f"record 4001 ('last'): {_SEQUENCE}",
    ),
    "before-the-first-record": (b"\n\xff\xfe\n>a\nMKV\n", "not UTF-8 text before the first record"),
}


def _compressed(content: bytes, how: str) -> bytes:
    return {"plain": lambda c: c, "gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[how](content)


def _expected(path: Path, place: str, how: str) -> str:
    """The start of the error for ``_PLACES[place]`` written to ``path`` compressed ``how``."""
    content, said = _PLACES[place]
    try:
        content.decode()
    except UnicodeDecodeError as err:
        offset = err.start
    line = content[:offset].count(b"\n") + 1
    where = "of the file" if how == "plain" else "of the decompressed data"
    return f"{path}: {said}: byte 0x{content[offset]:02x} at byte offset {offset} {where} (line {line});"


@pytest.mark.parametrize("how", ["plain", "gzip", "bz2", "xz"])
@pytest.mark.parametrize("place", list(_PLACES))
def test_a_byte_that_is_not_utf8_is_blamed_on_the_record_that_holds_it(tmp_path, place, how):
    path = write(tmp_path / "odd.faa", _compressed(_PLACES[place][0], how))
    message = error_message(path)
    assert message.startswith(_expected(path, place, how)), f"expected {_expected(path, place, how)!r}: {message!r}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["plain", "gzip"])
@pytest.mark.parametrize("place", list(_PLACES))
def test_the_cli_blames_the_record_that_holds_a_byte_that_is_not_utf8(capsys, tmp_path, tiny_checkpoint, place, how):
    path = write(tmp_path / "odd.faa", _compressed(_PLACES[place][0], how))
    result = run_cli(capsys, "embed", path, "-o", tmp_path / "o.h5", "--model", tiny_checkpoint)
    assert result.code == 1 and result.err.startswith(f"virnucpro: error: {_expected(path, place, how)}"), result.err
    assert "nothing was embedded" in result.err and not (tmp_path / "o.h5.parts").exists(), result.err


@pytest.mark.parametrize("how", ["plain", "gzip"])
@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b">a\nACGT\n>caf" + _LATIN1 + b"\nACGT\n", "record 2 ('caf\\udce9'): not UTF-8 text in its header"),
        (b">a\nACGT\n>b\nAC" + _LATIN1 + b"GT\n>c\nACGT\n", "record 2 ('b'): not UTF-8 text in its sequence"),
    ],
    ids=["header", "sequence"],
)
def test_dna_input_blames_the_same_record(tmp_path, content, said, how):
    path = write(tmp_path / "contigs.fna", _compressed(content, how))
    message = error_message(path, kind=DnaInput(6))
    assert message.startswith(f"{path}: {said}: byte 0xe9 at byte offset {content.index(_LATIN1)}"), message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            ">a\nMKV\n".encode("utf-16"),
            "not UTF-8 text before the first record: byte 0xff at byte offset 0 of the file (line 1); "
            "it looks like UTF-16: save it as UTF-8",
        ),
        (
            b">a\nMKV\n>b\nMK\xc3",  # a character cut short at the end of the file
            "record 2 ('b'): not UTF-8 text in its sequence: byte 0xc3 at byte offset 12 of the file (line 4)",
        ),
    ],
    ids=["utf-16", "cut-short"],
)
def test_encoding_errors_say_where_and_what(tmp_path, content, expected):
    path = write(tmp_path / "odd.faa", content)
    message = error_message(path)
    assert message.startswith(f"{path}: {expected}"), message


# --- control characters --------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85", "\x0c"])
@pytest.mark.parametrize("in_id", [False, True], ids=["description", "id"])
def test_control_character_in_a_header_is_refused_while_parsing(tmp_path, char, in_id):
    header = f"WP_2{char}x desc" if in_id else f"WP_2 desc{char}ription"
    path = write(tmp_path / "proteins.faa", f">WP_1\nMKV\n>{header}\nMKV\n>WP_3\nMKV\n")
    message = error_message(path)
    record_id = header.split(None, 1)[0]  # Biopython's id; \x0c and \x85 are whitespace to str.split
    column = header.index(char) + 1
    assert message.startswith(
        f"{path}: record 2 ({record_id!r}): header holds control character {char!r} at character {column}"
    ), message
    assert char not in message, "the raw character must not reach the terminal"


def test_a_tab_in_a_header_is_text(tmp_path):
    path = write(tmp_path / "tabs.faa", ">WP_1\tprotein\tone\nMKV\n")
    assert [(r.id, r.sequence) for r in SequenceDataset(path).records()] == [("WP_1", "MKV")]


@pytest.mark.parametrize("invalid", ["raise", "X"])
@pytest.mark.parametrize("char", ["\x00", "\x1c", "\x1f", "\x07"])
def test_control_character_in_a_sequence_is_refused_even_with_invalid_x(tmp_path, char, invalid):
    # \x1c-\x1f count as whitespace for str.isspace() and were silently dropped; NUL became 'X'.
    path = write(tmp_path / "proteins.faa", f">WP_1\nMKV\n>WP_2\nMK V\nL{char}AQ\n")
    message = error_message(path, invalid=invalid)
    assert message.startswith(f"{path}: record 2 ('WP_2') has control character {char!r} at position 5"), message


# --- non-ASCII characters in sequences -----------------------------------------------------


@pytest.mark.parametrize(
    "char",
    ["ß", "ı", "ſ", "ﬀ", "é", "Ａ", "\u00a0", "\u200b", "\u2028", "🧬"],
    ids=["sharp-s", "dotless-i", "long-s", "ff-ligature", "e-acute", "fullwidth-A", "nbsp", "zwsp", "lsep", "emoji"],
)
@pytest.mark.parametrize("invalid", ["raise", "X"])
def test_non_ascii_in_a_sequence_is_refused_before_case_folding(tmp_path, char, invalid):
    # str.upper() turns 'ß' into 'SS' and 'ı'/'ſ' into 'I'/'S'; Unicode spaces were removed as whitespace.
    # Residue 5 counts M, K, V, L: the line break and the space are not residues.
    text = f">WP_1\nMKV\n>WP_0123 protéine\nMKV\nL {char}AQJ\n>WP_3\nMKV\n"
    path = write(tmp_path / "proteins.faa", text)
    message = error_message(path, invalid=invalid)
    expected = f"{path}: record 2 ('WP_0123') has non-ASCII character {char!r} at position 5;"
    assert message.startswith(expected), message
    assert "invalid='X'" not in message, f"replacing would not help: {message}"


def test_residue_positions_after_multibyte_characters_elsewhere_are_right(tmp_path):
    # Multi-byte characters in headers and earlier records shift byte offsets, never residue positions.
    text = ">WP_ü protéine ∆ 🧬\nMKV\n>WP_0123 ∆∆∆ 🧬🧬\nMK\nVLAJQ\n"
    path = write(tmp_path / "proteins.faa.gz", gzip.compress(text.encode()))
    message = error_message(path)
    assert message.startswith(f"{path}: record 2 ('WP_0123') has invalid residue 'J' at position 6;"), message


# --- huge ids ------------------------------------------------------------------------------

HUGE_ID = "WP_" + "A" * 1_000_000


@pytest.mark.parametrize(
    ("sequence", "kwargs"),
    [
        ("MKVJ", {}),
        ("MKVß", {}),
        ("MK\x00V", {}),
        ("*", {}),
        ("MKVLAAQQ", {"max_length": 4, "on_overlength": "raise"}),
        ("ACGT" * 20, {}),
    ],
    ids=["invalid", "non-ascii", "control", "empty", "overlength", "nucleotide"],
)
def test_a_huge_id_is_cut_in_every_message(tmp_path, sequence, kwargs):
    path = write(tmp_path / "huge.faa", f">short\nMKV\n>{HUGE_ID} description\n{sequence}\n")
    message = error_message(path, **kwargs)
    assert f"record 2 ({HUGE_ID[:60]!r}... (1,000,003 characters))" in message, message[:300]


def test_a_huge_id_with_a_control_character_in_its_header_is_cut(tmp_path):
    path = write(tmp_path / "huge.faa", f">{HUGE_ID}\x00\nMKV\n")
    message = error_message(path)
    assert message.startswith(f"{path}: record 1 ({HUGE_ID[:60]!r}... (1,000,004 characters))"), message[:300]


def test_the_collator_cuts_a_huge_id(batch_converter):
    with pytest.raises(ValueError) as info:
        VarlenCollator(batch_converter)([{"id": HUGE_ID, "sequence": "MKVß"}])
    message = str(info.value)
    assert len(message) < 500 and f"{HUGE_ID[:60]!r}... (1,000,003 characters)" in message, message[:300]
