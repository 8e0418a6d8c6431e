"""``virnucpro predict``: VirNucPro's whole classification in one pass (``run_predict``).

``run``: the task the job machinery drives (``PredictTask``); ``config``: ``PredictConfig``;
``compute``: the per-batch computation (both models, the classifier); ``assembly``: the output
folder from the parts; ``results``: ``prediction_results.txt`` and
``prediction_results_highestscore.csv``, byte for byte as VirNucPro writes them; ``contigs``:
``contigs.tsv``, one row per input record; ``plot``: the per-contig figure (optional extra
``[plot]``); ``chunk_size``: a classifier named for one chunk size is refused with another.

``PredictConfig``, ``PredictSummary`` and ``run_predict`` are imported on first use, so that the
result files and the figure never import torch.
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
    "PredictConfig",
    "PredictSummary",
    "run_predict",
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


def __getattr__(name: str):
    if name == "PredictConfig":
        from .config import PredictConfig

        return PredictConfig
    if name in ("PredictSummary", "run_predict"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
