"""``virnucpro predict``: nucleotide FASTA in, VirNucPro's classification out, in one pass."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from virnucpro.pipeline.config import DTYPES

from .job_options import add_fp8_options, add_job_options, fp8_check, job_fields
from .streams import job_inputs

__all__ = ["DETAILS", "RESUME_HINT", "add_arguments", "run"]

RESUME_HINT = "rerun the same command with --resume to continue from the results committed so far"

DETAILS = (
    "VirNucPro's classification of DNA (plain, gzip, bz2 or xz FASTA): chunks, stop-free frames, ESM-2 and "
    "DNABERT-S features, its MLP classifier, its result files (prediction_results.txt, "
    "prediction_results_highestscore.csv) plus contigs.tsv and provenance.json, without intermediate files. "
    "Run under torchrun for several GPUs, or with --shard for independent scheduler tasks."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Imported here: `virnucpro --help` never imports torch.
    from virnucpro.tasks.predict.config import DEFAULT_DNABERT, DEFAULT_MODEL

    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="nucleotide FASTA files; - reads standard input"
    )
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", type=Path, help="the folder to write; it appears only when complete")
    out.add_argument(
        "--output-dir", type=Path, help="write DIR/<input name>/ for each input, through one pair of models"
    )
    p.add_argument("--parents", action="store_true", help="create the output's parent folder if it does not exist")
    p.add_argument(
        "--classifier", type=Path, required=True,
        help="VirNucPro's classifier: 300_model.pth or 500_model.pth (or its state dict, or safetensors)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=int, required=True,
        help="bases per chunk, as the classifier was trained: 300 for 300_model.pth, 500 for 500_model.pth",
    )  # fmt: skip
    p.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"ESM-2: a Hugging Face id or folder, a fair-esm name or .pt file, or random:<name> (default {DEFAULT_MODEL})",
    )  # fmt: skip
    p.add_argument(
        "--dnabert", default=DEFAULT_DNABERT,
        help=f"DNABERT-S: a Hugging Face id (from the local cache) or a model folder (default {DEFAULT_DNABERT})",
    )  # fmt: skip
    p.add_argument(
        "--save-features", metavar="NAME.h5",
        help="also write each frame's features (DNABERT-S's 768, then ESM-2's 2560) as this file in the output folder",
    )  # fmt: skip
    p.add_argument(
        "--dtype", choices=DTYPES,
        help="compute precision (default: bf16 on GPU, fp32 on CPU); fp8: ESM-2's matmuls in FP8 on Hopper or newer, "
        "self-checked",
    )  # fmt: skip
    add_fp8_options(p, "ESM-2")
    p.add_argument(
        "--max-tokens",
        type=int,
        help="ESM-2 tokens per packed batch (default: sized from free GPU memory); a longer protein runs alone",
    )
    add_job_options(p, verb="classify", workers="parse, translate and tokenise")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    with job_inputs(args, "an output folder", "a folder of output folders") as inputs:
        return _predict(args, argv, inputs)


def _predict(args: argparse.Namespace, argv: Sequence[str], inputs: tuple[Path, ...]) -> int:
    from virnucpro.tasks.predict.config import PredictConfig
    from virnucpro.tasks.predict.run import run_predict

    config = PredictConfig(
        classifier=args.classifier,
        chunk_size=args.chunk_size,
        model=args.model,
        dnabert=args.dnabert,
        dtype=args.dtype,
        fp8_check=fp8_check(args),
        save_features=args.save_features,
        **job_fields(args, argv, inputs),
    )
    print(run_predict(config).line())
    return 0
