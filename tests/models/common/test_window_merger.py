"""``WindowMerger`` on hand-made row groups: what it carries, where it adds, and what it refuses.

The numbers in the rows are chosen so that each expected merged row can be written down:
a window's per-token partial row r is ``start + r`` plus a per-window offset, so the sum at
every protein position is known in closed form.
"""

from __future__ import annotations

import numpy as np
import pytest

from virnucpro.models import RowGroup, WindowMerger

E = 3  # row width


def group(
    records: list[tuple[int, int, int, int, int]], rows: np.ndarray, replaced: list[int] | None = None
) -> RowGroup:
    """Records as ``(index, window_start, window_count, residues, length)``; ``rows`` as given."""
    index, starts, counts, residues, lengths = (np.array(c, dtype=np.int64) for c in zip(*records))
    return RowGroup(
        indices=index,
        ids=[f"r{i}" for i in index],
        residues=residues,
        lengths=lengths,
        replaced=np.array(replaced or [0] * len(records), dtype=np.int64),
        columns={"frame": index * 10},
        rows=rows,
        window_starts=starts,
        window_counts=counts,
    )


def test_plain_groups_pass_through_untouched():
    g = group([(0, 0, 1, 4, 4), (1, 0, 1, 2, 5)], np.ones((2, E), np.float16))
    assert WindowMerger(per_token=False).add(g) is g


def test_pooled_protein_across_groups_with_plain_records_around_it():
    merger = WindowMerger(per_token=False)
    # Protein 1: L = 9, W = 4, stride 2 -> starts 0, 2, 4, 5; partials 1, 2, 3, 4 (sum 10).
    a = merger.add(group([(0, 0, 1, 3, 3), (1, 0, 4, 4, 9)], np.array([[7.0] * E, [1.0] * E], np.float16), [2, 3]))
    assert a.indices.tolist() == [0] and merger.pending_index == 1
    b = merger.add(group([(1, 2, 4, 4, 9), (1, 4, 4, 4, 9)], np.full((2, E), [[2.0], [3.0]], np.float16)))
    assert len(b) == 0 and b.rows.shape == (0, E) and b.rows.dtype == np.float16
    c = merger.add(group([(1, 5, 4, 4, 9), (2, 0, 1, 5, 5)], np.full((2, E), [[4.0], [8.0]], np.float16), [0, 1]))
    assert merger.pending_index is None
    merger.finish()
    assert c.indices.tolist() == [1, 2] and c.ids == ["r1", "r2"]
    assert c.residues.tolist() == [9, 5] and c.lengths.tolist() == [9, 5]
    assert c.replaced.tolist() == [3, 1] and c.columns["frame"].tolist() == [10, 20]
    assert c.window_starts.tolist() == [0, 0] and c.window_counts.tolist() == [1, 1]
    assert c.rows.dtype == np.float16 and c.rows.tolist() == [[10.0] * E, [8.0] * E]


def test_per_token_rows_are_added_at_their_positions():
    merger = WindowMerger(per_token=True)
    length, width, starts = 7, 4, [0, 2, 3]

    def window_rows(k: int, start: int) -> np.ndarray:
        return (np.arange(start, start + width, dtype=np.float32)[:, None] + 100 * k).repeat(E, 1)

    plain = np.full((2, E), -1.0, np.float32)
    first = merger.add(group([(0, 0, 1, 2, 2), (1, 0, 3, width, length)], np.concatenate([plain, window_rows(0, 0)])))
    assert first.indices.tolist() == [0] and np.array_equal(first.rows, plain)
    rest = merger.add(
        group(
            [(1, s, 3, width, length) for s in starts[1:]],
            np.concatenate([window_rows(k + 1, s) for k, s in enumerate(starts[1:])]),
        )
    )
    expected = np.zeros((length, E), np.float32)
    for k, s in enumerate(starts):
        expected[s : s + width] += window_rows(k, s)
    assert rest.indices.tolist() == [1] and rest.residues.tolist() == [length]
    assert np.array_equal(rest.rows, expected)


def test_windows_out_of_order_or_interrupted_are_refused():
    rows = np.zeros((1, E), np.float32)
    with pytest.raises(
        ValueError, match="window at residue 2 of the protein at input position 4 arrived before its first"
    ):
        WindowMerger(False).add(group([(4, 2, 3, 4, 8)], rows))
    merger = WindowMerger(False)
    merger.add(group([(4, 0, 3, 4, 8)], rows))
    with pytest.raises(
        ValueError, match=r"position 4 \('r4'\) had 1 of its 3 windows when the record at input position 5"
    ):
        merger.add(group([(5, 0, 1, 4, 4)], rows))
    merger = WindowMerger(False)
    merger.add(group([(4, 0, 3, 4, 8), (4, 2, 3, 4, 8)], np.zeros((2, E), np.float32)))
    with pytest.raises(ValueError, match="had 2 of its 3 windows .*window start 2.*consecutively and in order"):
        merger.add(group([(4, 2, 3, 4, 8)], rows))
    with pytest.raises(
        ValueError, match=r"the stream ended with the protein at input position 4 \('r4'\) incomplete: 2 of"
    ):
        merger.finish()


def test_a_last_window_short_of_the_end_and_wrong_row_counts_are_refused():
    merger = WindowMerger(False)
    with pytest.raises(
        ValueError, match="last window of the protein at input position 0 ends at residue 6, not at its end"
    ):
        merger.add(group([(0, 0, 2, 4, 9), (0, 2, 2, 4, 9)], np.zeros((2, E), np.float32)))
    with pytest.raises(ValueError, match="need 8 rows, got 2.*per_token"):
        WindowMerger(True).add(group([(0, 0, 2, 4, 6), (0, 2, 2, 4, 6)], np.zeros((2, E), np.float32)))
