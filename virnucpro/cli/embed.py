"""``virnucpro embed``: FASTA in (protein, or nucleotide for a model that reads DNA), one embeddings file per output."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from virnucpro.data import DnaInput
from virnucpro.data.dna import FRAMES
from virnucpro.models import BACKENDS, FAMILIES, KERNELS, POOLINGS, ForwardOptions
from virnucpro.models.options import GELUS, RESIDUALS
from virnucpro.pipeline import DTYPES
from virnucpro.tasks.embed import STORAGE, EmbedConfig, run_embed

from .job_options import add_fp8_options, add_job_options, fp8_check, job_fields
from .streams import job_inputs

__all__ = ["DETAILS", "RESUME_HINT", "add_arguments", "run"]

RESUME_HINT = "rerun the same command with --resume to continue from the results committed so far"


DETAILS = (
    "protein FASTA (plain, gzip, bz2 or xz) with ESM-2, or nucleotide FASTA with a model that reads DNA "
    "(DNABERT-S), one row per record in input order. Run under torchrun for several GPUs, or with --shard "
    "for independent scheduler tasks."
)


def _pooling_help() -> str:
    """Each pooling mode; ``mean`` as each model family's published recipe defines it."""
    recipe = {False: "residues only, BOS and EOS excluded", True: "every token, special tokens included"}
    means = ", ".join(f"{name}: {recipe[family.mean_includes_special_tokens]}" for name, family in FAMILIES.items())
    modes = [f"{name}: {mode.help}" + (f" ({means})" if name == "mean" else "") for name, mode in POOLINGS.items()]
    return "; ".join(modes) + "; per-token needs one token per residue, not byte pairs (default: mean)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT",
        help="protein FASTA files, or nucleotide FASTA for a model that reads DNA (upper-cased, IUPAC codes "
        "only); - reads standard input",
    )  # fmt: skip
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "-o", "--output", type=Path,
        help="the file to write (.h5, .npz or .parquet, by its suffix); it appears only when complete",
    )  # fmt: skip
    out.add_argument("--output-dir", type=Path, help="write DIR/<input name>.h5 for each input, through one model")
    p.add_argument("--parents", action="store_true", help="create the output folder if it does not exist")
    p.add_argument(
        "--model",
        required=True,
        help="fair-esm name (e.g. esm2_t33_650M_UR50D), a local fair-esm .pt file, a DNABERT-S folder, "
        "or random:<name> (random weights, only for trying the tool)",
    )
    dna = p.add_argument_group("DNA input for protein models (VirNucPro's chunking and six-frame translation)")
    dna.add_argument(
        "--dna", action="store_true",
        help="the inputs are nucleotide FASTA: chunk and translate them for a protein model (a model that "
        "reads DNA, such as DNABERT-S, reads them as they are)",
    )  # fmt: skip
    dna.add_argument("--chunk-size", type=int, help="bases per chunk with --dna (default 500; VirNucPro: 300 or 500)")
    dna.add_argument(
        "--frames",
        choices=FRAMES,
        help="with --dna: stop-free (VirNucPro's, default) or all (every frame; not VirNucPro's)",
    )
    p.add_argument(
        "--allow-nucleotide-like", action="store_true",
        help="embed protein records that read as DNA or RNA (refused by default; --dna translates DNA)",
    )  # fmt: skip
    p.add_argument("--layers", type=int, nargs="+", help="layers to store, fair-esm numbering, -1 = last (default)")
    p.add_argument("--pooling", choices=POOLINGS, default="mean", help=_pooling_help())
    p.add_argument(
        "--dtype", choices=DTYPES,
        help="compute precision (default: bf16 on GPU, fp32 on CPU); fp8: FP8 matmuls on Hopper or newer, self-checked",
    )  # fmt: skip
    add_fp8_options(p)
    p.add_argument("--storage", choices=STORAGE, default="float32", help="stored embedding dtype")
    p.add_argument(
        "--max-tokens",
        type=int,
        help="tokens per packed batch (default: sized from free GPU memory); a record with more runs in a batch of its own",
    )
    p.add_argument(
        "--max-length", type=int,
        help="residues (bases) kept per sequence (default: the model's own, e.g. 1022 for ESM-2)",
    )  # fmt: skip
    p.add_argument(
        "--on-overlength", choices=("truncate", "raise", "window"), default="truncate",
        help="longer sequences: truncate (counted), fail, or window: embed every residue with overlapping "
        "windows of --max-length residues, merged per residue",
    )  # fmt: skip
    p.add_argument("--window-stride", type=int, help="with --on-overlength window: residues between window starts "
                   "(default: half of --max-length)")  # fmt: skip
    p.add_argument(
        "--invalid", choices=("raise", "X"), default="raise", help="unknown residues: fail, or replace with X"
    )
    p.add_argument("--attention", choices=("auto", *BACKENDS), default="auto", help="attention backend (default auto)")
    p.add_argument(
        "--kernels", choices=("auto", *KERNELS), default="auto",
        help="kernels between the matmuls: auto (Triton on CUDA), triton, torch",
    )  # fmt: skip
    p.add_argument(
        "--gelu", choices=("auto", *GELUS), default="auto",
        help="MLP activation: auto (tanh approximation fused into the matmul in fp16/bf16 on CUDA, "
        "else exact erf as fair-esm), exact, tanh",
    )  # fmt: skip
    p.add_argument(
        "--residual", choices=("auto", *RESIDUALS), default="auto",
        help="ESM-2's residual stream in bf16/fp16: auto (= compute, in the compute dtype, as fair-esm) or "
        "float32 (a third of bf16's error on the shortest proteins, for about 2 %% of 3B's speed)",
    )  # fmt: skip
    add_job_options(p, verb="embed", workers="parse and tokenise")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    with job_inputs(args, "an embeddings file", "a folder of embeddings files") as inputs:
        return _embed(args, argv, inputs)


def _dna(args: argparse.Namespace) -> DnaInput | None:
    """--dna's input kind; --chunk-size 0 is refused as in translate (DnaInput checks it), never replaced."""
    if not args.dna:
        return None
    return DnaInput(500 if args.chunk_size is None else args.chunk_size, args.frames or "stop-free")


def _embed(args: argparse.Namespace, argv: Sequence[str], inputs: tuple[Path, ...]) -> int:
    if not args.dna and (args.chunk_size is not None or args.frames is not None):
        raise ValueError("--chunk-size and --frames apply to DNA input: add --dna")
    config = EmbedConfig(
        model=args.model,
        layers=tuple(args.layers) if args.layers else None,
        pooling=args.pooling,
        dtype=args.dtype,
        fp8_check=fp8_check(args),
        storage=args.storage,
        max_length=args.max_length,
        on_overlength=args.on_overlength,
        window_stride=args.window_stride,
        invalid=args.invalid,
        dna=_dna(args),
        allow_nucleotide_like=args.allow_nucleotide_like,
        forward=ForwardOptions(attention=args.attention, kernels=args.kernels, gelu=args.gelu, residual=args.residual),
        **job_fields(args, argv, inputs),
    )
    summary = run_embed(config)
    if not args.quiet:
        print(summary.line())
    return 0
