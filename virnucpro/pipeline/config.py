"""``EmbedConfig``: everything one ``virnucpro embed`` job needs, built once and never mutated."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from virnucpro.models import ForwardOptions

__all__ = ["EmbedConfig", "EmbedSummary", "DTYPES"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
Pooling = Literal["mean", "bos", "per-token"]


@dataclass(frozen=True)
class EmbedConfig:
    """One embedding job.

    Attributes:
        inputs: protein FASTA files (plain or gzip), embedded in this order.
        output: the HDF5 file to write; it appears only when complete.
        model: a fair-esm ESM-2 pretrained name, a local fair-esm ``.pt`` file, or
            ``random:<name>`` (random weights: for trying the tool only).
        layers: representation layers to store (fair-esm numbering); None = the last.
        pooling: ``mean`` over residues, the ``bos`` row, or ``per-token`` residue rows.
        dtype: compute precision; None = bf16 on CUDA, fp32 on the CPU.
        storage: dtype of stored embeddings, ``float32`` or ``float16``.
        max_tokens: tokens per packed batch; None = sized from free GPU memory (8192 on the CPU).
        max_length: residues kept per sequence; longer ones are truncated and counted.
        on_overlength: ``truncate`` or ``raise``.
        invalid: ``raise`` on unknown residues, or ``X`` to replace them.
        workers: DataLoader worker processes that parse and tokenise. Each parses the
            whole input (9-16 M tokens/s, ``parse_cost.json``) and tokenises its share (57 M tokens/s), so
            two feed any ESM-2 on one GPU; more only add start-up time (a fork each).
        device: ``cuda``, ``cuda:1``, ``cpu``; None = ``cuda`` when available. Under
            torchrun each rank uses ``cuda:LOCAL_RANK``.
        forward: how the packed forward computes (``ForwardOptions``: attention backend,
            kernels, GELU, matmul), validated when built.
        resume: continue from the committed results of an interrupted run.
        overwrite: replace an existing output (and discard partial results).
        progress: show a progress bar.
    """

    inputs: tuple[Path, ...]
    output: Path
    model: str
    layers: tuple[int, ...] | None = None
    pooling: Pooling = "mean"
    dtype: Literal["fp32", "fp16", "bf16"] | None = None
    storage: Literal["float32", "float16"] = "float32"
    max_tokens: int | None = None
    max_length: int = 1022
    on_overlength: Literal["truncate", "raise"] = "truncate"
    invalid: Literal["raise", "X"] = "raise"
    workers: int = field(default_factory=lambda: min(2, max(1, (os.cpu_count() or 2) - 1)))
    device: str | None = None
    forward: ForwardOptions = field(default_factory=ForwardOptions)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(Path(p) for p in self.inputs))
        object.__setattr__(self, "output", Path(self.output))
        if not self.inputs:
            raise ValueError("no input FASTA files given")
        if self.pooling not in ("mean", "bos", "per-token"):
            raise ValueError(f"pooling must be mean, bos or per-token, got {self.pooling!r}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.storage not in ("float32", "float16"):
            raise ValueError(f"storage must be float32 or float16, got {self.storage!r}")
        if self.resume and self.overwrite:
            raise ValueError(
                "resume and overwrite exclude each other: resume keeps partial results, overwrite discards them"
            )
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class EmbedSummary:
    """What a finished job did; ``line()`` is the one-line summary the CLI prints."""

    output: Path
    records: int
    tokens: int
    wall_s: float
    input_wait: float
    startup_s: float
    setup_s: float
    finish_s: float
    truncated: int
    duplicate_ids: int
    replaced: int
    max_tokens: int
    peak_gpu_bytes: int
    options: ForwardOptions
    world_size: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        ranks = f" on {self.world_size} ranks" if self.world_size > 1 else ""
        return (
            f"virnucpro embed: {self.records:,} records, {self.tokens:,} tokens in {self.wall_s:.1f} s "
            f"= {self.tokens_per_s:,.0f} tokens/s{ranks}; input wait {100 * self.input_wait:.1f} % of wall "
            f"(first batch after {self.startup_s:.1f} s; model set-up {self.setup_s:.1f} s, "
            f"final assembly {self.finish_s:.1f} s); truncated {self.truncated}; duplicate ids {self.duplicate_ids}; "
            f"{f'residues replaced with X {self.replaced}; ' if self.replaced else ''}"
            f"attention {self.options.attention}, kernels {self.options.kernels}, GELU {self.options.gelu}, max_tokens {self.max_tokens} "
            f"-> {self.output}"
        )
