"""``contigs.tsv`` against a pandas computation of the same summary, and VirNucPro's own per-chunk calls.

The reference groups the frames with pandas by (record, chunk) and applies VirNucPro's own
``determine_virus`` (vendored verbatim); for records whose id is unique, the viral chunk count
is also read from VirNucPro's ``prediction_results_highestscore.csv`` written by its own code.
"""

from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predict_outputs import Frames, frames_of, write_fasta, write_output
from virnucpro.tasks.predict import CONTIG_COLUMNS, CONTIGS_FILE, HIGHEST_FILE, ContigRecord, ContigTable

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
from virnucpro_prediction import determine_virus  # noqa: E402


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Frames:
    return frames_of(write_fasta(tmp_path_factory.mktemp("fasta") / "contigs.fa"))


def reference(frames: Frames) -> pd.DataFrame:
    """The summary per record, by pandas and VirNucPro's determine_virus, indexed by record position."""
    table = pd.DataFrame(
        {"source": frames.sources, "chunk": frames.chunks, "score1": frames.scores[:, 0], "score2": frames.scores[:, 1]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        called = table.groupby(["source", "chunk"])[["score1", "score2"]].apply(determine_virus)
    maxima = table.groupby(["source", "chunk"]).max()
    per_chunk = maxima.join(called).reset_index()
    return (
        per_chunk.groupby("source")
        .agg(
            scored_chunks=("chunk", "size"),
            virus_chunks=("Is_Virus", "sum"),
            max_virus_score=("score2", "max"),
            mean_virus_score=("score2", "mean"),
        )
        .join(table.groupby("source").size().rename("frames"))
    )


def test_table_matches_the_reference(tmp_path, frames):
    out = write_output(tmp_path / "out", frames)
    got = pd.read_csv(out / CONTIGS_FILE, sep="\t", keep_default_na=False, dtype=str)
    assert tuple(got.columns) == CONTIG_COLUMNS
    assert list(got["id"]) == [record.id for record in frames.records]  # every record, in input order
    expected = reference(frames)
    assert {"empty", "all_N"} <= set(got["id"]) and len(expected) < len(frames.records)  # records without frames
    for index, (record, row) in enumerate(zip(frames.records, got.itertuples(index=False))):
        assert (int(row.length), int(row.chunks)) == (record.length, record.chunks)
        assert row.virus_fraction == (repr(int(row.virus_chunks) / record.chunks) if record.chunks else "")
        if index not in expected.index:
            assert (row.scored_chunks, row.frames, row.virus_chunks) == ("0", "0", "0")
            assert row.max_virus_score == row.mean_virus_score == ""
            continue
        want = expected.loc[index]
        assert (int(row.scored_chunks), int(row.frames), int(row.virus_chunks)) == (
            want.scored_chunks,
            want.frames,
            want.virus_chunks,
        ), record.id
        assert row.max_virus_score == str(np.float32(want.max_virus_score))
        mean = float(row.mean_virus_score)  # pandas sums in its own order: equal to a float32 ulp
        assert mean == pytest.approx(want.mean_virus_score, rel=2**-23), (mean, want.mean_virus_score)


def test_virus_chunks_agree_with_virnucpros_csv(tmp_path, frames):
    out = write_output(tmp_path / "out", frames)
    calls = pd.read_csv(out / HIGHEST_FILE, sep="\t", keep_default_na=False)
    got = pd.read_csv(out / CONTIGS_FILE, sep="\t", keep_default_na=False)
    unique = got[~got["id"].duplicated(keep=False)]
    for row in unique.itertuples(index=False):
        mine = calls[calls["Modified_ID"].str.rsplit("_chunk_", n=1).str[0] == row.id]
        assert (len(mine), int(mine["Is_Virus"].sum())) == (row.scored_chunks, row.virus_chunks), row.id


@pytest.mark.parametrize("order", ["records first", "frames first", "interleaved"])
def test_streams_in_any_interleaving_give_the_same_file(tmp_path, frames, order):
    expected = (write_output(tmp_path / "expected", frames) / CONTIGS_FILE).read_bytes()
    rng = random.Random(order)
    table = ContigTable(tmp_path / "got.tsv")
    steps = [("frames", start) for start in range(0, len(frames.ids), 29)]
    records = [("records", index) for index in range(len(frames.records))]
    if order == "records first":
        steps = records + steps
    elif order == "frames first":
        steps = steps + records
    else:  # records in order, frames in order, merged at random
        merged, steps = [], list(steps)
        while records or steps:
            source = records if records and (not steps or rng.random() < 0.4) else steps
            merged.append(source.pop(0))
        steps = merged
    for kind, start in steps:
        if kind == "records":
            table.add_records([frames.records[start]])
        else:
            part = slice(start, start + 29)
            table.add_frames(frames.sources[part], frames.chunks[part], frames.scores[part])
    assert table.finish() == len(frames.records)
    assert (tmp_path / "got.tsv").read_bytes() == expected


def test_inconsistent_streams_are_refused(tmp_path):
    scores = np.array([[0.4, 0.6], [0.7, 0.3]], dtype=np.float32)
    table = ContigTable(tmp_path / "a.tsv")
    with pytest.raises(ValueError, match="out of input order: record 0 chunk 1 came after record 1 chunk 1"):
        table.add_frames([1, 0], [1, 1], scores)
    table = ContigTable(tmp_path / "b.tsv")
    table.add_records([ContigRecord("a", 10, 1)])
    table.add_frames([0, 1], [1, 1], scores)
    with pytest.raises(ValueError, match=r"frames of record\(s\) \[1\] arrived, but only 1 records were given"):
        table.finish()
    table = ContigTable(tmp_path / "c.tsv")
    table.add_frames([0], [3], scores[:1])
    with pytest.raises(ValueError, match=r"record 0 \('a'\) has 2 chunk\(s\), but frames of its chunk 3 arrived"):
        table.add_records([ContigRecord("a", 600, 2)])
        table.finish()
