"""What every packed forward shares: its inputs and their checks, the warm-up, the device-bound copy.

A family's packed model (``PackedESM2``, ``PackedDNABERT``) subclasses ``PackedModel``: it
copies a source model's weights once, into one dtype on one device, and runs
``forward(input_ids, cu_seqlens, max_seqlen, repr_layers=)`` over packed sequences.
``build_blocks_warming`` copies its blocks while a thread compiles the kernels on the first
ones, so that a first process pays its compilation during the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from virnucpro.data import PackedBatch

__all__ = ["PackedModel", "build_blocks_warming", "packed_inputs", "warm_in_thread", "warm_up_batches"]

Block = TypeVar("Block")
#: One packed batch as the forward takes it: input_ids (T,) int64, cu_seqlens (N + 1,) int32, max_seqlen.
Packed = tuple[Tensor, Tensor, int]


class PackedModel(nn.Module):
    """Base of the packed forwards: a copy of weights made for one device and dtype.

    Subclasses register ``embed_weight`` (its device and dtype are the model's), set
    ``num_layers``, and define ``forward(input_ids, cu_seqlens, max_seqlen, repr_layers=)``.
    """

    embed_weight: Tensor
    num_layers: int

    def _apply(self, fn, recurse=True):
        name = type(self).__name__
        raise RuntimeError(
            f"{name} holds a copy of the weights made for one device and dtype, which .to(), "
            f".cuda() and .half() cannot move; build a new {name}(model, dtype=..., device=...)"
        )

    @property
    def device(self) -> torch.device:
        return self.embed_weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_weight.dtype

    def warm_up(self) -> None:
        """Run tiny batches so that every kernel is compiled (or read from the on-disk cache) and
        cuBLAS is set up before the first real batch, which then runs at full speed.

        Most kernels were already compiled while the weights were copied (``build_blocks_warming``).
        """
        for input_ids, cu_seqlens, max_seqlen in warm_up_batches(self.device):
            self(input_ids, cu_seqlens, max_seqlen, repr_layers=range(self.num_layers + 1))


def packed_inputs(
    input_ids: Tensor | PackedBatch, cu_seqlens: Tensor | None, max_seqlen: int | None, device: torch.device
) -> Packed:
    """The forward's (input_ids, cu_seqlens, max_seqlen), taken from a ``PackedBatch`` when one is
    passed alone, each checked: ``ValueError`` / ``TypeError`` naming the argument and the fix."""
    if cu_seqlens is None and max_seqlen is None and not isinstance(input_ids, Tensor):
        input_ids, cu_seqlens, max_seqlen = input_ids.input_ids, input_ids.cu_seqlens, input_ids.max_seqlen
    if input_ids.ndim != 1 or input_ids.dtype != torch.int64:
        raise ValueError(
            f"input_ids must be (T,) int64 packed token ids, got shape {tuple(input_ids.shape)} {input_ids.dtype}"
        )
    if cu_seqlens is None or cu_seqlens.ndim != 1 or cu_seqlens.dtype != torch.int32 or cu_seqlens.numel() < 2:
        got = "None" if cu_seqlens is None else f"shape {tuple(cu_seqlens.shape)} {cu_seqlens.dtype}"
        raise ValueError(f"cu_seqlens must be (N + 1,) int32 with N >= 1, got {got}")
    if input_ids.device != device or cu_seqlens.device != device:
        raise ValueError(
            f"input_ids ({input_ids.device}) and cu_seqlens ({cu_seqlens.device}) must be on "
            f"the model's device {device}; move them with .to({str(device)!r})"
        )
    if not isinstance(max_seqlen, int):
        raise TypeError(
            f"max_seqlen must be a host int, got {type(max_seqlen).__name__}; "
            "compute it from the sequence lengths before moving them to the device"
        )
    return input_ids, cu_seqlens, max_seqlen


def warm_up_batches(device: torch.device) -> Iterator[Packed]:
    """Tiny batches of 1, 17 and 32 sequences on ``device``: they cover the integer specialisations
    Triton compiles (an argument equal to 1, divisible by 16, or neither). Token ids are 0."""
    for n in (1, 17, 32):
        lengths = torch.arange(n, dtype=torch.int32) % 7 + 3
        cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0)).to(device)
        input_ids = torch.zeros(int(lengths.sum()), dtype=torch.int64, device=device)  # values do not matter
        yield input_ids, cu_seqlens, int(lengths.max())


def warm_in_thread(device: torch.device, run: Callable[[Tensor, Tensor, int], object]) -> None:
    """``run(*batch)`` on each warm-up batch, then wait for the device; nothing off CUDA (nothing to
    compile). For a thread: grad mode and the current CUDA device are per thread, so both are set here."""
    if device.type != "cuda":
        return
    with torch.no_grad(), torch.cuda.device(device):
        for batch in warm_up_batches(device):
            run(*batch)
        torch.cuda.synchronize(device)


def build_blocks_warming(
    kinds: Sequence[Hashable], build: Callable[[int], Block], warm: Callable[[list[Block]], object]
) -> list[Block]:
    """``[build(i) for i in range(len(kinds))]``, block i being of kind ``kinds[i]``.

    The first block of each kind is built first; ``warm`` (those blocks) then runs in a thread
    while the rest are built, so that kernels compile during the copy instead of after it.
    """
    first: dict[Hashable, int] = {}
    for i, kind in enumerate(kinds):
        first.setdefault(kind, i)
    blocks: list[Block | None] = [None] * len(kinds)
    for i in first.values():
        blocks[i] = build(i)
    with ThreadPoolExecutor(1, thread_name_prefix="virnucpro-warm-up") as pool:
        warming = pool.submit(warm, [blocks[i] for i in first.values()])
        for i in range(len(kinds)):
            if blocks[i] is None:
                blocks[i] = build(i)
        warming.result()
    return blocks
