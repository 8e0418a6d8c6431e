"""``virnucpro predict``'s own parts: VirNucPro's result files, our per-record table, the figure.

``results``: ``prediction_results.txt`` and ``prediction_results_highestscore.csv``, byte for
byte as VirNucPro writes them; ``contigs``: ``contigs.tsv``, one row per input record;
``plot``: the per-contig figure (optional extra ``[plot]``); ``chunk_size``: a classifier
named for one chunk size is refused with another.
"""

from .chunk_size import check_chunk_size, classifier_chunk_size
from .contigs import CONTIG_COLUMNS, CONTIGS_FILE, ContigRecord, ContigTable
from .plot import FIGURE_FILE, PROVENANCE_FILE, plot_predictions, require_matplotlib
from .results import (
    HIGHEST_FILE,
    HIGHEST_HEADER,
    RESULTS_FILE,
    RESULTS_HEADER,
    HighestScores,
    ResultsWriter,
    checked_scores,
    chunk_id,
    chunk_is_virus,
    result_lines,
)

__all__ = [
    "CONTIGS_FILE",
    "CONTIG_COLUMNS",
    "FIGURE_FILE",
    "HIGHEST_FILE",
    "HIGHEST_HEADER",
    "PROVENANCE_FILE",
    "RESULTS_FILE",
    "RESULTS_HEADER",
    "ContigRecord",
    "ContigTable",
    "HighestScores",
    "ResultsWriter",
    "check_chunk_size",
    "checked_scores",
    "chunk_id",
    "chunk_is_virus",
    "classifier_chunk_size",
    "plot_predictions",
    "require_matplotlib",
    "result_lines",
]
