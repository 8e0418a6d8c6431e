"""``virnucpro translate``: nucleotide FASTA to VirNucPro's protein (and nucleotide) FASTA, identically."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from virnucpro.data.dna import FRAMES
from virnucpro.data.translation_files import write_translation

__all__ = ["DETAILS", "RESUME_HINT", "add_arguments", "run"]

RESUME_HINT = "nothing was written; rerun the same command"
DETAILS = (
    "cut each record into chunks, translate every chunk in six frames and keep the frames without a stop "
    "codon, exactly as VirNucPro's prediction.py writes them, in input order. Output ending in .gz is gzip."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="nucleotide FASTA files (plain or compressed)")
    p.add_argument("-o", "--output", type=Path, required=True, help="protein FASTA to write")
    p.add_argument("--nucleotide-out", type=Path, help="also write VirNucPro's nucleotide FASTA (for DNABERT-S) here")
    p.add_argument("--chunk-size", type=int, default=500, help="bases per chunk (default 500; VirNucPro: 300 or 500)")
    p.add_argument(
        "--frames", choices=FRAMES, default="stop-free",
        help="stop-free (VirNucPro's, default) or all (every frame, inner stops as X; not VirNucPro's)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    counts = write_translation(
        args.inputs,
        args.output,
        chunk_size=args.chunk_size,
        nucleotide_out=args.nucleotide_out,
        frames=args.frames,
        overwrite=args.overwrite,
    )
    print(
        f"virnucpro translate: {counts.records:,} records ({counts.empty_records} empty), {counts.chunks:,} chunks, "
        f"{counts.proteins:,} proteins kept, {counts.stop_frames:,} frames with a stop and "
        f"{counts.empty_proteins:,} empty frames dropped -> {args.output}"
    )
    return 0
