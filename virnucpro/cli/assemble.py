"""``virnucpro assemble``: write an output from the parts of its ``--shard`` runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from virnucpro.pipeline import assemble_output

from .streams import refuse_stdout

__all__ = ["DETAILS", "RESUME_HINT", "add_arguments", "run"]

RESUME_HINT = "nothing was written; rerun the same command"
DETAILS = (
    "checks that the shards hold every record of the inputs exactly once, then writes OUTPUT, identical "
    "to a single run. The options come from the parts."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", type=Path, metavar="OUTPUT", help="the output the shards were run for (their -o)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    refuse_stdout("OUTPUT", args.output, "an embeddings file")
    result = assemble_output(args.output, overwrite=args.overwrite)
    if not args.quiet:
        print(
            f"virnucpro assemble: {result.records:,} records; truncated {result.truncated}; "
            f"duplicate ids {result.duplicate_ids} -> {result.output}"
        )
    return 0
