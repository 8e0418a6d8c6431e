"""``EmbedConfig``: everything one ``virnucpro embed`` run needs, built once, validated, never mutated."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from virnucpro.data import NUCLEOTIDE, PROTEIN, DnaInput, InputKind, Tokenizer
from virnucpro.data.tokenizer import is_per_character
from virnucpro.data.windows import check_per_character
from virnucpro.models import ForwardOptions, family_for, get_pooling

__all__ = [
    "DTYPES",
    "STORAGE",
    "EmbedConfig",
    "EmbedSummary",
    "JobConfig",
    "JobResult",
    "RunResult",
    "SelfCheck",
    "Shard",
    "check_choice",
    "compute_dtype",
    "default_workers",
]

#: Compute dtype per ``dtype`` name; "fp8" computes in bf16 around FP8 matmuls (``ForwardOptions.matmul``).
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.bfloat16}
#: Stored embedding dtype per ``storage`` name (numpy's dtype of the same name on disk).
STORAGE = {"float32": torch.float32, "float16": torch.float16}


def compute_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """The compute dtype of a ``dtype`` option (``DTYPES``): None is bf16 on CUDA, fp32 on the CPU."""
    return DTYPES[dtype or ("bf16" if device.type == "cuda" else "fp32")]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``: the records at positions p with p % count == index."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard (CLI: --shard I/N) must be I/N with 0 <= I < N, got {self.index}/{self.count}")

    @property
    def prefix(self) -> str:
        return f"shard-{self.index}-of-{self.count}"


@dataclass(frozen=True)
class SelfCheck:
    """``every``: check batch 0, N, 2N, ... (default: about 1 % of batches); ``min_cosine``: the run
    stops when any checked row's cosine falls below it (CLI ``--fp8-check-every``, ``--fp8-min-cosine``)."""

    every: int = 100
    min_cosine: float = 0.99

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"SelfCheck.every (CLI: --fp8-check-every) must be >= 1 batch, got {self.every}")
        if not 0 < self.min_cosine <= 1:
            raise ValueError(f"SelfCheck.min_cosine (CLI: --fp8-min-cosine) must be in (0, 1], got {self.min_cosine}")


def default_workers() -> int:
    """DataLoader workers by default: two, or one on a machine of two cores."""
    return min(2, max(1, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """What every task's run has, and the machinery reads (``runner.run_jobs``): the inputs, one
    output, the batches, the processes, and what to do with earlier results. Each task's config
    (``EmbedConfig``, ``PredictConfig``) adds its own options; every argument is a keyword.

    Attributes:
        inputs: FASTA files (plain or compressed), read in this order.
        output: the output to write; it appears only when complete.
        output_dir: instead of ``output``: one output in this folder for each input, each
            identical to a run on that input alone, through one loaded model.
        max_tokens: tokens per packed batch; None = sized from free GPU memory (8192 on the CPU).
        workers: DataLoader worker processes that parse and tokenise. Each parses the
            whole input and tokenises its share, so two feed any ESM-2 on one GPU; more
            only add start-up time (a fork each).
        threads: torch's intra-op threads (``torch.set_num_threads``, for this whole process),
            what a CPU run computes with; None = torch's choice, one per core it sees. On a
            shared node, the cores the job was given: more threads than cores make a CPU run
            many times slower.
        device: ``cuda``, ``cuda:1``, ``cpu``; None = ``cuda`` when available. Under
            torchrun each rank uses ``cuda:LOCAL_RANK``.
        shard: only this shard of the records (``Shard(I, N)``: positions p with
            p % N == I); the output is then written by ``virnucpro assemble``.
        resume: continue from the committed results of an interrupted run.
        overwrite: replace an existing output (and discard partial results).
        parents: create the output's folder if it does not exist.
        progress: show progress (a bar on a terminal, a periodic log line otherwise).
        command: the command line that asked for this run, stored in the output.
    """

    inputs: tuple[Path, ...]
    output: Path | None = None
    output_dir: Path | None = None
    max_tokens: int | None = None
    workers: int = field(default_factory=default_workers)
    threads: int | None = None
    device: str | None = None
    shard: Shard = field(default_factory=Shard)
    resume: bool = False
    overwrite: bool = False
    parents: bool = False
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(Path(p) for p in self.inputs))
        for name in ("output", "output_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        self._check_job()

    def _check_job(self) -> None:
        """These options' values; ``ValueError`` naming the argument and its CLI flag."""
        if not self.inputs:
            raise ValueError("no input FASTA files given")
        if (self.output is None) == (self.output_dir is None):
            raise ValueError("pass exactly one of output (CLI: -o) and output_dir (CLI: --output-dir)")
        if self.max_tokens is not None and self.max_tokens < 3:
            raise ValueError(
                f"max_tokens (CLI: --max-tokens) must be at least 3 (one residue with BOS and EOS), "
                f"got {self.max_tokens}; leave it out to size batches from free GPU memory"
            )
        if self.workers < 0:
            raise ValueError(f"workers (CLI: --workers) must be >= 0, got {self.workers}")
        if self.threads is not None and (type(self.threads) is not int or self.threads < 1):
            raise ValueError(f"threads (CLI: --threads) must be an integer >= 1, got {self.threads!r}")
        if self.resume and self.overwrite:
            raise ValueError(
                "resume and overwrite exclude each other: resume keeps partial results, overwrite discards them"
            )


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


def check_choice(name: str, value: object, known: Sequence[str], flag: str, *, optional: bool = False) -> None:
    """``ValueError`` naming option ``name``, the known values and the CLI ``flag`` unless ``value`` is
    one of ``known`` (or None, when ``optional``)."""
    if (value is None and optional) or value in known:
        return
    raise ValueError(f"{name} (CLI: {flag}) must be one of {sorted(known)}, got {value!r}")


@dataclass(frozen=True)
class JobResult:
    """What one output holds once written (``records`` 0 and ``skipped`` when a resume found it done)."""

    output: Path
    records: int
    truncated: int = 0
    duplicate_ids: int = 0
    replaced: int = 0
    windowed: int = 0
    skipped: bool = False
    assembled: bool = True


@dataclass(frozen=True)
class RunResult:
    """What a run of any task did (rank 0's counts are global); a task's summary words it."""

    jobs: tuple[JobResult, ...]
    records: int
    tokens: int
    wall_s: float
    input_wait: float
    startup_s: float
    setup_s: float
    finish_s: float
    max_tokens: int
    peak_gpu_bytes: int
    world_size: int
    checks: tuple[float, float] | None = None  # (min, mean) of a self-check's cosines over the checked rows

    @property
    def output(self) -> Path:
        return self.jobs[0].output

    @property
    def truncated(self) -> int:
        return sum(job.truncated for job in self.jobs)

    @property
    def duplicate_ids(self) -> int:
        return sum(job.duplicate_ids for job in self.jobs)

    @property
    def replaced(self) -> int:
        return sum(job.replaced for job in self.jobs)

    @property
    def windowed(self) -> int:
        return sum(job.windowed for job in self.jobs)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class EmbedSummary(RunResult):
    """What a finished ``embed`` run did; ``line()`` is the summary the CLI prints (rank 0's is global).

    ``options``: the forward options as resolved for the device."""

    options: ForwardOptions = field(default_factory=ForwardOptions)

    @property
    def fp8_check(self) -> tuple[float, float] | None:
        """(min, mean) cosine FP8 vs bf16 over the checked rows; None without FP8."""
        return self.checks

    def _fp8(self) -> str:
        if self.fp8_check is None:
            return ""
        return f"FP8 self-check cosine vs bf16 min {self.fp8_check[0]:.5f} mean {self.fp8_check[1]:.5f}; "

    def line(self) -> str:
        if all(job.skipped for job in self.jobs):
            names = ", ".join(str(job.output) for job in self.jobs)
            return f"virnucpro embed: {names} already complete (an earlier run finished it); nothing to do"
        ranks = f" on {self.world_size} ranks" if self.world_size > 1 else ""
        if len(self.jobs) == 1:
            written = f"-> {self.output}" if self.jobs[0].assembled else f"-> {self.output} (shard parts; assemble)"
        else:
            written = f"-> {len(self.jobs)} outputs"
        return (
            f"virnucpro embed: {self.records:,} records, {self.tokens:,} tokens in {self.wall_s:.1f} s "
            f"= {self.tokens_per_s:,.0f} tokens/s{ranks}; input wait {100 * self.input_wait:.1f} % of wall "
            f"(first batch after {self.startup_s:.1f} s; model set-up {self.setup_s:.1f} s, "
            f"final assembly {self.finish_s:.1f} s); truncated {self.truncated}; duplicate ids {self.duplicate_ids}; "
            f"{f'residues replaced with X {self.replaced}; ' if self.replaced else ''}"
            f"{f'embedded in windows {self.windowed}; ' if self.windowed else ''}"
            f"{self._fp8()}attention {self.options.attention}, kernels {self.options.kernels}, GELU {self.options.gelu}, "
            f"max_tokens {self.max_tokens} {written}"
        )
