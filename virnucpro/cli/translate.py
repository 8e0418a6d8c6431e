"""``virnucpro translate``: nucleotide FASTA to VirNucPro's protein (and nucleotide) FASTA, identically."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from virnucpro.data.dna import FRAMES
from virnucpro.data.translation_files import write_translation

from .streams import STDIN, fasta_inputs

__all__ = ["DETAILS", "RESUME_HINT", "add_arguments", "run"]

RESUME_HINT = "nothing was written; rerun the same command"
DETAILS = (
    "cut each record into chunks, translate every chunk in six frames and keep the frames without a stop "
    "codon, exactly as VirNucPro's prediction.py writes them, in input order. Output ending in .gz is gzip."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT",
        help="nucleotide FASTA files (plain or compressed); - reads standard input",
    )  # fmt: skip
    p.add_argument("-o", "--output", type=Path, required=True, help="protein FASTA to write; - writes standard output")
    p.add_argument(
        "--nucleotide-out", type=Path,
        help="also write VirNucPro's nucleotide FASTA (for DNABERT-S) here; - writes standard output",
    )  # fmt: skip
    p.add_argument("--chunk-size", type=int, default=500, help="bases per chunk (default 500; VirNucPro: 300 or 500)")
    p.add_argument(
        "--frames", choices=FRAMES, default="stop-free",
        help="stop-free (VirNucPro's, default) or all (every frame, inner stops as X; not VirNucPro's)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _target(path: Path | None) -> Path | BinaryIO | None:
    """Where an output goes: the file, or standard output for ``-`` (FASTA streams; never gzip there)."""
    return sys.stdout.buffer if path == STDIN else path


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    outputs = (("-o", args.output), ("--nucleotide-out", args.nucleotide_out))
    streamed = [flag for flag, path in outputs if path == STDIN]
    if len(streamed) > 1:
        raise ValueError("-o - and --nucleotide-out - would both write standard output; name a file for one of them")
    spool = Path(tempfile.gettempdir()) if args.output == STDIN else args.output.parent
    with fasta_inputs(args.inputs, spool) as inputs:
        counts = write_translation(
            inputs,
            _target(args.output),
            chunk_size=args.chunk_size,
            nucleotide_out=_target(args.nucleotide_out),
            frames=args.frames,
            overwrite=args.overwrite,
        )
    if not args.quiet:  # beside FASTA on standard output, the summary goes to standard error
        print(
            f"virnucpro translate: {counts.records:,} records ({counts.empty_records} empty), {counts.chunks:,} "
            f"chunks, {counts.proteins:,} proteins kept ({counts.gapped_proteins:,} of them missing codons that held N "
            f"or another ambiguity code, as VirNucPro drops them), {counts.stop_frames:,} frames with a stop and "
            f"{counts.empty_proteins:,} empty frames dropped -> {'-' if args.output == STDIN else args.output}",
            file=sys.stderr if streamed else sys.stdout,
        )
    return 0
