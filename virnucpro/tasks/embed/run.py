"""``run_embed``: FASTA on disk to embeddings on disk, asynchronously, exactly once.

``embed`` is a task of the job machinery (``virnucpro.pipeline``: ``runner.py``, ``task.py``): it hands it one model,
its tokenizer's batches, the pooled rows per batch (``embedder.py``), the row layout, and an
output file written by suffix (``writers/``). Everything else (claims, parts, resume, shards,
assembly) is the machinery's.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from virnucpro.data import SequenceDataset, Tokenizer, VarlenCollator
from virnucpro.data.tokenizer import is_per_character
from virnucpro.models import ForwardOptions, ModelFamily, family_for, get_pooling
from virnucpro.reading import read_attributes

from virnucpro.pipeline.background import Background
from virnucpro.pipeline.config import RunResult, compute_dtype, default_workers
from virnucpro.pipeline.embedder import Embedder, EmbedRows, StoredRows
from virnucpro.pipeline.fingerprint import model_fields, model_identities
from virnucpro.pipeline.job_state import JobState
from virnucpro.pipeline.jobs import Job
from virnucpro.pipeline.outputs import FileOutput
from virnucpro.pipeline.parts import PartLayout
from virnucpro.pipeline.runner import Stages, run_jobs
from virnucpro.pipeline.selfcheck import SelfCheckedEmbedder
from virnucpro.pipeline.task import Assembly, Plan
from virnucpro.pipeline.validation import EMBED
from virnucpro.pipeline.writers import OutputWriter, writer_for

from .config import STORAGE, EmbedConfig
from .provenance import embed_attributes

__all__ = ["ASSEMBLY", "EmbedSummary", "EmbedTask", "run_embed"]

_COLUMNS = ("lengths", "input_lengths")


def run_embed(config: EmbedConfig, model: nn.Module | None = None) -> EmbedSummary:
    """Embed ``config``'s inputs into its output(s); returns the summary (rank 0's is global).

    Args:
        config: the run.
        model: an already-loaded model of ``config.model``'s family to use instead of
            loading ``config.model`` (which then only names it in the output); it is not
            modified. Resuming needs the model named by ``config.model`` itself.

    Raises on bad input or options, leaving no output file; committed partial results
    stay, for ``resume``.
    """
    if config.resume and model is not None:
        raise ValueError("resume needs the model named by config.model, not an in-memory model it cannot verify")
    family = family_for(config.model)
    tokenizer = family.tokenizer(config.model)
    config = config.for_tokenizer(tokenizer)  # max_length filled in; windows and per-token checked
    task = EmbedTask(config, family, tokenizer, model)
    result = run_jobs(config, task)
    return _summary(result, task.resolved or config.forward)


def _writer(job: Job, meta: dict[str, Any]) -> OutputWriter:
    return writer_for(job.output)


#: How ``embed``'s parts become its output file (the format chosen by the output's suffix).
ASSEMBLY = Assembly(output=lambda layout: FileOutput(layout["per_token"]), writer=_writer, attributes=read_attributes)


class EmbedTask:
    """``embed`` as the runner drives it: one model of ``family`` (read through ``tokenizer``), pooled
    rows per record."""

    name = "embed"
    entry = EMBED

    def __init__(self, config: EmbedConfig, family: ModelFamily, tokenizer: Tokenizer, model: nn.Module | None) -> None:
        self.config, self.family, self.tokenizer, self.model = config, family, tokenizer, model
        self.resolved: ForwardOptions | None = None  # the forward options as resolved for the device, once planned
        self.kind = config.kind
        self.output = FileOutput(per_token=config.per_token)
        # One tokenizer object for the datasets and the collator: batches whose budgeting encoded
        # their tokens carry them (``Encoded``), and the collator takes them from its own tokenizer.
        self.collate = VarlenCollator(tokenizer)
        self.workers = default_workers(byte_pairs=not is_per_character(tokenizer))

    def dataset(self, state: JobState, lane: int, lanes: int, *, whole: bool = False) -> SequenceDataset:
        """The job's records for this lane, budgeted in the model's tokens; ``whole``: every record, unbatched."""
        config = self.config
        return SequenceDataset(
            state.job.inputs,
            max_length=config.max_length,
            max_tokens=None if whole else state.max_tokens,
            invalid=config.invalid,
            on_overlength=config.on_overlength,
            window_stride=config.window_stride,
            allow_nucleotide_like=config.allow_nucleotide_like,
            skip=None if whole else state.skip,
            rank=lane,
            world_size=lanes,
            report=False,
            tokenizer=self.tokenizer,
            kind=config.kind,
        )

    def check_device(self, device: torch.device) -> None:
        self.family.resolve_options(self.config.forward_options, device, compute_dtype(self.config.dtype, device))

    def plan(self, device: torch.device, stage: Stages) -> Plan:
        config, family, tokenizer = self.config, self.family, self.tokenizer
        # SHA-256 of the model's files, hashed from now on while the model is loaded and copied:
        # the first run after a checkpoint is written hashes gigabytes.
        model_files = Background(lambda: stage.after(model_identities(family, config.model), "checkpoint hashed"))
        dtype = compute_dtype(config.dtype, device)
        model = self.model
        if model is None:  # as stored (e.g. fp16, memory-mapped): the packed copy converts once, on the device
            model, _ = family.load(config.model, dtype=None)
            stage("checkpoint mapped")
        layers = family.layers(config.layers, model)
        options = self.resolved = family.resolve_options(config.forward_options, device, dtype)
        row_shape = (model.embed_dim,) if len(layers) == 1 else (len(layers), model.embed_dim)
        return Plan(
            layout=PartLayout((len(layers), model.embed_dim), np.dtype(config.storage), _COLUMNS + config.kind.columns),
            max_tokens=config.max_tokens or family.max_tokens(model, dtype, device, len(layers), matmul=options.matmul),
            fingerprint=functools.partial(_fingerprint, config, family, model_files, layers, dtype, options),
            output={
                "per_token": config.per_token,
                "row_shape": list(row_shape),
                "storage": config.storage,
                "special_tokens": tokenizer.special_tokens_per_sequence,
                "counted_tokens": not is_per_character(tokenizer),
            },
            attributes=lambda job, fingerprint: embed_attributes(
                config, job.inputs, fingerprint, device, model_files.result()
            ),
            compute=functools.partial(self._compute, model, (dtype, device), options, layers, stage),
            store=lambda part: EmbedRows(
                part, config.per_token, count_tokens=not is_per_character(tokenizer), fix=_overflow_fix(config, dtype)
            ),
            assembly=ASSEMBLY,
        )

    def _compute(
        self,
        model: nn.Module,
        where: tuple[torch.dtype, torch.device],
        options: ForwardOptions,
        layers: tuple[int, ...],
        stage: Stages,
    ) -> StoredRows:
        """The packed model on the device, warmed up, with pooling; with FP8, a bf16 copy to check it against."""
        config, family = self.config, self.family
        dtype, device = where
        pooling = get_pooling(config.pooling, include_special_tokens=family.mean_includes_special_tokens)
        packed = family.packed(model, dtype=dtype, device=device, options=options)
        stage("model on the device")
        packed.warm_up()
        stage("warmed up")
        embed = Embedder(packed, layers, pooling)
        if options.matmul == "fp8":
            native = dataclasses.replace(options, matmul="native")
            reference = family.packed(model, dtype=dtype, device=device, options=native)
            reference.warm_up()
            stage("bf16 reference for the FP8 self-check on the device, warmed up")
            embed = SelfCheckedEmbedder(embed, Embedder(reference, layers, pooling), config.fp8_check)
        return StoredRows(embed, STORAGE[config.storage])


def _fingerprint(
    config: EmbedConfig,
    family: ModelFamily,
    model_files: Background,
    layers: tuple[int, ...],
    dtype: torch.dtype,
    options: ForwardOptions,
) -> dict[str, Any]:
    """``embed``'s fields of the resume fingerprint: the model, its options, the precision."""
    return {
        "family": family.name,
        "model": model_fields(config.model, model_files.result()),
        "layers": list(layers),
        "pooling": config.pooling,
        "dtype": str(dtype),
        "storage": config.storage,
        "max_length": config.max_length,
        "on_overlength": config.on_overlength,
        "window_stride": config.window_stride,
        "invalid": config.invalid,
        "allow_nucleotide_like": config.allow_nucleotide_like,
        "forward": options.as_dict(),
    }


def _summary(result: RunResult, options: ForwardOptions) -> EmbedSummary:
    return EmbedSummary(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)}, options=options)


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
            f"{'residual float32, ' if self.options.residual == 'float32' else ''}"
            f"max_tokens {self.max_tokens}, workers {self.workers} {written}"
        )


def _overflow_fix(config: EmbedConfig, dtype: torch.dtype) -> str:
    """What to change when an embedding is not finite: fp16's range is the usual cause, in the
    computation (``--dtype``) or in the stored rows (``--storage``)."""
    fixes = []
    if dtype == torch.float16:
        fixes.append("compute in bf16 (--dtype bf16), whose range is fp32's")
    if config.storage == "float16":
        fixes.append("store float32 (--storage float32)")
    fixes.append("check the model's weights for inf or NaN")
    return "; or ".join(fixes)
