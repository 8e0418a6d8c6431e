"""Host-to-device copies of a model's weights through pinned staging buffers.

A checkpoint loaded with ``torch.load(mmap=True)`` lives in the page cache. Copied straight
to the GPU, each of its tensors is a pageable copy: the driver moves it through its own
staging memory with one thread, faulting the mapped pages in as it goes. Inside
``staged_uploads(device)``, ``upload_into`` instead moves each tensor in chunks through
two pinned buffers: torch's CPU copy fills one with all its threads while the DMA
engine empties the other into the device. A dtype change (fp16 on disk, bf16 on the
GPU) happens on the device, after the transfer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

__all__ = ["placed", "staged_uploads", "upload_into"]

#: Bytes per staging buffer: large enough that each chunk's fixed costs (an event, a launch)
#: vanish beside its transfer, small enough that pinning two costs little.
CHUNK_BYTES = 64 << 20
_STAGED_AT_LEAST = 1 << 20  # bytes; smaller tensors go as plain copies
_active = threading.local()  # the thread's open _Stager, if any


class _Stager:
    """Two pinned buffers, used in turn, each with the event of the last transfer out of it."""

    def __init__(self, device: torch.device, chunk_bytes: int) -> None:
        self.device = device
        self.buffers = [torch.empty(chunk_bytes, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self.events = [torch.cuda.Event() for _ in range(2)]
        self.turn = 0

    def copy(self, dst: Tensor, src: Tensor) -> None:
        flat_src, flat_dst = src.reshape(-1), dst.view(-1)
        size = src.element_size()
        step = self.buffers[0].numel() // size
        stream = torch.cuda.current_stream(self.device)
        for start in range(0, flat_src.numel(), step):
            part = flat_src[start : start + step]
            i, self.turn = self.turn, 1 - self.turn
            self.events[i].synchronize()  # the buffer's previous chunk has reached the device
            staged = self.buffers[i][: part.numel() * size].view(src.dtype)
            staged.copy_(part)
            target = flat_dst[start : start + part.numel()]
            if dst.dtype == src.dtype:
                target.copy_(staged, non_blocking=True)
            else:  # torch would convert a pinned source on the host, synchronously: convert on the device
                target.copy_(staged.to(self.device, non_blocking=True))
            self.events[i].record(stream)

    def close(self) -> None:
        for event in self.events:
            event.synchronize()


@contextmanager
def staged_uploads(device: torch.device | str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[None]:
    """Within this block, this thread's ``upload_into`` to CUDA ``device`` goes through pinned buffers.

    On leaving, every transfer has completed and the buffers are released. Elsewhere (a CPU
    device, another thread) ``upload_into`` is a plain copy.
    """
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    previous = getattr(_active, "stager", None)
    _active.stager = stager = _Stager(device, chunk_bytes)
    try:
        yield
    finally:
        _active.stager = previous
        stager.close()


def upload_into(dst: Tensor, src: Tensor) -> None:
    """``dst.copy_(src)``, for a contiguous ``dst`` of ``src``'s shape in any dtype.

    Staged (see the module) when ``staged_uploads`` is open for ``dst``'s device and ``src``
    is a large host tensor; the transfer may still be in flight when this returns, as with
    any stream-ordered copy, and ``dst`` is safe to use on the device's current stream.
    """
    stager = getattr(_active, "stager", None)
    staged = (
        stager is not None
        and src.device.type == "cpu"
        and dst.device == stager.device
        and dst.is_contiguous()
        and dst.shape == src.shape
        and src.numel() * src.element_size() >= _STAGED_AT_LEAST
    )
    if staged:
        stager.copy(dst, src)
    else:
        dst.copy_(src)


def placed(tensor: Tensor, dtype: torch.dtype | None, device: torch.device) -> Tensor:
    """A loaded weight where a loader's caller asked for it: ``tensor`` itself for dtype None on the
    CPU (a memory-mapped tensor stays mapped), else a copy in ``dtype`` on ``device`` owning its memory."""
    if dtype is None and device.type == "cpu":
        return tensor
    return tensor.to(device=device, dtype=dtype or tensor.dtype, copy=True)
