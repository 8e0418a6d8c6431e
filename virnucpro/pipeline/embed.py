"""``run_embed``: FASTA on disk to embeddings on disk, asynchronously, exactly once.

``embed`` is a task of the job machinery (``runner.py``, ``task.py``): it hands it one model,
its tokenizer's batches, the pooled rows per batch (``embedder.py``), the row layout, and an
output file written by suffix (``writers/``). Everything else (claims, parts, resume, shards,
assembly) is the machinery's.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import torch
from torch import nn

from virnucpro.data import SequenceDataset, Tokenizer, VarlenCollator
from virnucpro.data.tokenizer import is_per_character
from virnucpro.models import ForwardOptions, ModelFamily, family_for, get_pooling
from virnucpro.reading import read_attributes

from .background import Background
from .config import STORAGE, EmbedConfig, EmbedSummary, RunResult, compute_dtype
from .embedder import Embedder, EmbedRows, StoredRows
from .fingerprint import model_fields, model_identities
from .job_state import JobState
from .jobs import Job
from .outputs import FileOutput
from .parts import PartLayout
from .provenance import job_attributes
from .runner import Stages, run_jobs
from .selfcheck import SelfCheckedEmbedder
from .task import Assembly, Plan
from .validation import EMBED
from .writers import OutputWriter, writer_for

__all__ = ["ASSEMBLY", "EmbedTask", "run_embed"]

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
            attributes=lambda job, fingerprint: job_attributes(
                config, job.inputs, fingerprint, device, model_files.result()
            ),
            compute=functools.partial(self._compute, model, (dtype, device), options, layers, stage),
            store=lambda part: EmbedRows(part, config.per_token, count_tokens=not is_per_character(tokenizer)),
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
