"""``virnucpro plot``: draw a ``virnucpro predict`` output's per-contig chunk calls (needs the [plot] extra)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DETAILS", "RESUME_HINT", "add_arguments", "run"]

RESUME_HINT = "no figure was written; rerun the same command"
DETAILS = (
    "one panel per contig, each chunk at its place on the contig and at its highest score, coloured by "
    "VirNucPro's call (VirNucPro's drew_fig.py picture). Default: the first five contigs, into OUT/prediction.png; "
    "PNG or PDF by the figure's suffix. Needs matplotlib: pip install 'virnucpro[plot]'."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", type=Path, metavar="OUT", help="the output folder of virnucpro predict")
    p.add_argument("-o", "--output", type=Path, help="figure to write, .png or .pdf (default OUT/prediction.png)")
    p.add_argument("--contigs", nargs="+", metavar="ID", help="ids of the contigs to draw (default: the first five)")
    p.add_argument("--chunk-size", type=int, help="the run's chunk size (default: read from OUT/provenance.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing figure")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from virnucpro.tasks.predict.plot import plot_predictions

    figure = plot_predictions(
        args.out_dir, args.output, contigs=args.contigs, chunk_size=args.chunk_size, overwrite=args.overwrite
    )
    print(f"virnucpro plot: -> {figure}")
    return 0
