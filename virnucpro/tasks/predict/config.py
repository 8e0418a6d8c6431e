"""``PredictConfig``: everything one ``virnucpro predict`` run needs, built once, validated, never mutated."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from virnucpro.data import DnaInput
from virnucpro.models import family_for
from virnucpro.pipeline.config import DTYPES, JobConfig, SelfCheck, check_choice
from virnucpro.pipeline.writers import FORMATS, check_format

from .chunk_size import check_chunk_size
from .contigs import CONTIGS_FILE
from .plot import FIGURE_FILE, PROVENANCE_FILE
from .results import HIGHEST_FILE, RESULTS_FILE

__all__ = ["DEFAULT_DNABERT", "DEFAULT_MODEL", "PredictConfig", "RESULT_FILES"]

#: VirNucPro's models: ESM-2 3B (fair-esm's name) and DNABERT-S (its Hugging Face id).
DEFAULT_MODEL = "esm2_t36_3B_UR50D"
DEFAULT_DNABERT = "zhihan1996/DNABERT-S"
#: What a run writes into its output folder (besides ``--save-features``); ``virnucpro plot`` adds its figure.
RESULT_FILES = (RESULTS_FILE, HIGHEST_FILE, CONTIGS_FILE, PROVENANCE_FILE)


@dataclass(frozen=True, kw_only=True)
class PredictConfig(JobConfig):
    """One run: one output folder (``output``) or one per input (``output_dir``).

    Attributes:
        inputs: nucleotide FASTA files (plain or compressed), read in this order into one output.
        classifier: VirNucPro's classifier file (``300_model.pth`` / ``500_model.pth``, a state
            dict or safetensors: ``virnucpro.models.classifier.load_classifier``).
        chunk_size: bases per chunk, as the classifier was trained (VirNucPro: 300 or 500); no
            default. A classifier named ``300_*``/``500_*`` with another size is refused, one whose
            name gives no size is warned about (``check_chunk_size``).
        output: the folder to write (``prediction_results.txt``, ``prediction_results_highestscore.csv``,
            ``contigs.tsv``, ``provenance.json``); it appears only when complete.
        output_dir: instead of ``output``: ``output_dir/<input name>/`` for each input, each
            identical to a run on that input alone, through one pair of loaded models.
        model: the protein model, ESM-2: any spec ``virnucpro embed --model`` takes.
        dnabert: the DNA model, DNABERT-S: a folder, a cached Hugging Face id, or ``random:dnabert-s``.
        dtype: compute precision (``DTYPES``); None = bf16 on CUDA, fp32 on the CPU. "fp8": ESM-2's
            matmuls in e4m3 (self-checked against bf16, ``fp8_check``), DNABERT-S in bf16.
        fp8_check: with ``dtype="fp8"``, how often ESM-2's embeddings are also computed in bf16 and
            how close they must stay.
        max_tokens: ESM-2 tokens per packed batch (DNABERT-S's slices are cut to at most as many);
            None = sized from free GPU memory for both models (8192 on the CPU).
        save_features: also write each frame's 3,328 features (DNABERT-S's 768, then ESM-2's 2,560)
            with its id, as this file name inside the output folder (``.h5``, ``.npz`` or
            ``.parquet``; ``virnucpro.read_embeddings`` reads it).
        workers, threads, device, shard, resume, overwrite, parents, progress, command: ``JobConfig``'s.
    """

    classifier: Path
    chunk_size: int
    model: str = DEFAULT_MODEL
    dnabert: str = DEFAULT_DNABERT
    dtype: Literal["fp32", "fp16", "bf16", "fp8"] | None = None
    fp8_check: SelfCheck = field(default_factory=SelfCheck)
    save_features: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "classifier", Path(self.classifier))
        self._validate()

    def _validate(self) -> None:
        """Every option's value, before anything is read or created on disk."""
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int):
            raise ValueError(f"chunk_size (CLI: --chunk-size) must be an integer, got {self.chunk_size!r}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size (CLI: --chunk-size) must be >= 1, got {self.chunk_size}")
        check_chunk_size(self.classifier, self.chunk_size)
        check_choice("dtype", self.dtype, DTYPES, "--dtype", optional=True)
        self._validate_models()
        if self.save_features is not None:
            _check_features_name(self.save_features)

    def _validate_models(self) -> None:
        """ESM-2 reads the proteins, DNABERT-S the DNA: each spec must name a model of that kind; and a
        frame of a chunk (at most chunk_size / 3 residues) must fit the protein model whole."""
        protein = family_for(self.model)
        if protein.reads != "protein":
            raise ValueError(
                f"model (CLI: --model) {self.model!r} reads DNA; it is the protein model, ESM-2 "
                f"(default {DEFAULT_MODEL}); the DNA model goes to dnabert (CLI: --dnabert)"
            )
        # VirNucPro averages the first 1,024 residues of a longer protein, which its 300 and 500 bp
        # chunks never make; here a frame is never cut.
        residues = protein.tokenizer(self.model).max_length
        if self.chunk_size > 3 * residues:
            raise ValueError(
                f"chunk_size (CLI: --chunk-size) must be at most {3 * residues} (the protein model reads at most "
                f"{residues} residues, a third of a chunk), got {self.chunk_size}; VirNucPro's classifiers take 300 or 500"
            )
        if family_for(self.dnabert).reads != "nucleotide":
            raise ValueError(
                f"dnabert (CLI: --dnabert) {self.dnabert!r} is not a DNA model; it is DNABERT-S: a model folder, "
                f"a cached Hugging Face id (default {DEFAULT_DNABERT}) or random:dnabert-s"
            )

    @property
    def kind(self) -> DnaInput:
        """The input kind: VirNucPro's chunks and stop-free frames, each with its DNA slice."""
        return DnaInput(self.chunk_size, "stop-free", nucleotides=True)

    @property
    def files(self) -> tuple[str, ...]:
        """Every file name an output folder of this run may hold (``virnucpro plot``'s figure too)."""
        return (*RESULT_FILES, FIGURE_FILE, *((self.save_features,) if self.save_features else ()))


def _check_features_name(name: str) -> None:
    """``name`` is a plain file name of a known embeddings format, not one of the result files."""
    if not name or os.sep in name or (os.altsep and os.altsep in name) or name in (".", ".."):
        raise ValueError(
            f"save_features (CLI: --save-features) must be a file name, written inside each output folder, got {name!r}"
        )
    if Path(name).suffix.lower() not in FORMATS:
        raise ValueError(
            f"save_features (CLI: --save-features) {name!r}: unknown format {Path(name).suffix!r}; name it with "
            f"one of {sorted(FORMATS)}"
        )
    check_format(Path(name))  # parquet needs pyarrow: refused now, not after the run
    if name in (*RESULT_FILES, FIGURE_FILE):
        raise ValueError(f"save_features (CLI: --save-features) {name!r} is the name of a result file; choose another")
