"""``EmbedConfig``: everything one ``virnucpro embed`` run needs, built once, validated, never mutated.

The options every task's run has (inputs, output, batches, processes, resume) are ``JobConfig``'s
(``virnucpro.pipeline.config``); these are embed's own: the model, its layers and pooling, the
precision, what is stored, and how long or odd records are treated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch

from virnucpro.data import NUCLEOTIDE, PROTEIN, DnaInput, InputKind, Tokenizer
from virnucpro.data.tokenizer import is_per_character
from virnucpro.data.windows import check_per_character
from virnucpro.models import ForwardOptions, family_for, get_pooling
from virnucpro.pipeline.config import DTYPES, JobConfig, SelfCheck, check_choice

__all__ = ["STORAGE", "EmbedConfig"]

#: Stored embedding dtype per ``storage`` name (numpy's dtype of the same name on disk).
STORAGE = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class EmbedConfig(JobConfig):
    """One run: one output file (``output``) or one per input (``output_dir``).

    Attributes:
        inputs: FASTA files (plain or compressed), embedded in this order: protein FASTA
            (nucleotide FASTA with ``dna``) for a protein model; nucleotide FASTA for a model
            that reads DNA (``ModelFamily.reads``, e.g. DNABERT-S), upper-cased, IUPAC codes only.
        output: the file to write (its suffix chooses the format); it appears only when complete.
        output_dir: instead of ``output``: write ``output_dir/<input name>.h5`` for each input.
        model: a fair-esm ESM-2 pretrained name, a local fair-esm ``.pt`` file, another
            family's model (e.g. a DNABERT-S folder), or ``random:<name>`` (random weights: for
            trying the tool only); ``registry.family_for`` tells its family.
        layers: representation layers to store (fair-esm numbering, negative from the end);
            None = the last.
        pooling: a name from ``virnucpro.models.POOLINGS``: ``mean``, the family's published
            mean (ESM-2: over residues, BOS and EOS excluded; DNABERT-S: over every token,
            [CLS] and [SEP] included), the ``bos`` ([CLS]) row, or ``per-token`` residue rows
            (one token per residue: ESM-2 only).
        dtype: compute precision (``DTYPES``); None = bf16 on CUDA, fp32 on the CPU. "fp8": e4m3
            matmuls on GPUs with FP8 tensor cores, everything else in bf16, self-checked.
        fp8_check: with ``dtype="fp8"``, how often the run also computes bf16 embeddings and
            how close they must stay (``selfcheck.SelfCheck``).
        storage: dtype of stored embeddings (``STORAGE``).
        max_length: residues (bases) per sequence the model sees at once; longer ones are
            truncated (counted), refused, or embedded as windows of this many residues. None:
            the model's tokenizer's (ESM-2: 1022); ``run_embed`` fills it in.
        on_overlength: ``truncate``, ``raise`` or ``window`` (overlapping windows of
            ``max_length`` residues, merged per residue: every residue is embedded; only for
            a tokenizer with one token per residue).
        window_stride: with ``window``, residues between window starts (default max_length // 2).
        invalid: ``raise`` on unknown residues, or ``X`` to replace them.
        dna: read the inputs as DNA, chunked and translated by VirNucPro's rules
            (``DnaInput``: chunk size, frames); one row per kept frame. Protein models only.
        allow_nucleotide_like: embed records that read as DNA or RNA (refused by default:
            a nucleotide FASTA given as protein is almost surely a mistake).
        forward: how the packed forward computes (``ForwardOptions``), validated when built.
        max_tokens, workers, threads, device, shard, resume, overwrite, parents, progress,
            command: ``JobConfig``'s.
    """

    model: str
    layers: tuple[int, ...] | None = None
    pooling: str = "mean"
    dtype: Literal["fp32", "fp16", "bf16", "fp8"] | None = None
    fp8_check: SelfCheck = field(default_factory=SelfCheck)
    storage: Literal["float32", "float16"] = "float32"
    max_length: int | None = None
    on_overlength: Literal["truncate", "raise", "window"] = "truncate"
    window_stride: int | None = None
    invalid: Literal["raise", "X"] = "raise"
    dna: DnaInput | None = None
    allow_nucleotide_like: bool = False
    forward: ForwardOptions = field(default_factory=ForwardOptions)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        self._validate()

    def _validate(self) -> None:
        """Every option's value, before anything is created on disk."""
        get_pooling(self.pooling)
        check_choice("dtype", self.dtype, DTYPES, "--dtype", optional=True)
        check_choice("storage", self.storage, STORAGE, "--storage")
        check_choice("on_overlength", self.on_overlength, ("truncate", "raise", "window"), "--on-overlength")
        if self.window_stride is not None and self.on_overlength != "window":
            raise ValueError(
                "window_stride (CLI: --window-stride) applies only with on_overlength='window' "
                "(CLI: --on-overlength window)"
            )
        if self.window_stride is not None and not 1 <= self.window_stride <= (self.max_length or self.window_stride):
            raise ValueError(
                f"window_stride (CLI: --window-stride) must be in 1..{self.max_length}, the window width, "
                f"got {self.window_stride}"
            )
        check_choice("invalid", self.invalid, ("raise", "X"), "--invalid")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length (CLI: --max-length) must be >= 1, got {self.max_length}")
        if family_for(self.model).reads == "nucleotide":
            self._validate_nucleotide_model()
        if self.layers is not None and (not self.layers or not all(isinstance(i, int) for i in self.layers)):
            raise ValueError(f"layers (CLI: --layers) must be integers, got {self.layers}")

    def _validate_nucleotide_model(self) -> None:
        """Options that make no sense for a model that reads DNA itself."""
        reads_dna = f"model {self.model!r} reads nucleotide FASTA itself"
        if self.dna is not None:
            raise ValueError(f"{reads_dna}; dna (CLI: --dna) translates DNA for protein models: leave it out")
        if self.allow_nucleotide_like:
            raise ValueError(
                f"{reads_dna}; allow_nucleotide_like (CLI: --allow-nucleotide-like) is for protein input: leave it out"
            )
        if self.invalid != "raise":
            raise ValueError(
                f"{reads_dna}, IUPAC nucleotide codes only; invalid='X' (CLI: --invalid X) replaces unknown "
                "amino acids: leave it out"
            )

    def for_tokenizer(self, tokenizer: Tokenizer) -> EmbedConfig:
        """This config checked against the model's tokenizer, ``max_length`` its default where None.

        ``ValueError`` for windows or per-token rows with a tokenizer whose tokens are not one
        per residue (byte pairs), and for a window stride over ``max_length``.
        """
        check_per_character(tokenizer, self.on_overlength)
        if self.per_token and not is_per_character(tokenizer):
            raise ValueError(
                "pooling='per-token' (CLI: --pooling per-token) stores one row per residue; "
                f"{tokenizer.name}'s tokens span several characters, so it has no row per residue: choose "
                "pooling='mean' (CLI: --pooling mean) or pooling='bos' (CLI: --pooling bos)"
            )
        if self.max_length is not None:
            return self
        return dataclasses.replace(self, max_length=tokenizer.max_length)

    @property
    def forward_options(self) -> ForwardOptions:
        """``forward``, with FP8 matmuls when ``dtype="fp8"``."""
        return dataclasses.replace(self.forward, matmul="fp8") if self.dtype == "fp8" else self.forward

    @property
    def kind(self) -> InputKind:
        """The input kind the inputs are read as: what the model's family reads, translated with ``dna``."""
        if self.dna is not None:
            return self.dna
        return NUCLEOTIDE if family_for(self.model).reads == "nucleotide" else PROTEIN

    @property
    def per_token(self) -> bool:
        return get_pooling(self.pooling).per_token
