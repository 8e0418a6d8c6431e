"""The options every job command takes (``embed``, ``predict``), spelled and explained once."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virnucpro.pipeline.config import SelfCheck, Shard

__all__ = ["add_fp8_options", "add_job_options", "fp8_check", "job_fields", "parse_shard"]


def add_fp8_options(p: argparse.ArgumentParser, model: str = "") -> None:
    """``--fp8-check-every`` and ``--fp8-min-cosine``; ``model`` names what is checked ("" : the model)."""
    of = f" of {model}" if model else ""
    p.add_argument(
        "--fp8-check-every", type=int, default=SelfCheck.every,
        help=f"with --dtype fp8, also run every Nth batch{of} in bf16 and compare (default {SelfCheck.every}, and the first)",
    )  # fmt: skip
    p.add_argument(
        "--fp8-min-cosine", type=float, default=SelfCheck.min_cosine,
        help=f"with --dtype fp8, stop when a checked row's cosine to bf16 falls below this (default {SelfCheck.min_cosine})",
    )  # fmt: skip


def add_job_options(p: argparse.ArgumentParser, *, verb: str, workers: str) -> None:
    """``--workers`` (``workers``: what they do), ``--device``, ``--threads``, ``--shard`` (``verb``: what a
    shard does), ``--resume`` / ``--overwrite`` and ``--no-progress``."""
    p.add_argument(
        "--workers", type=int,
        help=f"DataLoader workers that {workers} (default: 2, or 1 on 2 cores; a byte-pair model such as "
        "DNABERT-S up to 8, one core left free)",
    )  # fmt: skip
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument(
        "--threads", type=int,
        help="CPU threads torch computes with (default: torch's choice, one per core); on a shared node, "
        "the cores you were given",
    )  # fmt: skip
    p.add_argument("--shard", metavar="I/N", help=f"{verb} only shard I of N (0 <= I < N); then run virnucpro assemble")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true",
        help="continue a stopped run from its committed results, whatever stopped it (after a bad record: "
        "once the input is fixed); a stopped --overwrite replaces the old output when complete",
    )  # fmt: skip
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output and discard partial results")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


def parse_shard(text: str | None) -> Shard:
    """``--shard I/N`` as a ``Shard``; no flag is shard 0 of 1."""
    if text is None:
        return Shard()
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit():
        raise ValueError(f"--shard must be I/N (e.g. --shard 3/10, 0 <= I < N), got {text!r}")
    return Shard(int(index), int(count))


def job_fields(args: argparse.Namespace, argv: Sequence[str], inputs: tuple[Path, ...]) -> dict[str, Any]:
    """The ``JobConfig`` fields of a job command's flags (``add_job_options``, ``-o``/``--output-dir``,
    ``--max-tokens``, ``--parents``, ``-q``); ``argv``: the command line stored in the output."""
    fields = {"workers": args.workers} if args.workers is not None else {}  # absent: JobConfig's default
    return fields | {
        "inputs": inputs,
        "output": args.output,
        "output_dir": args.output_dir,
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "device": args.device,
        "shard": parse_shard(args.shard),
        "resume": args.resume,
        "overwrite": args.overwrite,
        "parents": args.parents,
        "progress": not (args.no_progress or args.quiet),
        "command": shlex.join(argv),
    }


def fp8_check(args: argparse.Namespace) -> SelfCheck:
    """``--fp8-check-every`` and ``--fp8-min-cosine`` (``add_fp8_options``) as a ``SelfCheck``."""
    return SelfCheck(args.fp8_check_every, args.fp8_min_cosine)
