"""Throughput of virnucpro beside fair-esm and the dense-matmul floor, on one GPU, in one run.

For one ESM-2 size and each data set of ``benchmarks/bench_data.py`` it measures,
in tokens/s where a sequence of n residues counts min(n, 1022) + 2 tokens (the
same sequences and the same count for every system):

* ``fair-esm-fp16-4096``, ``fair-esm-fp16-16384``: fair-esm's padded forward,
  batched and pooled as esm-extract does (``FastaBatchedDataset.get_batch_indices``,
  ``batch_converter`` in a DataLoader, mean over residues copied to the CPU: the
  loop of ``tests/esm_reference.py``), model in fp16, at that ``toks_per_batch``. ``fair-esm-fp16`` repeats the faster one.
* ``fair-esm-fp32``: the same at esm-extract's defaults, fp32 and 4096.
* ``virnucpro-e2e``: ``run_embed``, FASTA on disk to HDF5 on disk, bf16. The first
  run warms up and is reported as ``first_run_tokens_per_s`` (on the first data set
  it also pays one-time set-up such as compilation); a second full run is timed.
* ``virnucpro-gpu-only``: ``PackedESM2`` forward and ``mean_pool`` alone, over the
  same packed batches, tokenised beforehand and resident on the GPU.
* ``matmul-floor-bf16``: only the matmuls of the model's linear layers (per layer
  E->3E, E->E, E->4E, 4E->E) on random inputs of the same packed token counts.

Both virnucpro systems use ``run_embed``'s defaults on CUDA (``ForwardOptions()``): flash-attn
or else the Triton attention kernel, Triton kernels between the matmuls and the tanh GELU
in fc1's cuBLASLt epilogue (``--attention``, ``--kernels``, ``--gelu``). Their rows record
the resolved choice.

``budgets``: peak GPU memory and speed of the gpu-only forward at several token
budgets on the first data set (sequences of 1022 residues included), to show what
``auto_max_tokens`` may choose; rows go under ``budgets`` in the JSON.

gpu-only and the floor report the median of ``--passes`` timed passes after one
warm-up pass; fair-esm is timed once after a warm-up on its shortest and longest
batch; all by wall clock with the device drained (``timing.wall_seconds``). Every row also gives the token budget, ``peak_gpu_bytes``
(``max_memory_allocated`` over the timed region) and ``resident_gpu_bytes`` (what
was allocated when it began, including the fp32 model every system copies from).

Models have random weights, built on the device from ``--seed``: speed does not
depend on the values, and no weights can be downloaded here.

A system is one function yielding its rows (``SYSTEMS``). Run once per model size; rows
merge into ``--out`` (replacing rows of the same
model, data set and system) after every system, and a markdown table of all rows
is written beside it (``.md``, ``throughput_report.py``) and printed at the end:

    python benchmarks/throughput.py --model esm2_t33_650M_UR50D --out benchmarks/results/h200.json \
        --repeat 8 --long-repeat 4
    python benchmarks/throughput.py --model esm2_t36_3B_UR50D --out benchmarks/results/h200.json \
        --repeat 3 --long-repeat 4

(the commands of the committed results, about 5 minutes each on the H200).

CPU smoke test, a tiny ESM-2 in fp32 everywhere (no fp16 rows; the floor is fp32);
its output must stay out of ``benchmarks/results``:

    python benchmarks/throughput.py --device cpu --model tiny --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _paths  # noqa: F401  (tests/ on sys.path: the fair-esm reference loop)
import esm
import torch
import fp8_levers
from bench_data import DATASETS, repeat, write_fasta
from matmul_floor import floor_pass
from esm_reference import esm_extract_batches, esm_extract_means
from throughput_report import gib, markdown, merge_rows
from timing import timed_runs, wall_seconds
from torch.utils.data import DataLoader

from virnucpro.data import PackedBatch, SequenceDataset, VarlenCollator
from virnucpro.models import ARCHITECTURES, ForwardOptions, PackedESM2, auto_max_tokens, mean_pool
from virnucpro.tasks.embed import EmbedConfig, run_embed

RESULTS = Path(__file__).resolve().parent / "results"
TRUNCATION = 1022  # residues per sequence, as esm-extract and virnucpro truncate
ESM_EXTRACT_TOKS_PER_BATCH = 4096
TINY = (2, 64, 4)  # layers, embed dim, heads: the CPU smoke model
BUDGETS = (8192, 16384, 32768, 65536, 131072, 262144)
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

Row = dict[str, Any]


@dataclass(frozen=True)
class Bench:
    """What every system of one run shares."""

    model_name: str  # row key, e.g. "esm2_t33_650M"
    spec: str  # virnucpro model spec, e.g. "random:esm2_t33_650M_UR50D"
    model: esm.model.esm2.ESM2  # fp32 master on the device; systems copy it, never change it
    alphabet: esm.data.Alphabet
    device: torch.device
    dtype: torch.dtype  # virnucpro and floor precision: bf16 on the GPU, fp32 on the CPU
    options: ForwardOptions  # both virnucpro systems' forward (run_embed's default: all "auto")
    max_tokens: int  # virnucpro token budget per packed batch
    workers: int | None  # run_embed's DataLoader workers; None = its default
    passes: int
    seed: int
    long_repeat: int  # copies of each data set for virnucpro-e2e-long; 1 = no such row
    fp16_budgets: tuple[int, ...]  # fair-esm fp16 toks_per_batch, one row each


@dataclass(frozen=True)
class Data:
    """One data set, in memory and as a FASTA file."""

    name: str
    records: list[tuple[str, str]]
    fasta: Path
    tokens: int  # sum of min(n, 1022) + 2 over the records


def count_tokens(records: list[tuple[str, str]]) -> int:
    return sum(min(len(seq), TRUNCATION) + 2 for _, seq in records)


def build_model(arch: tuple[int, int, int], device: torch.device, seed: int) -> esm.model.esm2.ESM2:
    """A randomly initialised fair-esm ESM-2, built directly on ``device`` (3B in seconds on a GPU)."""
    num_layers, embed_dim, heads = arch
    torch.manual_seed(seed)
    with device:
        model = esm.model.esm2.ESM2(
            num_layers=num_layers,
            embed_dim=embed_dim,
            attention_heads=heads,
            alphabet=esm.data.Alphabet.from_architecture("ESM-1b"),
            token_dropout=True,
        )
    return model.eval()


def default_max_tokens(model: esm.model.esm2.ESM2, dtype: torch.dtype, device: torch.device) -> int:
    """The budget ``run_embed`` picks when given none, fixed once so that every virnucpro row uses the same."""
    return auto_max_tokens(model, dtype, device, num_layers_out=1)


def start_memory(device: torch.device) -> int | None:
    """Reset the peak-memory counter; return the bytes allocated now (None on the CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def peak_memory(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def timed_passes(
    bench: Bench, one_pass: Callable[[], Any], passes: int | None = None
) -> tuple[Any, list[float], int | None]:
    """One warm-up pass, then ``passes`` (default ``bench.passes``) passes timed by wall clock:
    the last pass's result, the seconds of each, and the bytes resident when they began."""
    one_pass()
    resident = start_memory(bench.device)
    clock = functools.partial(wall_seconds, device=bench.device)
    result, runs = timed_runs(one_pass, passes or bench.passes, clock, warmup=0)
    return result, runs, resident


# --- the systems: one function each, yielding its rows as they are measured -----------------


def fair_esm(bench: Bench, data: Data, system: str, dtype: torch.dtype, toks_per_batch: int) -> Row:
    """esm-extract's loop (``esm_reference``) over in-memory sequences, on a ``dtype`` copy of the model;
    timed once after a warm-up on its shortest and longest batch."""
    model = copy.deepcopy(bench.model).to(dtype)
    labels, seqs = zip(*data.records)
    dataset = esm.data.FastaBatchedDataset(labels, seqs)
    batches = esm_extract_batches(dataset, toks_per_batch)
    converter = bench.alphabet.get_batch_converter(truncation_seq_length=TRUNCATION)
    embed = functools.partial(esm_extract_means, model, converter, dataset, layer=model.num_layers)
    embed([batches[0], batches[-1]])
    resident = start_memory(bench.device)
    means, seconds = wall_seconds(lambda: embed(batches), bench.device)
    check_count(f"{system} embeddings", sum(len(m) for m in means), len(data.records))
    return row(bench, data, system, seconds, toks_per_batch, resident, dtype=DTYPE_NAMES[dtype], batches=len(batches))


def fair_esm_fp16(bench: Bench, data: Data) -> Iterator[Row]:
    """``fair-esm-fp16-{budget}`` per ``bench.fp16_budgets``, then the fastest again as ``fair-esm-fp16``; CUDA only."""
    if bench.device.type != "cuda":
        return
    rows = []
    for budget in bench.fp16_budgets:
        rows.append(fair_esm(bench, data, f"fair-esm-fp16-{budget}", torch.float16, budget))
        yield rows[-1]
        free_memory(bench.device)
    best = max(rows, key=lambda r: r["tokens_per_s"])
    yield {**best, "system": "fair-esm-fp16", "best_of": best["system"]}


def fair_esm_fp32(bench: Bench, data: Data) -> Iterator[Row]:
    """fair-esm at esm-extract's defaults: fp32, 4096 tokens per batch."""
    fp32_row = fair_esm(bench, data, "fair-esm-fp32", torch.float32, ESM_EXTRACT_TOKS_PER_BATCH)
    # A library that switched fp32 matmuls to TF32 globally would speed this row up unseen.
    fp32_row["fp32_matmul_precision"] = torch.get_float32_matmul_precision()
    yield fp32_row


def virnucpro_e2e(bench: Bench, data: Data) -> Iterator[Row]:
    """``virnucpro-e2e``, then with ``bench.long_repeat`` > 1 ``virnucpro-e2e-long`` on that many copies."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        yield embed_row(bench, data, workdir)
        if bench.long_repeat > 1:
            records = repeat(data.records, bench.long_repeat)
            write_fasta(records, workdir / "long.faa")
            long = Data(data.name, records, workdir / "long.faa", count_tokens(records))
            yield embed_row(bench, long, workdir, "virnucpro-e2e-long")


def embed_row(
    bench: Bench, data: Data, workdir: Path, system: str = "virnucpro-e2e", dtype: str | None = None,
    on_overlength: str = "truncate",
) -> Row:  # fmt: skip
    """``run_embed`` from the FASTA file to an HDF5 file, twice; the second run is the figure.

    ``virnucpro-e2e-long`` runs once, after ``virnucpro-e2e`` has warmed up. ``dtype``: the
    run's ``--dtype`` (default the bench's; "fp8" for ``virnucpro-e2e-fp8``, self-check included).
    ``on_overlength="window"`` (``virnucpro-e2e-window``): proteins over 1022 residues are embedded
    whole, in windows; its tokens/s counts every window's tokens.
    """
    dtype = dtype or DTYPE_NAMES[bench.dtype]
    config = EmbedConfig(
        inputs=(str(data.fasta),),
        output=str(workdir / f"{data.name}.h5"),
        model=bench.spec,
        dtype=dtype,
        device=str(bench.device),
        max_tokens=bench.max_tokens,
        on_overlength=on_overlength,
        forward=bench.options,
        overwrite=True,
        progress=False,
        **({} if bench.workers is None else {"workers": bench.workers}),
    )
    first = {}
    if system in ("virnucpro-e2e", "virnucpro-e2e-fp8", "virnucpro-e2e-window"):
        summary, first_seconds = wall_seconds(lambda: run_embed(config, model=bench.model), bench.device)
        check_count(f"{system} first run records", summary.records, len(data.records))
        first = {"first_run_tokens_per_s": data.tokens / first_seconds, "first_run_seconds": first_seconds}
    resident = start_memory(bench.device)
    summary, seconds = wall_seconds(lambda: run_embed(config, model=bench.model), bench.device)
    check_count(f"{system} records", summary.records, len(data.records))
    if on_overlength != "window":
        check_count(f"{system} tokens", summary.tokens, data.tokens)
    windowed = {"tokens_per_s": summary.tokens / seconds, "tokens": summary.tokens} if on_overlength == "window" else {}
    return row(
        bench, data, system, seconds, summary.max_tokens, resident, dtype=dtype, **first,
        fp8_selfcheck=summary.fp8_check,
        input_wait=summary.input_wait, startup_s=summary.startup_s, setup_s=summary.setup_s,
        finish_s=summary.finish_s, loop_s=summary.wall_s, library_tokens_per_s=summary.tokens_per_s,
        **options_fields(summary.options), workers=summary.workers, windowed_records=summary.windowed, **windowed,
    )  # fmt: skip


def virnucpro_e2e_fp8(bench: Bench, data: Data) -> Iterator[Row]:
    """``virnucpro-e2e`` with ``--dtype fp8`` (its bf16 self-check included); CUDA only."""
    if bench.device.type == "cuda":
        with tempfile.TemporaryDirectory() as tmp:
            yield embed_row(bench, data, Path(tmp), "virnucpro-e2e-fp8", dtype="fp8")


def virnucpro_e2e_window(bench: Bench, data: Data) -> Iterator[Row]:
    """``virnucpro-e2e`` with ``--on-overlength window``: every residue of the long proteins embedded."""
    with tempfile.TemporaryDirectory() as tmp:
        yield embed_row(bench, data, Path(tmp), "virnucpro-e2e-window", on_overlength="window")


def matmul_floor_fp8(bench: Bench, data: Data) -> Iterator[Row]:
    """The linear layers' e4m3 ``_scaled_mm`` alone, row-wise scales (``fp8_levers.matmul_floor``); CUDA only."""
    if bench.device.type != "cuda":
        return
    counts = [b.num_tokens for b in packed_batches(bench, data)]
    dim, layers = bench.model.embed_dim, bench.model.num_layers
    runs = fp8_levers.matmul_floor(dim, layers, counts, True, bench.device, bench.passes)
    seconds = statistics.median(runs)
    yield row(
        bench, data, "matmul-floor-fp8", seconds, bench.max_tokens, None, dtype="fp8", batches=len(counts),
        tflops_per_s=2 * 12 * dim * dim * layers * sum(counts) / seconds / 1e12,
        tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def virnucpro_gpu_only(bench: Bench, data: Data) -> Iterator[Row]:
    """Packed forward and mean pooling over device-resident batches: no input pipeline, no output file."""
    batches = [b.to(bench.device) for b in packed_batches(bench, data)]
    packed = PackedESM2(bench.model, dtype=bench.dtype, device=bench.device, options=bench.options)
    one_pass = functools.partial(forward_pass, packed, batches, bench.model.num_layers)
    embeddings, runs, resident = timed_passes(bench, one_pass)
    check_count("virnucpro-gpu-only embeddings", sum(len(e) for e in embeddings), len(data.records))
    yield row(
        bench, data, "virnucpro-gpu-only", statistics.median(runs), bench.max_tokens, resident,
        dtype=DTYPE_NAMES[bench.dtype], batches=len(batches), **options_fields(packed.options),
        tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def matmul_floor(bench: Bench, data: Data) -> Iterator[Row]:
    """The linear layers' matmuls alone (no bias, no attention, no elementwise work) per packed batch
    (``matmul_floor.floor_pass``): fused QKV, attention output, fc1, fc2 of every layer."""
    token_counts = [b.num_tokens for b in packed_batches(bench, data)]
    num_layers, dim = bench.model.num_layers, bench.model.embed_dim
    shapes = [(3 * dim, dim), (dim, dim), (4 * dim, dim), (dim, 4 * dim)]
    one_pass, flops = floor_pass(shapes, num_layers, token_counts, bench.device, bench.dtype, bench.seed)
    _, runs, resident = timed_passes(bench, one_pass)
    seconds = statistics.median(runs)
    yield row(
        bench, data, f"matmul-floor-{DTYPE_NAMES[bench.dtype]}", seconds, bench.max_tokens, resident,
        dtype=DTYPE_NAMES[bench.dtype], batches=len(token_counts), tflops_per_s=flops / seconds / 1e12,
        tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


#: ``--systems`` names, in the order a run measures them. A new system is a function
#: ``(bench, data) -> rows`` and an entry here; each row is merged into ``--out`` as it is yielded.
SYSTEMS: dict[str, Callable[[Bench, Data], Iterator[Row]]] = {
    "virnucpro-e2e": virnucpro_e2e,
    "virnucpro-e2e-fp8": virnucpro_e2e_fp8,
    "virnucpro-e2e-window": virnucpro_e2e_window,
    "virnucpro-gpu-only": virnucpro_gpu_only,
    "matmul-floor": matmul_floor,
    "matmul-floor-fp8": matmul_floor_fp8,
    "fair-esm-fp16": fair_esm_fp16,
    "fair-esm-fp32": fair_esm_fp32,
}
#: Not a system: peak memory and speed per token budget, on the first data set, into ``budgets``.
SWEEP = "budgets"


# --- shared by the systems ------------------------------------------------------------------


def packed_batches(bench: Bench, data: Data, max_tokens: int | None = None) -> list[PackedBatch]:
    """The pipeline's packed batches of ``data`` at ``max_tokens`` (default ``bench.max_tokens``), on the host."""
    dataset = SequenceDataset(
        [data.fasta], max_length=TRUNCATION, max_tokens=max_tokens or bench.max_tokens, report=False
    )
    collator = VarlenCollator(bench.alphabet.get_batch_converter())
    batches = list(DataLoader(dataset, batch_size=None, collate_fn=collator))
    check_count("packed batches tokens", sum(b.num_tokens for b in batches), data.tokens)
    return batches


def forward_pass(packed: PackedESM2, batches: list[PackedBatch], layer: int) -> list[torch.Tensor]:
    """Mean embeddings of ``layer`` per batch; PackedESM2.forward runs without autograd, as run_embed calls it."""
    return [mean_pool(packed(b, repr_layers=[layer])["representations"][layer], b.cu_seqlens) for b in batches]


def options_fields(options: ForwardOptions) -> dict[str, str]:
    """The resolved forward options a virnucpro row records (``attention``, ``kernels``, ``gelu``)."""
    return {"attention": options.attention, "kernels": options.kernels, "gelu": options.gelu}


def budget_sweep(bench: Bench, data: Data) -> list[Row]:
    """Peak memory above the resident models, and speed (one timed pass), of the gpu-only forward + mean
    pooling per budget."""
    packed = PackedESM2(bench.model, dtype=bench.dtype, device=bench.device, options=bench.options)
    layer = bench.model.num_layers
    rows = []
    for budget in BUDGETS:
        batches = [b.to(bench.device) for b in packed_batches(bench, data, budget)]
        _, runs, resident = timed_passes(bench, functools.partial(forward_pass, packed, batches, layer), passes=1)
        peak = peak_memory(bench.device)
        largest = max(b.num_tokens for b in batches)
        rows.append({
            "model": bench.model_name, "dataset": data.name, "token_budget": budget, "largest_batch": largest,
            "longest_sequence": max(b.max_seqlen for b in batches), "tokens_per_s": data.tokens / statistics.median(runs),
            "peak_gpu_bytes": peak, "resident_gpu_bytes": resident,
            "activation_bytes_per_token": None if peak is None else (peak - resident) / largest,
        })  # fmt: skip
        print(f"  budget {budget:>7,}: {rows[-1]['tokens_per_s']:>10,.0f} tokens/s, peak {gib(peak)} GiB", flush=True)
        del batches
        free_memory(bench.device)
    del packed
    free_memory(bench.device)
    return rows


def check_count(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: got {got}, expected {expected}; the systems would not compare the same work")


def row(bench: Bench, data: Data, system: str, seconds: float, budget: int, resident: int | None, **extra: Any) -> Row:
    result = {
        "model": bench.model_name,
        "dataset": data.name,
        "system": system,
        "tokens_per_s": data.tokens / seconds,
        "seconds": seconds,
        "tokens": data.tokens,
        "sequences": len(data.records),
        "token_budget": budget,
        "peak_gpu_bytes": peak_memory(bench.device),
        "resident_gpu_bytes": resident,
        **extra,
    }
    print(f"  {system:<20} {result['tokens_per_s']:>12,.0f} tokens/s over {seconds:.2f} s", flush=True)
    return result


def run_dataset(bench: Bench, data: Data, systems: list[str], record: Callable, sweep: bool) -> None:
    """Every selected system on one data set, in ``SYSTEMS`` order; ``record`` stores each row as soon as it exists."""
    if sweep:
        record([], budget_sweep(bench, data))
    for name in (s for s in SYSTEMS if s in systems):
        for measured in SYSTEMS[name](bench, data):
            record([measured])
        free_memory(bench.device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    choices = (*SYSTEMS, SWEEP)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=[*ARCHITECTURES, "tiny"], help="tiny for --device cpu")
    parser.add_argument("--out", type=Path, required=True, help="JSON to merge rows into; the .md goes beside it")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: smoke test, fp32 everywhere")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {','.join(DATASETS)}")
    parser.add_argument("--systems", default=",".join(choices), help=f"comma-separated, from {','.join(choices)}")
    parser.add_argument("--repeat", type=int, help="copies of each data set (default 3; 1 with --device cpu)")
    parser.add_argument("--fp16-toks-per-batch", default="4096,16384", help="fair-esm fp16 budgets, comma-separated")
    parser.add_argument("--max-tokens", type=int, help="virnucpro tokens per packed batch (default: run_embed's)")
    parser.add_argument("--workers", type=int, help="virnucpro-e2e DataLoader workers (default: run_embed's)")
    for option in ("attention", "kernels", "gelu", "residual"):
        parser.add_argument(f"--{option}", default="auto", help=f"ForwardOptions {option}= for both virnucpro systems")
    parser.add_argument(
        "--passes", type=int, help="timed passes of gpu-only and floor, median kept (default 3; 1 with --device cpu)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--long-repeat", type=int, default=1,
        help="also run virnucpro-e2e once on this many copies of the (repeated) data set, as virnucpro-e2e-long",
    )  # fmt: skip
    args = parser.parse_args(argv)
    smoke = args.device == "cpu"
    args.repeat = args.repeat or (1 if smoke else 3)
    args.passes = args.passes or (1 if smoke else 3)
    args.datasets, args.systems = args.datasets.split(","), args.systems.split(",")
    args.fp16_toks_per_batch = tuple(int(b) for b in args.fp16_toks_per_batch.split(","))
    for name, chosen, known in (("--datasets", args.datasets, DATASETS), ("--systems", args.systems, choices)):
        if unknown := set(chosen) - set(known):
            parser.error(f"{name}: unknown {sorted(unknown)}; choose from {','.join(known)}")
    try:
        args.options = ForwardOptions(
            attention=args.attention, kernels=args.kernels, gelu=args.gelu, residual=args.residual
        )
    except ValueError as err:
        parser.error(str(err))
    if smoke and args.model != "tiny":
        parser.error("--device cpu is a smoke test and runs only --model tiny; real sizes are built on the GPU")
    if smoke and args.out.resolve().is_relative_to(RESULTS):
        parser.error(f"--device cpu is a smoke test; write it outside {RESULTS}, e.g. --out /tmp/smoke.json")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; use --device cpu --model tiny for a smoke test")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    arch = TINY if args.model == "tiny" else ARCHITECTURES[args.model]
    model = build_model(arch, device, args.seed)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    bench = Bench(
        model_name=args.model.removesuffix("_UR50D"),
        spec=f"random:{args.model}",
        model=model,
        alphabet=esm.data.Alphabet.from_architecture("ESM-1b"),
        device=device,
        dtype=dtype,
        options=args.options,
        max_tokens=args.max_tokens or default_max_tokens(model, dtype, device),
        workers=args.workers,
        passes=args.passes,
        seed=args.seed,
        long_repeat=args.long_repeat,
        fp16_budgets=args.fp16_toks_per_batch,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def record(rows: list[Row], budgets: list[Row] = ()) -> None:
        doc = merge_rows(args.out, rows, budgets)
        args.out.with_suffix(".md").write_text(markdown(doc))

    built = time.perf_counter() - start
    print(f"{bench.model_name}: built in {built:.1f} s; virnucpro max_tokens {bench.max_tokens:,}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            records = repeat(DATASETS[name](), args.repeat)
            fasta = Path(tmp) / f"{name}.faa"
            write_fasta(records, fasta)
            data = Data(name, records, fasta, count_tokens(records))
            print(f"{name}: {len(records):,} sequences, {data.tokens:,} tokens", flush=True)
            sweep = SWEEP in args.systems and name == args.datasets[0] and device.type == "cuda"
            run_dataset(bench, data, args.systems, record, sweep)
            print(f"  {time.perf_counter() - start:.0f} s since start", flush=True)
    print()
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
