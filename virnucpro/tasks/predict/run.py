"""``run_predict``: VirNucPro's whole classification in one pass, DNA FASTA to its result files.

``predict`` is a task of the job machinery (``virnucpro.pipeline.runner``): the DataLoader workers
chunk and translate the DNA (``DnaInput``, each frame with its DNA slice) and pack every batch for
both models (``PairedCollator``); on the device ESM-2 and DNABERT-S run packed, their pooled rows
are joined and classified (``compute.py``); only the scores (and, if asked, the features) reach
the parts, and the output folder is written from them (``assembly.py``). Claims, locks, resume,
shards, exact-once coverage and assembly are the machinery's, as for ``embed``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from virnucpro.data import PairedCollator, SequenceDataset, Tokenizer
from virnucpro.models import ForwardOptions, ModelFamily, family_for, get_pooling
from virnucpro.models.classifier import ClassifierModule, load_classifier
from virnucpro.pipeline.background import Background
from virnucpro.pipeline.config import RunResult, compute_dtype, default_workers
from virnucpro.pipeline.digests import identify
from virnucpro.pipeline.embedder import Embedder
from virnucpro.pipeline.fingerprint import model_fields, model_identities
from virnucpro.pipeline.job_state import JobState
from virnucpro.pipeline.outputs import FolderOutput
from virnucpro.pipeline.parts import PartLayout
from virnucpro.pipeline.runner import Stages, run_jobs
from virnucpro.pipeline.selfcheck import SelfCheckedEmbedder
from virnucpro.pipeline.task import Plan

from .assembly import ASSEMBLY, WHAT
from .compute import COLUMNS, PredictCompute, PredictRows, row_width
from .config import PredictConfig
from .provenance import predict_attributes

__all__ = ["PredictSummary", "PredictTask", "run_predict"]


def run_predict(config: PredictConfig) -> PredictSummary:
    """Classify ``config``'s inputs into its output folder(s); returns the summary (rank 0's is global).

    The classifier file is read and checked before anything is claimed or written. Raises on bad
    input or options, leaving no output; committed partial results stay, for ``resume``.
    """
    classifier = load_classifier(config.classifier)
    task = PredictTask(config, classifier)
    result = run_jobs(config, task)
    return PredictSummary(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)})


@dataclass(frozen=True)
class PredictSummary(RunResult):
    """What a finished ``predict`` run did (``records``: frames scored); ``line()`` is what the CLI prints."""

    def line(self) -> str:
        if all(job.skipped for job in self.jobs):
            names = ", ".join(str(job.output) for job in self.jobs)
            return f"virnucpro predict: {names} already complete (an earlier run finished it); nothing to do"
        ranks = f" on {self.world_size} ranks" if self.world_size > 1 else ""
        rate = self.records / self.wall_s if self.wall_s > 0 else 0.0
        if len(self.jobs) == 1:
            written = f"-> {self.output}" if self.jobs[0].assembled else f"-> {self.output} (shard parts; assemble)"
        else:
            written = f"-> {len(self.jobs)} output folders"
        empty = [job for job in self.jobs if job.assembled and not job.skipped and job.records == 0]
        none = f"no frame without a stop codon in {len(empty)} output(s): headers only; " if empty else ""
        fp8 = ""
        if self.checks is not None:
            fp8 = f"FP8 self-check cosine vs bf16 min {self.checks[0]:.5f} mean {self.checks[1]:.5f}; "
        return (
            f"virnucpro predict: {self.records:,} frames in {self.wall_s:.1f} s = {rate:,.1f} frames/s{ranks}; "
            f"input wait {100 * self.input_wait:.1f} % of wall (first batch after {self.startup_s:.1f} s; "
            f"model set-up {self.setup_s:.1f} s, final assembly {self.finish_s:.1f} s); "
            f"{none}duplicate frame ids {self.duplicate_ids}; {fp8}"
            f"max_tokens {self.max_tokens} {written}"
        )


class PredictTask:
    """``predict`` as the runner drives it: ESM-2 and DNABERT-S on every frame, then the classifier."""

    name = "predict"
    entry = ("run_predict", "classified")

    def __init__(self, config: PredictConfig, classifier: ClassifierModule) -> None:
        self.config, self.classifier = config, classifier
        self.output = FolderOutput(config.files, WHAT)
        # Two: with them the GPU waited 0.0 % of a 12,675-frame H100 run (results/predict_speed.md)
        self.workers = default_workers()
        self.esm: ModelFamily = family_for(config.model)
        self.dna: ModelFamily = family_for(config.dnabert)
        # Read now, before any output is claimed: a model folder or cache entry that is missing or
        # broken is refused while nothing is on disk yet.
        self.tokenizers: tuple[Tokenizer, Tokenizer] = (
            self.esm.tokenizer(config.model),
            self.dna.tokenizer(config.dnabert),
        )
        self.kind = config.kind
        self.collate = PairedCollator(*self.tokenizers)

    def dataset(self, state: JobState, lane: int, lanes: int, *, whole: bool = False) -> SequenceDataset:
        """A job's frames for this lane, budgeted in ESM-2 tokens (``whole``: every frame, unbatched); no
        protein is ever cut (``PredictConfig`` bounds the chunk size)."""
        return SequenceDataset(
            state.job.inputs,
            max_tokens=None if whole else state.max_tokens,
            on_overlength="raise",
            skip=None if whole else state.skip,
            rank=lane,
            world_size=lanes,
            report=False,
            tokenizer=self.tokenizers[0],
            kind=self.kind,
        )

    def check_device(self, device: torch.device) -> None:
        self._options(device, compute_dtype(self.config.dtype, device))

    def _options(self, device: torch.device, dtype: torch.dtype) -> tuple[ForwardOptions, ForwardOptions]:
        """The options each model runs with here: ESM-2's (FP8 with --dtype fp8), DNABERT-S's defaults."""
        esm = ForwardOptions(matmul="fp8" if self.config.dtype == "fp8" else "native")
        return self.esm.resolve_options(esm, device, dtype), self.dna.resolve_options(ForwardOptions(), device, dtype)

    def plan(self, device: torch.device, stage: Stages) -> Plan:
        config = self.config
        # SHA-256 of every model file, hashed while the models are mapped and copied.
        files = Background(lambda: stage.after(self._identities(), "model files hashed"))
        dtype = compute_dtype(config.dtype, device)
        esm, _ = self.esm.load(config.model, dtype=None)  # as stored, memory-mapped: copied once, to the device
        dna, _ = self.dna.load(config.dnabert, dtype=None)
        stage("models mapped")
        width = dna.embed_dim + esm.embed_dim
        if self.classifier.input_dim != width:
            raise ValueError(
                f"{config.classifier}: the classifier takes {self.classifier.input_dim} features per frame, but "
                f"{config.dnabert} gives {dna.embed_dim} and {config.model} {esm.embed_dim} ({width}); use the "
                "classifier trained on these models' features"
            )
        layers = (self.esm.layers(None, esm)[0], self.dna.layers(None, dna)[0])
        options = self._options(device, dtype)
        tokenizers = self.tokenizers
        budget = min(
            self.esm.max_tokens(esm, dtype, device, 1, matmul=options[0].matmul),
            self.dna.max_tokens(dna, dtype, device, 1),
        )
        features = width if config.save_features else None
        return Plan(
            layout=PartLayout((row_width(features),), np.dtype(np.float32), COLUMNS + config.kind.columns),
            max_tokens=config.max_tokens or budget,
            fingerprint=functools.partial(self._fingerprint, files, layers, dtype, options),
            output={
                "per_token": False,
                "row_shape": [row_width(features)],
                "storage": "float32",
                "special_tokens": tokenizers[0].special_tokens_per_sequence,
                "files": list(config.files),
                "features": config.save_features,
            },
            attributes=lambda job, fingerprint: predict_attributes(
                config, job.inputs, fingerprint, device, self.classifier.random
            ),
            compute=functools.partial(self._compute, (esm, dna), layers, (dtype, device), options, stage),
            store=PredictRows,
            assembly=ASSEMBLY,
        )

    def _identities(self) -> dict[str, Any]:
        return {
            "esm2": model_identities(self.esm, self.config.model),
            "dnabert": model_identities(self.dna, self.config.dnabert),
            "classifier": identify(self.config.classifier),
        }

    def _fingerprint(
        self,
        files: Background,
        layers: tuple[int, int],
        dtype: torch.dtype,
        options: tuple[ForwardOptions, ForwardOptions],
    ) -> dict[str, Any]:
        """``predict``'s fields of the resume fingerprint: both models, the classifier, the precision."""
        identities = files.result()
        classifier = identities["classifier"]
        return {
            "esm2": model_fields(self.config.model, identities["esm2"]),
            "dnabert": model_fields(self.config.dnabert, identities["dnabert"]),
            "classifier": {"sha256": classifier.sha256, "size": classifier.size},
            "esm2_layer": layers[0],
            "dnabert_layer": layers[1],
            "dtype": str(dtype),
            "esm2_forward": options[0].as_dict(),
            "dnabert_forward": options[1].as_dict(),
            "features": self.config.save_features,
        }

    def _compute(
        self,
        models: tuple[nn.Module, nn.Module],
        layers: tuple[int, int],
        where: tuple[torch.dtype, torch.device],
        options: tuple[ForwardOptions, ForwardOptions],
        stage: Stages,
    ) -> PredictCompute:
        """Both packed models and the classifier on the device, warmed up; with FP8, a bf16 ESM-2 to check against."""
        (esm, dna), (_, device) = models, where
        protein = self._embedder(self.esm, esm, layers[0], where, options[0])
        stage("ESM-2 on the device, warmed up")
        if options[0].matmul == "fp8":
            native = dataclasses.replace(options[0], matmul="native")
            reference = self._embedder(self.esm, esm, layers[0], where, native)
            protein = SelfCheckedEmbedder(protein, reference, self.config.fp8_check)
            stage("bf16 ESM-2 for the FP8 self-check on the device, warmed up")
        nucleotide = self._embedder(self.dna, dna, layers[1], where, options[1])
        stage("DNABERT-S on the device, warmed up")
        classifier = self.classifier.to(device)
        return PredictCompute(protein, nucleotide, classifier, features=bool(self.config.save_features))

    @staticmethod
    def _embedder(
        family: ModelFamily,
        model: nn.Module,
        layer: int,
        where: tuple[torch.dtype, torch.device],
        options: ForwardOptions,
    ) -> Embedder:
        """One model packed on the device, warmed up, pooled by its family's mean."""
        dtype, device = where
        packed = family.packed(model, dtype=dtype, device=device, options=options)
        packed.warm_up()
        return Embedder(
            packed, (layer,), get_pooling("mean", include_special_tokens=family.mean_includes_special_tokens)
        )
