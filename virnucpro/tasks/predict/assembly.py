"""How ``predict``'s parts become its output folder, from the parts alone (``virnucpro assemble`` too).

The machinery hands ``PredictWriter`` every frame once, in input order, in spans (ids, columns,
rows of two scores and, with ``--save-features``, the features); it writes, in a new folder that
is renamed onto the output once complete:

* ``prediction_results.txt`` and ``prediction_results_highestscore.csv``: VirNucPro's, byte for
  byte (``results.py``);
* ``contigs.tsv``: one row per input record (``contigs.py``); the records are read again from
  the inputs the parts name, alongside the frames, so memory holds only those in between;
* the features file, if asked for, through the embeddings writer its suffix chooses (ids,
  ``embeddings`` (N, 3328) float32: DNABERT-S's 768 values then ESM-2's 2,560, and the columns);
* ``provenance.json``: the run's attributes (models' and classifier's SHA-256, chunk size,
  versions, command line, counts), its fingerprint as an object.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro.data.dna import bases, chunk_bounds
from virnucpro.data.fasta import read_fasta
from virnucpro.models.classifier import NUM_CLASSES
from virnucpro.pipeline.jobs import Job
from virnucpro.pipeline.outputs import FolderOutput
from virnucpro.pipeline.task import Assembly
from virnucpro.pipeline.writers import OutputLayout, Span, writer_for
from virnucpro.pipeline.writers.base import json_default

from .contigs import CONTIGS_FILE, ContigRecord, ContigTable
from .plot import PROVENANCE_FILE
from .results import HIGHEST_FILE, RESULTS_FILE, HighestScores, ResultsWriter

__all__ = ["ASSEMBLY", "WHAT", "PredictWriter", "contig_records", "read_provenance"]

log = logging.getLogger("virnucpro")

#: How messages name the output.
WHAT = "virnucpro predict's output folder"


def contig_records(inputs: Sequence[Path], chunk_size: int) -> Iterator[ContigRecord]:
    """Every DNA record of ``inputs``, in order: its id, bases and VirNucPro's chunk count."""
    for path in inputs:
        for record in read_fasta(path):
            length = len(bases(record))
            yield ContigRecord(record.id, length, len(chunk_bounds(length, chunk_size)))


class PredictWriter:
    """``OutputWriter`` of a ``predict`` output folder; ``meta``: the job's description in its parts."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.inputs = [Path(path) for path in meta["inputs"]]
        self.chunk_size = int(meta["fingerprint"]["input_kind"]["chunk_size"])
        self.features_name = meta["output"].get("features")

    def begin(self, path: Path, layout: OutputLayout) -> None:
        """Create the result files in ``path``, the new folder the output is written in."""
        self.folder = path
        self.results = ResultsWriter(path / RESULTS_FILE)
        self.highest = HighestScores(path)  # sorted runs spill into the new folder; write() removes them
        self.table = ContigTable(path / CONTIGS_FILE)
        self.records = contig_records(self.inputs, self.chunk_size)
        self.given = 0  # records handed to the table so far
        self.features = None
        if self.features_name:
            width = layout.row_shape[0] - NUM_CLASSES
            self.features = writer_for(path / self.features_name)
            shape = OutputLayout(layout.records, (width,), layout.dtype, False, layout.lengths, layout.columns)
            self.features.begin(path / self.features_name, shape)

    def write_span(self, span: Span) -> None:
        """The next frames in input order: their ids, columns and (n, 2 [+ F]) float32 rows."""
        scores = np.ascontiguousarray(span.rows[:, :NUM_CLASSES])
        self.results.write(span.ids, scores)
        self.highest.add(span.ids, scores)
        sources = span.columns["source_index"]
        if len(sources):
            self._give_records(int(sources.max()) + 1)
        self.table.add_frames(sources, span.columns["chunk"], scores)
        if self.features is not None:
            rows = np.ascontiguousarray(span.rows[:, NUM_CLASSES:])
            self.features.write_span(Span(span.start, span.ids, span.columns, rows))

    def _give_records(self, up_to: int | None) -> None:
        """Hand the table the input records before position ``up_to`` (None: all of them)."""
        batch = []
        while up_to is None or self.given < up_to:
            record = next(self.records, None)
            if record is None:
                break
            batch.append(record)
            self.given += 1
        self.table.add_records(batch)

    def finish(self, attrs: dict[str, Any]) -> None:
        """Write the rest: contigs.tsv's last rows, the per-chunk CSV, the features' attributes, provenance.json."""
        self._give_records(None)
        contigs = self.table.finish()
        self.results.close()
        chunks = self.highest.write(self.folder / HIGHEST_FILE)
        if self.features is not None:
            self.features.finish(attrs)
        provenance = {
            **attrs,
            "fingerprint": json.loads(attrs["fingerprint"]),
            "contigs": contigs,
            "scored_chunks": chunks,
        }
        _write_json(self.folder / PROVENANCE_FILE, provenance)
        _warn(attrs)


def _warn(attrs: dict[str, Any]) -> None:
    """Say once what the result files cannot say themselves."""
    if attrs["records"] == 0:
        log.warning(
            "no chunk of the input has a frame without a stop codon: the result files hold their headers only "
            "(VirNucPro stops with an error on such input)"
        )
    if attrs["duplicate_ids"]:
        log.warning(
            "%d frames repeat the id of an earlier frame (records sharing an id): each is scored from its own "
            "features (VirNucPro stops when copies meet in one of its 10,000-frame files, and its merge by id "
            "would give every copy the last copy's features); their chunks share one row of %s, as in VirNucPro",
            attrs["duplicate_ids"],
            HIGHEST_FILE,
        )


def _write_json(path: Path, value: dict[str, Any]) -> None:
    with open(path, "x", encoding="utf-8") as handle:  # a new file in the new folder
        handle.write(json.dumps(value, indent=2, sort_keys=True, default=json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_provenance(path: Path) -> dict[str, Any]:
    """A finished output folder's ``provenance.json`` (its ``"fingerprint"`` among it); {} if unreadable."""
    try:
        value = json.loads((path / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _writer(job: Job, meta: dict[str, Any]) -> PredictWriter:
    return PredictWriter(meta)


#: How ``predict``'s parts become its output folder.
ASSEMBLY = Assembly(
    output=lambda layout: FolderOutput(layout["files"], WHAT), writer=_writer, attributes=read_provenance
)
