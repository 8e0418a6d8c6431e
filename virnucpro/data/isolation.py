"""Keep DataLoader workers away from CUDA, and where a record belongs: rank and world size.

A worker that initialises CUDA costs GPU memory per worker and, under ``fork``
from a parent that already uses CUDA, crashes. Workers only parse text, so the
dataset cuts them off from CUDA before anything can touch it and checks that
the cut holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import traceback

import torch
import torch.distributed as dist

__all__ = ["die_with_parent", "isolate_worker_from_cuda", "quiet_parent_hangups", "resolve_rank"]

_PR_SET_PDEATHSIG = 1


def isolate_worker_from_cuda(worker_id: int) -> None:
    """Make CUDA unreachable in this DataLoader worker, then check that it is.

    Sets ``CUDA_VISIBLE_DEVICES=''`` before CUDA can be initialised here. In a
    child forked from a parent that already used CUDA, torch itself refuses
    CUDA (``_is_in_bad_fork``), which is just as safe. Raises ``RuntimeError``
    naming the worker when CUDA was initialised in this worker before the
    dataset could prevent it, for example by a ``worker_init_fn``; its first
    sentences are the user's plan's ("Worker {id}: CUDA access detected.
    Workers must be CPU-only.").
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if torch.cuda._is_in_bad_fork():
        return
    if torch.cuda.is_initialized():
        raise RuntimeError(
            f"Worker {worker_id}: CUDA access detected. Workers must be CPU-only. CUDA was initialised in "
            f"DataLoader worker {worker_id} before the dataset could isolate it: remove CUDA calls from "
            "worker_init_fn and from code imported by the workers, or use num_workers=0."
        )


def die_with_parent() -> None:
    """Have the kernel end this DataLoader worker when the process that started it dies.

    A worker blocked writing a batch into a full pipe never notices that its parent was
    killed (``kill -9``), and would hold its memory and shared-memory segments forever.
    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere PyTorch's own parent watchdog remains.
    """
    # The CLI's SIGTERM handler (stop and commit, as Ctrl-C) is the parent's business: forked, this
    # worker would inherit it; here SIGTERM, from the kernel below or a scheduler, simply ends the worker.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def quiet_parent_hangups() -> None:
    """Keep a DataLoader worker silent when its parent hangs up in the middle of taking a batch.

    A batch's tensors reach the parent through file descriptors that this worker's
    ``multiprocessing.resource_sharer`` thread hands over on request. When the parent stops in
    the middle of a request (Ctrl-C, SIGTERM), that thread meets a reset connection and prints a
    traceback under the parent's one-line message. Those connection errors say only that the
    parent left, which it reports itself; every other error still reaches the previous hook.
    """
    previous = sys.excepthook
    if getattr(previous, "_virnucpro_quiet", False):  # already installed (each iteration calls this)
        return

    def hook(kind: type[BaseException], error: BaseException, tb: object) -> None:
        if issubclass(kind, (ConnectionError, EOFError)) and _from_resource_sharer(tb):
            return
        previous(kind, error, tb)

    hook._virnucpro_quiet = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _from_resource_sharer(tb: object) -> bool:
    frames = traceback.extract_tb(tb)  # type: ignore[arg-type]
    return any(os.path.basename(frame.filename) == "resource_sharer.py" for frame in frames)


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """The (rank, world_size) records are sharded over.

    Explicit arguments win; otherwise ``torch.distributed`` when initialised;
    otherwise ``RANK``/``WORLD_SIZE`` as torchrun sets them; otherwise (0, 1).
    Resolved in the main process, because DataLoader workers have no process group.
    """
    if (rank is None) != (world_size is None):
        raise ValueError(f"pass both rank and world_size or neither; got rank={rank}, world_size={world_size}")
    if rank is None:
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            rank = int(os.environ.get("RANK", 0))
            world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size
