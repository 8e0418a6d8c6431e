"""Text that is not sequence text: bytes that are not UTF-8, control and non-ASCII characters, huge ids.

Read through ``SequenceDataset`` as a user reads them. Positions and offsets in
the expected messages are computed here from the bytes written, by hand, so a
reader that counts characters where it should count bytes (or residues after
a letter that ``str.upper`` turned into two) disagrees.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from virnucpro.data import SequenceDataset, VarlenCollator


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


# --- huge ids ------------------------------------------------------------------------------

HUGE_ID = "WP_" + "A" * 1_000_000


@pytest.mark.parametrize(
    ("sequence", "kwargs"),
    [
        ("MKVJ", {}),
        ("*", {}),
        ("MKVLAAQQ", {"max_length": 4, "on_overlength": "raise"}),
    ],
    ids=["invalid", "empty", "overlength"],
)
def test_a_huge_id_is_cut_in_every_message(tmp_path, sequence, kwargs):
    path = write(tmp_path / "huge.faa", f">short\nMKV\n>{HUGE_ID} description\n{sequence}\n")
    message = error_message(path, **kwargs)
    assert f"record 2 ({HUGE_ID[:60]!r}... (1,000,003 characters))" in message, message[:300]


def test_the_collator_cuts_a_huge_id(batch_converter):
    with pytest.raises(ValueError) as info:
        VarlenCollator(batch_converter)([{"id": HUGE_ID, "sequence": "MKVß"}])
    message = str(info.value)
    assert len(message) < 500 and f"{HUGE_ID[:60]!r}... (1,000,003 characters)" in message, message[:300]
