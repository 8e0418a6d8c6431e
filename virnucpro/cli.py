"""``virnucpro embed``: parse the arguments, build an EmbedConfig, run it, print one summary line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virnucpro", description="Fast, exact-once ESM-2 protein embeddings.")
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser(
        "embed",
        help="embed protein FASTA into an HDF5 file",
        description="Embed protein FASTA (plain or gzip) with ESM-2 into an HDF5 file, one row per record "
        "in input order. Run under torchrun for several GPUs.",
    )
    embed.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="protein FASTA files, plain or gzip")
    embed.add_argument(
        "-o", "--output", type=Path, required=True, help="HDF5 file to write (appears only when complete)"
    )
    embed.add_argument(
        "--model",
        required=True,
        help="fair-esm name (e.g. esm2_t33_650M_UR50D), a local fair-esm .pt file, "
        "or random:<name> (random weights, only for trying the tool)",
    )
    embed.add_argument("--layers", type=int, nargs="+", help="layers to store, fair-esm numbering (default: the last)")
    embed.add_argument(
        "--pooling", choices=("mean", "bos", "per-token"), default="mean", help="default: mean over residues"
    )
    embed.add_argument(
        "--dtype", choices=("fp32", "fp16", "bf16"), help="compute precision (default: bf16 on GPU, fp32 on CPU)"
    )
    embed.add_argument("--storage", choices=("float32", "float16"), default="float32", help="stored embedding dtype")
    embed.add_argument("--max-tokens", type=int, help="tokens per packed batch (default: sized from free GPU memory)")
    embed.add_argument("--max-length", type=int, default=1022, help="residues kept per sequence (default 1022)")
    embed.add_argument(
        "--on-overlength",
        choices=("truncate", "raise"),
        default="truncate",
        help="longer sequences: truncate (counted) or fail",
    )
    embed.add_argument(
        "--invalid", choices=("raise", "X"), default="raise", help="unknown residues: fail, or replace with X"
    )
    embed.add_argument(
        "--workers", type=int, help="DataLoader workers that parse and tokenise (default: 2, or 1 on 2 cores)"
    )
    embed.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    embed.add_argument(
        "--attention", default="auto", help="attention backend: auto, flash-attn, triton, torch-varlen, reference"
    )
    embed.add_argument(
        "--kernels", choices=("auto", "triton", "torch"), default="auto",
        help="kernels between the matmuls: auto (Triton on CUDA), triton, torch",
    )  # fmt: skip
    embed.add_argument(
        "--gelu", choices=("auto", "exact", "tanh"), default="auto",
        help="MLP activation: auto (tanh approximation fused into the matmul in fp16/bf16 on CUDA, "
        "else exact erf as fair-esm), exact, tanh",
    )  # fmt: skip
    mode = embed.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run from its committed results")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output and discard partial results")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _message(err: BaseException) -> str:
    """The error's own message; for one re-raised from a DataLoader worker, its original last line."""
    text = str(err).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    return last.split(": ", 1)[1] if last.startswith(type(err).__name__ + ": ") else last


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from virnucpro.models import ForwardOptions  # after parsing: --help stays fast
    from virnucpro.pipeline import EmbedConfig, run_embed

    options = {"workers": args.workers} if args.workers is not None else {}
    try:
        config = EmbedConfig(
            inputs=tuple(args.inputs),
            output=args.output,
            model=args.model,
            layers=tuple(args.layers) if args.layers else None,
            pooling=args.pooling,
            dtype=args.dtype,
            storage=args.storage,
            max_tokens=args.max_tokens,
            max_length=args.max_length,
            on_overlength=args.on_overlength,
            invalid=args.invalid,
            device=args.device,
            forward=ForwardOptions(attention=args.attention, kernels=args.kernels, gelu=args.gelu),
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **options,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            summary = run_embed(config)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        print(f"virnucpro: error: {_message(err)}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0
