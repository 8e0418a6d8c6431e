"""``run_embed``: FASTA on disk to embeddings on disk, asynchronously, exactly once.

The flow, one process per GPU (torchrun for several):

    SequenceDataset(max_tokens)  --workers: parse, normalise, budget, tokenise-->  pinned batch
    --non_blocking copy-->  PackedESM2  -->  pooling on the GPU  --non_blocking copy-->  pinned rows
    --writer thread: waits on the batch's CUDA event, appends to this rank's part-->  rank 0 assembles OUT.h5

The thread that drives the GPU never waits on it: the only host-device
synchronisation per batch is the writer thread's wait on that batch's event.
The GPU's idle time between batches is measured with CUDA events: it is the
time the GPU waited for input.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import esm
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

import virnucpro
from virnucpro.data import SequenceDataset, VarlenCollator, read_fasta
from virnucpro.models import PackedESM2, auto_max_tokens, bos_pool, load_model, mean_pool, residue_rows
from virnucpro.models.esm2 import alphabet
from virnucpro.models.esm2.architecture import SPECIAL_TOKENS_PER_SEQUENCE
from virnucpro.models import ForwardOptions
from virnucpro.pipeline.config import DTYPES, EmbedConfig, EmbedSummary
from virnucpro.pipeline.store import PartWriter, assemble, done_mask, parts_dir_for, read_parts, remove_parts

__all__ = ["run_embed"]

_COMMIT_EVERY_S = 1.0
_QUEUE_DEPTH = 4


def run_embed(config: EmbedConfig, model: esm.model.esm2.ESM2 | None = None) -> EmbedSummary:
    """Embed ``config.inputs`` into ``config.output``; returns the summary (rank 0's is global).

    Args:
        config: the job.
        model: an already-loaded fair-esm ESM-2 to use instead of loading ``config.model``
            (which then only names it in the output); it is not modified.

    Under torchrun (``WORLD_SIZE`` > 1) each rank embeds its shard of batches and
    rank 0 writes the final file. Raises on bad input or options, leaving no
    output file (committed partial results stay, for ``resume``).
    """
    with _process_group() as (rank, world_size, local_rank):
        device = _device(config.device, local_rank, world_size)
        dtype = DTYPES[config.dtype or ("bf16" if device.type == "cuda" else "fp32")]
        parts_dir = parts_dir_for(config.output)
        _check_output(config, parts_dir)
        _barrier(world_size)
        if config.overwrite and rank == 0 and parts_dir.exists():
            remove_parts(parts_dir)
        _barrier(world_size)
        started = time.perf_counter()
        if model is None:
            model, _ = load_model(config.model)
        layers = _layers(config.layers, model.num_layers)
        stored = _stored_fingerprint(parts_dir) if config.resume else None
        max_tokens = (
            config.max_tokens or (stored or {}).get("max_tokens") or auto_max_tokens(model, dtype, device, len(layers))
        )
        options = config.forward.resolve(device, dtype)
        fingerprint = _fingerprint(config, layers, dtype, max_tokens, options)
        skip = done_mask(read_parts(parts_dir, fingerprint)) if config.resume else None
        storage = np.dtype(config.storage)
        part = PartWriter(parts_dir / f"rank{rank}", (len(layers), model.embed_dim), storage, fingerprint)
        _barrier(world_size)  # every rank has read the same committed state before anyone adds to it

        dataset = SequenceDataset(
            config.inputs,
            max_length=config.max_length,
            max_tokens=max_tokens,
            invalid=config.invalid,
            on_overlength=config.on_overlength,
            skip=skip,
            rank=rank,
            world_size=world_size,
            report=False,
        )
        try:
            # The workers start reading while the model is copied to the device.
            batches = iter(_loader(config, dataset, device.type == "cuda"))
            expected = _count_records(config) if rank == 0 else None  # forks are done: see _count_records
            packed = PackedESM2(model, dtype=dtype, device=device, options=options)
            setup_s = time.perf_counter() - started
            stats = _run_batches(config, batches, packed, layers, part, rank)
        except BaseException:
            part.close()
            if world_size == 1 and not any(p.records for p in read_parts(parts_dir)):
                remove_parts(parts_dir)  # nothing to resume: leave no trace that would block a rerun
            raise
        part.close()
        totals = _all_reduce(world_size, stats.records, stats.tokens)
        _barrier(world_size)
        counts = {"duplicate_ids": 0, "truncated": 0, "replaced": 0}
        finishing = time.perf_counter()
        if rank == 0:
            counts = _finish(
                config, parts_dir, fingerprint, (len(layers), packed.embed_dim), storage, expected.result()
            )
        _barrier(world_size)
        finish_s = time.perf_counter() - finishing
        return EmbedSummary(
            output=config.output,
            records=totals[0],
            tokens=totals[1],
            wall_s=stats.wall_s,
            input_wait=stats.input_wait,
            startup_s=stats.startup_s,
            setup_s=setup_s,
            finish_s=finish_s,
            truncated=counts["truncated"],
            duplicate_ids=counts["duplicate_ids"],
            replaced=counts["replaced"],
            max_tokens=max_tokens,
            peak_gpu_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0,
            options=packed.options,
            world_size=world_size,
        )


class _Background:
    """``fn()`` run in a daemon thread; ``result()`` waits for it and returns it or raises its error.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so a failed job
    would wait for the count to finish reading a large input before exiting.
    """

    def __init__(self, fn: Any):
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as err:
                self._error = err

        self._thread = threading.Thread(target=run, name="virnucpro-count", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class _Stats:
    records: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    input_wait: float = 0.0
    startup_s: float = 0.0


@dataclass
class _Pending:
    """One batch in flight from the GPU to the writer thread."""

    rows: torch.Tensor  # (N or R, L, E) pinned host tensor, filled asynchronously
    indices: np.ndarray  # (N,) input positions
    ids: list[str]
    lengths: np.ndarray  # (N,) residues before truncation
    replaced: int  # unknown residues replaced with X in these records
    started: torch.cuda.Event | None
    done: torch.cuda.Event | None


@dataclass
class _Writer:
    """Writer thread: waits for each batch's rows, appends them, commits about once a second."""

    part: PartWriter
    inbox: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=_QUEUE_DEPTH))
    error: BaseException | None = None
    gpu_idle_s: float = 0.0
    last_done: Any = None

    def run(self) -> None:
        try:
            last_commit = time.perf_counter()
            while (item := self.inbox.get()) is not None:
                if item.done is not None:
                    item.done.synchronize()
                    if self.last_done is not None:
                        self.gpu_idle_s += self.last_done.elapsed_time(item.started) / 1000
                    self.last_done = item.done
                self.part.append(item.indices, item.ids, item.lengths, item.rows.numpy(), item.replaced)
                if time.perf_counter() - last_commit > _COMMIT_EVERY_S:
                    self.part.commit()
                    last_commit = time.perf_counter()
        except BaseException as err:  # handed to the main thread, which re-raises it
            self.error = err

    def put(self, item: _Pending | None) -> None:
        while True:
            if self.error is not None:
                raise RuntimeError("the writer thread failed") from self.error
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


def _loader(config: EmbedConfig, dataset: SequenceDataset, on_gpu: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=None,
        collate_fn=VarlenCollator(alphabet().get_batch_converter()),
        num_workers=config.workers,
        pin_memory=on_gpu,
        prefetch_factor=4 if config.workers else None,
    )


def _count_records(config: EmbedConfig) -> _Background:
    """The number of input records, for the final exact-once check, counted in a thread while the GPU
    works. Started only after the DataLoader workers are forked: a fork must not copy a thread's held locks."""
    return _Background(lambda: sum(1 for path in config.inputs for _ in read_fasta(path)))


def _run_batches(
    config: EmbedConfig,
    batches: Iterator[dict[str, Any]],
    packed: PackedESM2,
    layers: tuple[int, ...],
    part: PartWriter,
    rank: int,
) -> _Stats:
    device = packed.device
    on_gpu = device.type == "cuda"
    storage = torch.float16 if config.storage == "float16" else torch.float32
    writer = _Writer(part)
    thread = threading.Thread(target=writer.run, name="virnucpro-writer", daemon=True)
    thread.start()
    stats = _Stats()
    host_wait = 0.0
    bar = tqdm(unit="seq", disable=not config.progress or rank != 0, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            if stats.records == 0:  # the first wait is start-up (workers starting), reported apart
                stats.startup_s = time.perf_counter() - start
            else:
                host_wait += time.perf_counter() - t0
            if batch is None:
                break
            started = torch.cuda.Event(enable_timing=True) if on_gpu else None
            done = torch.cuda.Event(enable_timing=True) if on_gpu else None
            input_ids = batch["input_ids"].to(device, non_blocking=True)
            cu_seqlens = batch["cu_seqlens"].to(device, non_blocking=True)
            if started is not None:
                started.record()
            reps = packed(input_ids, cu_seqlens, batch["max_seqlen"], repr_layers=layers)["representations"]
            pooled = torch.stack([_pool(config.pooling, reps[layer], cu_seqlens) for layer in layers], dim=1)
            rows = torch.empty(pooled.shape, dtype=storage, pin_memory=on_gpu)
            rows.copy_(pooled.to(storage), non_blocking=on_gpu)
            if done is not None:
                done.record()
            indices, lengths = batch["indices"].numpy(), batch["lengths"].numpy()
            writer.put(_Pending(rows, indices, batch["sequence_ids"], lengths, batch["num_replaced"], started, done))
            stats.records += batch["num_sequences"]
            stats.tokens += batch["input_ids"].numel()
            bar.update(batch["num_sequences"])
            bar.set_postfix_str(f"{stats.tokens / (time.perf_counter() - start):,.0f} tok/s", refresh=False)
        writer.put(None)
        thread.join()
    finally:
        bar.close()
        if thread.is_alive():
            writer.inbox.put(None)
            thread.join()
    if writer.error is not None:
        raise RuntimeError("the writer thread failed") from writer.error
    stats.wall_s = time.perf_counter() - start
    # On the GPU: its idle time between batches, from CUDA events. On the CPU, compute is
    # synchronous, so the time spent waiting for the next batch is the same quantity.
    stats.input_wait = (writer.gpu_idle_s if on_gpu else host_wait) / max(stats.wall_s, 1e-9)
    return stats


def _pool(pooling: str, reps: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
    if pooling == "mean":
        return mean_pool(reps, cu_seqlens)
    if pooling == "bos":
        return bos_pool(reps, cu_seqlens)
    return residue_rows(reps, cu_seqlens)[0]


def _finish(
    config: EmbedConfig,
    parts_dir: Path,
    fingerprint: dict[str, Any],
    row_shape: tuple[int, int],
    storage: np.dtype,
    expected: int,
) -> dict[str, int]:
    """Rank 0: check the parts cover the ``expected`` input records exactly once, write OUT.h5 atomically, drop the parts."""
    parts = read_parts(parts_dir, fingerprint)
    lengths = np.concatenate([p.lengths() for p in parts]) if parts else np.empty(0, np.int64)
    truncated = int((lengths > config.max_length).sum())
    replaced = sum(p.replaced for p in parts)
    attrs = {
        "model": config.model,
        "layers": fingerprint["layers"],
        "pooling": config.pooling,
        "compute_dtype": fingerprint["dtype"].removeprefix("torch."),
        **fingerprint["forward"],
        "storage_dtype": config.storage,
        "max_length": config.max_length,
        "truncated": truncated,
        "replaced_residues": replaced,
        "tokens": int(np.minimum(lengths, config.max_length).sum() + SPECIAL_TOKENS_PER_SEQUENCE * lengths.size),
        "inputs": [str(p) for p in config.inputs],
        "virnucpro_version": virnucpro.__version__,
    }
    tmp = config.output.with_name(config.output.name + ".tmp")
    counts = assemble(parts, tmp, expected, row_shape, storage, config.pooling == "per-token", attrs, config.max_length)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, config.output)
    remove_parts(parts_dir)
    return {"duplicate_ids": counts["duplicate_ids"], "truncated": truncated, "replaced": replaced}


def _check_output(config: EmbedConfig, parts_dir: Path) -> None:
    if config.output.exists() and not config.overwrite:
        raise FileExistsError(f"{config.output} exists; pass --overwrite to replace it")
    if parts_dir.exists() and not (config.resume or config.overwrite):
        raise FileExistsError(
            f"{parts_dir} holds partial results of an earlier run; pass --resume to continue it "
            "or --overwrite to start over"
        )
    for path in config.inputs:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such FASTA file")


def _layers(requested: tuple[int, ...] | None, num_layers: int) -> tuple[int, ...]:
    layers = tuple(requested) if requested else (num_layers,)
    bad = [layer for layer in layers if not 0 <= layer <= num_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: this model has layers 0..{num_layers}")
    return layers


def _fingerprint(
    config: EmbedConfig,
    layers: tuple[int, ...],
    dtype: torch.dtype,
    max_tokens: int,
    options: ForwardOptions,
) -> dict[str, Any]:
    """What must not change between an interrupted run and its resumption."""
    return {
        "inputs": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in config.inputs],
        "model": config.model,
        "layers": list(layers),
        "pooling": config.pooling,
        "dtype": str(dtype),
        "storage": config.storage,
        "max_length": config.max_length,
        "on_overlength": config.on_overlength,
        "invalid": config.invalid,
        "max_tokens": max_tokens,
        "forward": options.as_dict(),
    }


def _stored_fingerprint(parts_dir: Path) -> dict[str, Any] | None:
    parts = read_parts(parts_dir) if parts_dir.exists() else []
    return parts[0].fingerprint if parts else None


def _device(requested: str | None, local_rank: int, world_size: int) -> torch.device:
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} asked for, but CUDA is not available here; pass --device cpu")
        if world_size > 1:
            device = torch.device("cuda", local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def _process_group() -> Iterator[tuple[int, int, int]]:
    """(rank, world_size, local_rank); joins torchrun's group when WORLD_SIZE > 1.

    Ranks only need barriers and two sums, so the group is gloo (on the CPU) even on
    GPUs: embeddings never travel between ranks, they meet on disk.
    """
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        yield 0, 1, 0
        return
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=timedelta(hours=2))
    try:
        yield dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    finally:
        if created:
            dist.destroy_process_group()


def _barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def _all_reduce(world_size: int, *values: int) -> list[int]:
    if world_size == 1:
        return list(values)
    totals = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(totals)
    return totals.tolist()
