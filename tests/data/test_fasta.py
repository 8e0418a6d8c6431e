"""FASTA reading and normalisation, seen through ``SequenceDataset.records()``.

The reference for what a sequence should become is written out here by hand
(upper-case, whitespace gone, one trailing ``*`` dropped, truncated to
``max_length``) or is ESM's own alphabet; errors are checked for the details a
user needs to find the record: file, record id, character, position, fix.
"""

from __future__ import annotations

import gzip
import io
import random
import re
import string
import warnings
from pathlib import Path

import pytest

from virnucpro.data import SequenceDataset, read_fasta


def write(path: Path, text: str | bytes) -> Path:
    """Write ``text`` verbatim (no newline translation, so CRLF stays CRLF)."""
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def records(*paths: Path, **kwargs) -> list[dict]:
    return list(SequenceDataset(list(paths), **kwargs).records())


def seqs_by_id(recs: list[dict]) -> dict[str, str]:
    return {r.id: r.sequence for r in recs}


def matching_warnings(caught: list[warnings.WarningMessage], pattern: str) -> list[str]:
    return [str(w.message) for w in caught if re.search(pattern, str(w.message))]


# --- record splitting ------------------------------------------------------------------------

_SPLITS = {
    "crlf-and-blank-lines": ">a first\r\nMKV\r\n\r\nLAA\r\n\r\n>b\r\nQQ\r\n",
    "spaces-tabs-and-cr-inside": ">a\tdesc  \nMK V\tL\r\nA A  \n>b\n Q Q\n",
    "empty-headers-and-records": ">\n>a\n>  \nMKV\n>b\n",
    "no-final-newline": ">a\nMKV\n>b desc\nQQ",
    "header-only-at-the-end": ">a\nMKV\n>last header",
    "gt-inside-lines": ">a >b\nMK>V\n>c\nQ\n",
    "leading-blank-lines": "\n  \n>a\nMKV\n",
}


@pytest.mark.parametrize("name", list(_SPLITS))
def test_records_are_split_as_biopython_splits_them(tmp_path, name):
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    text = _SPLITS[name]
    path = write(tmp_path / "split.faa", text)
    got = [(r.id, r.sequence) for r in read_fasta(path)]
    lines = io.StringIO(text.lstrip(), newline=None)
    expected = [(title.split(None, 1)[0] if title.strip() else "", seq) for title, seq in SimpleFastaParser(lines)]
    assert got == expected


# --- normalisation ---------------------------------------------------------------------------


def test_lower_case_becomes_upper_case(tmp_path):
    path = write(tmp_path / "lower.faa", ">a\nmkvlaa\n>b\nMkVlAa\n")
    assert seqs_by_id(records(path)) == {"a": "MKVLAA", "b": "MKVLAA"}


def test_crlf_line_endings_and_blank_lines(tmp_path):
    text = ">a first protein\r\nMKV\r\n\r\nLAA\r\n\r\n\r\n>b\r\nQQ\r\nRR\r\n\r\n"
    path = write(tmp_path / "crlf.faa", text)
    recs = records(path)
    assert [(r.id, r.sequence) for r in recs] == [("a", "MKVLAA"), ("b", "QQRR")]


@pytest.mark.parametrize("lead", ["\n", "\r\n", " \t\n\n"])
def test_blank_lines_before_the_first_header_are_allowed(tmp_path, lead):
    # read_fasta itself skips leading whitespace when it checks for a header, so
    # such a file is FASTA; Biopython's 'fasta' parser alone rejects it.
    path = write(tmp_path / "leading_blank.faa", lead + ">a\nMKV\n>b\nQQ\n")
    assert seqs_by_id(records(path)) == {"a": "MKV", "b": "QQ"}


def test_whitespace_inside_lines_is_removed(tmp_path):
    path = write(tmp_path / "spaces.faa", ">a\nMK V\tLA  A \n  QQ\t\n>b\n R R \n")
    assert seqs_by_id(records(path)) == {"a": "MKVLAAQQ", "b": "RR"}


def test_one_trailing_stop_is_removed(tmp_path):
    # The '*' may sit on a line of its own, and may follow lower-case residues.
    path = write(tmp_path / "stop.faa", ">a\nMKV*\n>b\nmkv\n*\n>c\nMKV\n")
    assert seqs_by_id(records(path)) == {"a": "MKV", "b": "MKV", "c": "MKV"}


def test_two_trailing_stops_leave_one_which_is_invalid(tmp_path):
    path = write(tmp_path / "stops.faa", ">ok\nMK\n>twice\nMKVL**\n")
    with pytest.raises(ValueError) as info:
        records(path)
    message = str(info.value)
    assert "twice" in message and "'*'" in message, message
    assert re.search(r"\b5\b", message), f"the first '*' is residue 5: {message}"


def test_internal_stop_is_invalid(tmp_path):
    path = write(tmp_path / "internal.faa", ">mid\nMK*VL\n")
    with pytest.raises(ValueError) as info:
        records(path)
    message = str(info.value)
    assert "mid" in message and "'*'" in message and re.search(r"\b3\b", message), message


def test_accepts_exactly_the_single_character_tokens_of_esm_but_gaps(tmp_path, alphabet):
    """Every printable character, in both cases, against ESM's alphabet as the reference.

    With ``invalid="X"`` an accepted character comes out upper-cased and a
    rejected one as ``X``, so one file checks them all. ESM's alignment gaps ``-`` and
    ``.`` are tokens but no protein's residues: they are refused like unknown ones.
    """
    esm_residues = {tok for tok in alphabet.all_toks if len(tok) == 1} - {"-", "."}
    chars = [c for c in string.printable if not c.isspace() and c != ">"]
    text = "".join(f">c{i}\nA{c}A\n" for i, c in enumerate(chars))
    path = write(tmp_path / "all.faa", text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = seqs_by_id(records(path, invalid="X"))
    expected = {f"c{i}": "A" + (c.upper() if c.upper() in esm_residues else "X") + "A" for i, c in enumerate(chars)}
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, f"{len(wrong)} characters handled unlike ESM's alphabet, (got, expected): {wrong}"


@pytest.mark.parametrize("gap", ["-", "."])
def test_an_alignment_gap_is_refused_naming_the_alignment(tmp_path, gap):
    path = write(tmp_path / "aligned.faa", f">a\nMKV\n>WP_2 aligned\nMK{gap}{gap}VL\n")
    with pytest.raises(ValueError) as info:
        records(path)
    message = str(info.value)
    assert message.startswith(f"{path}: record 2 ('WP_2') has alignment gap {gap!r} at position 3"), message
    assert "alignment" in message and "invalid='X'" in message, message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert seqs_by_id(records(path, invalid="X")) == {"a": "MKV", "WP_2": "MKXXVL"}


# --- invalid residues ------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["J", "1", "<"])
def test_invalid_residue_error_names_file_record_character_position_and_fix(tmp_path, char):
    # Line breaks and whitespace are not residues: the bad character is residue 6.
    text = f">first\nMKV\n>WP_0123 some protein\nMKV\nL A{char}Q\n>last\nMKV\n"
    path = write(tmp_path / "proteins.faa", text)
    with pytest.raises(ValueError) as info:
        records(path)
    message = str(info.value)
    assert str(path) in message, message
    assert "WP_0123" in message, message
    assert repr(char) in message, message
    assert re.search(r"position 6\b", message), message
    assert "invalid='X'" in message, message


def test_invalid_x_replaces_and_counts_in_one_warning(tmp_path):
    path = write(tmp_path / "bad.faa", ">a\nMKJL1\n>b\nQQ\n>c\nj#R*\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = seqs_by_id(records(path, invalid="X"))
    assert got == {"a": "MKXLX", "b": "QQ", "c": "XXR"}
    replaced = matching_warnings(caught, r"replac")
    assert len(replaced) == 1, f"expected one warning about replacements, got {replaced}"
    assert re.search(r"\b4\b", replaced[0]), f"4 residues were replaced: {replaced[0]}"


# --- over-length -----------------------------------------------------------------------------


def test_overlength_is_truncated_keeping_the_original_length(tmp_path):
    lengths = {"a": 5, "b": 10, "c": 11, "d": 25, "e": 1}
    rng = random.Random(0)
    full = {k: "".join(rng.choices("ACDEFGHIKLMNPQRSTVWY", k=n)) for k, n in lengths.items()}
    path = write(tmp_path / "long.faa", "".join(f">{k}\n{s}*\n" for k, s in full.items()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = records(path, max_length=10)
    assert {r.id: (r.sequence, r.length) for r in recs} == {k: (s[:10], len(s)) for k, s in full.items()}
    truncated = matching_warnings(caught, r"truncat")
    assert len(truncated) == 1, f"expected one warning about truncation, got {truncated}"
    assert re.search(r"\b2\b", truncated[0]), f"2 sequences were truncated: {truncated[0]}"


def test_overlength_raise_names_the_record(tmp_path):
    path = write(tmp_path / "long.faa", ">short\nMKV\n>toolong\nMKVLAAQQRRS\n")
    with pytest.raises(ValueError) as info:
        records(path, max_length=10, on_overlength="raise")
    message = str(info.value)
    assert "toolong" in message and str(path) in message and re.search(r"\b11\b", message), message


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [("header_only", ">a\nMKV\n>empty protein\n>b\nQQ\n"), ("only_stop", ">a\nMKV\n>empty\n*\n>b\nQQ\n")],
)
def test_empty_record_is_an_error_naming_it(tmp_path, name, text):
    path = write(tmp_path / f"{name}.faa", text)
    with pytest.raises(ValueError) as info:
        records(path)
    message = str(info.value)
    assert "'empty'" in message and str(path) in message, message


def test_missing_file_fails_at_construction_naming_the_path(tmp_path):
    good = write(tmp_path / "good.faa", ">a\nMKV\n")
    missing = tmp_path / "no_such.faa"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        SequenceDataset([good, missing])


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("text.faa", b"hello\nworld\n"),
        ("binary.faa", bytes(random.Random(0).randrange(256) for _ in range(3000))),
        ("utf16.faa", ">a\nMKV\n".encode("utf-16")),
        ("latin1.faa", ">caf\xe9\nMKV\n".encode("latin-1")),
    ],
)
def test_not_fasta_is_an_error_naming_the_file(tmp_path, name, content):
    path = write(tmp_path / name, content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        records(path)


def test_corruption_after_many_good_records_is_an_error_naming_the_file(tmp_path):
    good = "".join(f">r{i}\n{'MKVLAAQQRRST' * 10}\n" for i in range(2000))  # well past any read-ahead
    path = write(tmp_path / "corrupt.faa", good.encode() + b">bad\nMK\xff\xfeVL\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        records(path)


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path):
    rng = random.Random(1)
    text = "".join(f">r{i}\n{''.join(rng.choices('ACDEFGHIKLMNPQRSTVWY', k=200))}\n" for i in range(500))
    whole = gzip.compress(text.encode())
    path = write(tmp_path / "cut.faa.gz", whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        records(path)


def test_empty_and_whitespace_files_yield_nothing_and_keep_indices(tmp_path):
    first = write(tmp_path / "first.faa", ">a\nMKV\n>b\nQQ\n")
    empty = write(tmp_path / "empty.faa", "")
    blank = write(tmp_path / "blank.faa", "  \n\r\n\t\n")
    empty_gz = write(tmp_path / "empty.faa.gz", gzip.compress(b""))
    last = write(tmp_path / "last.faa", ">c\nRR\n>d\nSS\n>e\nTT\n")
    assert records(empty) == [] and records(blank) == [] and records(empty_gz) == []
    got = [(r.index, r.id, r.file, r.number) for r in records(first, empty, blank, empty_gz, last)]
    expected = [
        (0, "a", str(first), 1),
        (1, "b", str(first), 2),
        (2, "c", str(last), 1),
        (3, "d", str(last), 2),
        (4, "e", str(last), 3),
    ]
    assert got == expected


def test_format_is_told_by_content_not_name(tmp_path):
    text = ">a\nMKV\n>b\nQQ\n"
    gz_as_txt = write(tmp_path / "really_gzip.txt", gzip.compress(text.encode()))
    plain_as_gz = write(tmp_path / "really_plain.faa.gz", text)
    expected = {"a": "MKV", "b": "QQ"}
    assert seqs_by_id(records(gz_as_txt)) == expected
    assert seqs_by_id(records(plain_as_gz)) == expected
    assert [(r.id, r.sequence) for r in read_fasta(gz_as_txt)] == [("a", "MKV"), ("b", "QQ")]


def test_id_is_the_header_up_to_the_first_whitespace(tmp_path):
    path = write(tmp_path / "ids.faa", ">sp|P12345|NAME_HUMAN Some protein OS=Homo\nMKV\n>x\tdesc\nQQ\n")
    assert [r.id for r in records(path)] == ["sp|P12345|NAME_HUMAN", "x"]


# --- duplicate ids ---------------------------------------------------------------------------


def test_duplicate_ids_are_kept_and_counted_in_one_warning(tmp_path):
    one = write(tmp_path / "one.faa", ">a\nMK\n>b\nQQ\n>a\nRR\n>c\nSS\n")
    two = write(tmp_path / "two.faa", ">a\nTT\n>b\nVV\n>d\nWW\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = records(one, two)
    assert [(r.index, r.id, r.sequence) for r in recs] == [
        (0, "a", "MK"),
        (1, "b", "QQ"),
        (2, "a", "RR"),
        (3, "c", "SS"),
        (4, "a", "TT"),
        (5, "b", "VV"),
        (6, "d", "WW"),
    ]
    duplicates = matching_warnings(caught, r"\bid\b")
    assert len(duplicates) == 1, f"expected one warning about repeated ids, got {[str(w.message) for w in caught]}"
    assert re.search(r"\b3\b", duplicates[0]), f"3 records repeat an earlier id: {duplicates[0]}"
