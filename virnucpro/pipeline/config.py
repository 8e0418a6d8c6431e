"""What every task's run is given and gives back: ``JobConfig`` (inputs, output, batches, processes,
resume), ``Shard``, ``SelfCheck``, and ``JobResult`` / ``RunResult``. Each task's own config and
summary build on these (``tasks/embed/config.py``, ``tasks/predict/config.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "DTYPES",
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


def default_workers(byte_pairs: bool = False) -> int:
    """DataLoader workers when a job names none: two (one on two cores); up to eight for byte-pair tokens.

    Two workers feed any ESM-2 on one GPU. Byte-pair encoding runs at about 0.4-0.6 M tokens/s a
    core, a fraction of DNABERT-S's 1.9 M on an H100, where two workers left the GPU waiting for
    input 19-34 % of the run and eight none (``benchmarks/results/device_2026-12-07.md``, call 4).
    Counts the cores this process may run on (a cluster job's allotment), one left to the main process.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return min(8 if byte_pairs else 2, max(1, cores - 1))


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
        workers: DataLoader worker processes that parse and tokenise; None = the task's
            ``workers`` (``default_workers``). Each parses the whole input and tokenises its
            share, so two feed any ESM-2 on one GPU; more only add start-up time (a fork each).
            Byte-pair tokens (DNABERT-S) cost more: their tasks default to up to eight.
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
    workers: int | None = None
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
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers (CLI: --workers) must be >= 0, got {self.workers}")
        if self.threads is not None and (type(self.threads) is not int or self.threads < 1):
            raise ValueError(f"threads (CLI: --threads) must be an integer >= 1, got {self.threads!r}")
        if self.resume and self.overwrite:
            raise ValueError(
                "resume and overwrite exclude each other: resume keeps partial results, overwrite discards them"
            )


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
    workers: int = 0  # the DataLoader workers the run used
    gpu_busy_s: float = 0.0  # the GPU's time on the batches, from CUDA events (0 off the GPU)
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
