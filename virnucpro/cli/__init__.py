"""``virnucpro``'s command line: parse, build the library's config, call the library, print one line.

Every error reaches the user as one line naming the file and the fix, with exit code 1;
Ctrl-C as one line saying how to resume, with exit code 130, and SIGTERM (what SLURM sends
at a time limit) likewise, with exit code 143. Library messages name the library's
arguments and then their flags (``overwrite=True (CLI: --overwrite)``); the CLI shows only
the flags (``virnucpro.text.for_cli``). Warnings are one ``virnucpro: warning: ...`` line
each. Each command's module is imported only when it runs (its options come from the
library's registries), so ``virnucpro --help`` and ``--version`` never import torch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn

from virnucpro import __version__
from virnucpro.text import for_cli

__all__ = ["entry", "main"]

#: command => one-line description; the module ``virnucpro.cli.<command>`` has ``DETAILS`` (the rest of its
#: description), ``add_arguments(parser)``, ``run(args, argv)`` and ``RESUME_HINT`` (said after Ctrl-C or SIGTERM).
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
    common.add_argument(
        "-q", "--quiet", action="store_true",
        help="only errors and the random-weights warning: no progress, summary or other warnings",
    )  # fmt: skip
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


def message_of(err: BaseException) -> str:
    """The error's own message as a CLI user reads it (flags, not library arguments); for one re-raised
    from a DataLoader worker, its original last line."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    elif isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {err.strerror or text}"
    return for_cli(text) or type(err).__name__


#: What a warning must say to be shown under -q: using random weights is never silent.
_ALWAYS_SHOWN = "weights are RANDOM"


def _configure_logging(level: str | None, quiet: bool) -> None:
    level = "ERROR" if quiet else (level or "INFO")
    # At DEBUG each line carries the wall clock to the millisecond, so that a parent can place the
    # process's stages (imports, set-up, batches, exit) on its own timeline.
    stamp = "%(asctime)s.%(msecs)03d " if level == "DEBUG" else ""
    # The level is virnucpro's own; other libraries' loggers (h5py's DEBUG chatter) stay at WARNING.
    logging.basicConfig(format=f"virnucpro: {stamp}%(message)s", datefmt="%H:%M:%S", level="WARNING", stream=sys.stderr)
    logging.getLogger("virnucpro").setLevel(level)
    warnings.showwarning = _show_warning
    warnings.simplefilter("default")
    # DataLoader workers and the validation pass's process are forked after CUDA has started its
    # threads; they only parse text and never touch CUDA (virnucpro.data.isolation), which is what
    # this warning asks of a fork.
    warnings.filterwarnings("ignore", r"This process .* is multi-threaded, use of fork\(\)", DeprecationWarning)
    # "unclosed socket" and the like: a stopped run (SIGTERM, Ctrl-C) leaves the DataLoader's pipes to
    # the garbage collector, which is harmless and nothing a user can act on; it once followed the
    # resume hint as the run's last line.
    warnings.filterwarnings("ignore", category=ResourceWarning)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A library warning as one ``virnucpro: warning: ...`` line, without the source line that Python adds;
    the random-weights warning at ERROR, so that -q keeps it."""
    text = for_cli(str(message))
    level = logging.ERROR if _ALWAYS_SHOWN in text else logging.WARNING
    logging.getLogger("virnucpro").log(level, "warning: %s", text)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler's time limit, ``kill``): raised in the main thread, to stop as Ctrl-C does.

    A ``KeyboardInterrupt``, so that everything that cleans up after Ctrl-C (the last commit of the
    partial results, DataLoader workers, locks) does so after SIGTERM too.
    """


def _ignore(signum: int, frame: object) -> None:
    """A signal handler that does nothing."""


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[list[bool]]:
    """While the command runs, SIGTERM raises ``Terminated`` in the main thread; the list yielded holds
    True once it has come, whatever error the clean-up after it meets.

    Only once: a second SIGTERM while cleaning up is ignored rather than cutting the clean-up short. A
    scheduler signals the whole process group, DataLoader workers included, and PyTorch's SIGCHLD
    handler would report their deaths as an error in the middle of the clean-up: it is set aside too.
    """
    received = [False]

    def handler(signum: int, frame: object) -> None:
        received[0] = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # A Python no-op, not SIG_DFL: a SIGCHLD already pending (workers killed with the group) would
        # then be reported by CPython as "OSError: Signal 17 ignored due to race condition".
        signal.signal(signal.SIGCHLD, _ignore)
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler), signal.getsignal(signal.SIGCHLD)
    except ValueError:  # not the main thread (main() called from a thread): SIGTERM keeps its meaning
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        if received[0] and previous[1] is not None:
            signal.signal(signal.SIGCHLD, previous[1])


def entry() -> NoReturn:
    """The ``virnucpro`` program: ``main``, then an immediate exit with its status.

    When ``main`` returns, every output is written and closed and the DataLoader workers have
    ended; a background thread still running (a record count that a ``--shard`` run never
    waits for) only reads. The interpreter's own teardown (torch, CUDA, every loaded module)
    would only add about half a second to each per-sample process, so it is skipped.
    """
    status = main()
    digests = sys.modules.get("virnucpro.pipeline.digests")
    if digests is not None:  # a hashing thread may be writing the digest cache: let it finish first
        digests.close_cache()
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
    args.quiet = args.quiet or top.quiet  # the commands read it for their summary line
    _configure_logging(args.log_level or top.log_level, args.quiet)
    log = logging.getLogger("virnucpro")
    log.debug("%s: imported and parsed", top.command)
    terminated = [False]
    try:
        with _sigterm_stops() as terminated:
            status = module.run(args, ["virnucpro", *argv])
    except (KeyboardInterrupt, ValueError, OSError, RuntimeError, TypeError) as err:
        if terminated[0]:  # whatever the clean-up after it met
            print(f"virnucpro: terminated (SIGTERM); {module.RESUME_HINT}", file=sys.stderr)
            return 128 + signal.SIGTERM
        if isinstance(err, KeyboardInterrupt):
            print(f"virnucpro: interrupted; {module.RESUME_HINT}", file=sys.stderr)
            return 130
        log.debug("%s failed", top.command, exc_info=err)  # the one line below is for users; this, for bugs
        print(f"virnucpro: error: {message_of(err)}", file=sys.stderr)
        return 1
    log.debug("%s: done; the interpreter exits", top.command)
    return status
