"""``virnucpro``'s command line: parse, build the library's config, call the library, print one line.

Every error reaches the user as one line naming the file and the fix, with exit code 1;
Ctrl-C as one line saying how to resume, with exit code 130. Each command's module is
imported only when it runs (its options come from the library's registries), so
``virnucpro --help`` and ``--version`` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from virnucpro import __version__

__all__ = ["entry", "main"]

#: command => one-line description; the module ``virnucpro.cli.<command>`` has ``DETAILS`` (the rest of its
#: description), ``add_arguments(parser)``, ``run(args, argv)`` and ``RESUME_HINT`` (said after Ctrl-C).
COMMANDS = {
    "predict": "classify DNA as VirNucPro does (ESM-2 + DNABERT-S + its classifier), in one pass",
    "embed": "embed protein FASTA into an embeddings file",
    "assemble": "write an output from the parts of its --shard runs",
    "translate": "translate nucleotide FASTA into VirNucPro's proteins",
    "plot": "draw the per-contig chunk calls of a virnucpro predict output (PNG or PDF)",
}


def common_options() -> argparse.ArgumentParser:
    """Options every command takes (and the top level, before the command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress")
    return common


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virnucpro",
        description="Fast, exact-once ESM-2 protein embeddings. Commands:\n"
        + "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
        + "\n\nvirnucpro COMMAND --help lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options()],
    )
    parser.add_argument("--version", action="version", version=f"virnucpro {__version__}")
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _message(err: BaseException) -> str:
    """The error's own message; for one re-raised from a DataLoader worker, its original last line."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        return f"{err.filename}: {err.strerror or text}"
    return text or type(err).__name__


def _configure_logging(level: str | None, quiet: bool) -> None:
    level = "WARNING" if quiet else (level or "INFO")
    # At DEBUG each line carries the wall clock to the millisecond, so that a parent can place the
    # process's stages (imports, set-up, batches, exit) on its own timeline.
    stamp = "%(asctime)s.%(msecs)03d " if level == "DEBUG" else ""
    # The level is virnucpro's own; other libraries' loggers (h5py's DEBUG chatter) stay at WARNING.
    logging.basicConfig(format=f"virnucpro: {stamp}%(message)s", datefmt="%H:%M:%S", level="WARNING", stream=sys.stderr)
    logging.getLogger("virnucpro").setLevel(level)
    logging.captureWarnings(True)  # library warnings (e.g. random weights) become log lines
    warnings.simplefilter("default")
    # DataLoader workers are forked after CUDA has started its threads; they only parse text and
    # are cut off from CUDA (virnucpro.data.isolation), which is what this warning asks of a fork.
    warnings.filterwarnings("ignore", r"This process .* is multi-threaded, use of fork\(\)", DeprecationWarning)


def entry() -> NoReturn:
    """The ``virnucpro`` program: ``main``, then an immediate exit with its status.

    When ``main`` returns, every output is written and closed and the DataLoader workers have
    ended; a background thread still running (a record count that a ``--shard`` run never
    waits for) only reads. The interpreter's own teardown (torch, CUDA, every loaded module)
    would only add about half a second to each per-sample process, so it is skipped.
    """
    status = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. stdout was a pipe closed early: the output was not all delivered
        status = status or 1
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser().parse_args(argv)
    module = importlib.import_module(f"virnucpro.cli.{top.command}")
    summary = COMMANDS[top.command]
    parser = argparse.ArgumentParser(
        prog=f"virnucpro {top.command}",
        parents=[common_options()],
        description=f"{summary[0].upper()}{summary[1:]}: {module.DETAILS}",
    )
    module.add_arguments(parser)
    args = parser.parse_args(top.args)
    _configure_logging(args.log_level or top.log_level, args.quiet or top.quiet)
    log = logging.getLogger("virnucpro")
    log.debug("%s: imported and parsed", top.command)
    try:
        status = module.run(args, ["virnucpro", *argv])
    except KeyboardInterrupt:
        print(f"virnucpro: interrupted; {module.RESUME_HINT}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, TypeError) as err:
        print(f"virnucpro: error: {_message(err)}", file=sys.stderr)
        return 1
    log.debug("%s: done; the interpreter exits", top.command)
    return status
