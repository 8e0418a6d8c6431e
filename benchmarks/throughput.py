"""Throughput of virnucpro beside fair-esm and the dense-matmul floor, on one GPU, in one run.

For one ESM-2 size and each data set of ``benchmarks/datasets.py`` it measures,
in tokens/s where a sequence of n residues counts min(n, 1022) + 2 tokens (the
same sequences and the same count for every system):

* ``fair-esm-fp16-4096``, ``fair-esm-fp16-16384``: fair-esm's padded forward,
  batched and pooled as esm-extract does (``FastaBatchedDataset.get_batch_indices``,
  ``batch_converter`` in a DataLoader, mean over residues copied to the CPU),
  model in fp16, at that ``toks_per_batch``. ``fair-esm-fp16`` repeats the faster one.
* ``fair-esm-fp32``: the same at esm-extract's defaults, fp32 and 4096.
* ``virnucpro-e2e``: ``run_embed``, FASTA on disk to HDF5 on disk, bf16. The first
  run warms up and is reported as ``first_run_tokens_per_s`` (on the first data set
  it also pays one-time set-up such as compilation); a second full run is timed.
* ``virnucpro-gpu-only``: ``PackedESM2`` forward and ``mean_pool`` alone, over the
  same packed batches, tokenised beforehand and resident on the GPU.
* ``matmul-floor-bf16``: only the matmuls of the model's linear layers (per layer
  E->3E, E->E, E->4E, 4E->E) on random inputs of the same packed token counts.

Both virnucpro systems use ``run_embed``'s defaults on CUDA: Triton kernels between
the matmuls and the tanh GELU in fc1's cuBLASLt epilogue (``--kernels``, ``--gelu``).

``budgets``: peak GPU memory and speed of the gpu-only forward at several token
budgets on the first data set (sequences of 1022 residues included), to show what
``auto_max_tokens`` may choose; rows go under ``budgets`` in the JSON.

gpu-only and the floor report the median of ``--passes`` timed passes after one
warm-up pass; fair-esm is timed once after a warm-up on its shortest and longest
batch. Every row also gives the token budget, ``peak_gpu_bytes``
(``max_memory_allocated`` over the timed region) and ``resident_gpu_bytes`` (what
was allocated when it began, including the fp32 model every system copies from).

Models have random weights, built on the device from ``--seed``: speed does not
depend on the values, and no weights can be downloaded here.

Run once per model size; rows merge into ``--out`` (replacing rows of the same
model, data set and system) after every system, and a markdown table of all rows
is written beside it (``.md``) and printed at the end:

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
import dataclasses
import functools
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import esm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench_data import DATASETS, repeat, write_fasta
from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models import ARCHITECTURES, PackedESM2, mean_pool
from virnucpro.pipeline import EmbedConfig, auto_max_tokens, run_embed

RESULTS = Path(__file__).resolve().parent / "results"
TRUNCATION = 1022  # residues per sequence, as esm-extract and virnucpro truncate
ESM_EXTRACT_TOKS_PER_BATCH = 4096
TINY = (2, 64, 4)  # layers, embed dim, heads: the CPU smoke model
SYSTEMS = ("virnucpro-e2e", "virnucpro-gpu-only", "matmul-floor", "fair-esm-fp16", "fair-esm-fp32", "budgets")
BUDGETS = (8192, 16384, 32768, 65536, 131072, 262144)
ROW_ORDER = (
    "fair-esm-fp32",
    "fair-esm-fp16-4096",
    "fair-esm-fp16-16384",
    "fair-esm-fp16",
    "virnucpro-e2e",
    "virnucpro-e2e-long",
    "virnucpro-gpu-only",
    "matmul-floor-bf16",
    "matmul-floor-fp32",
)
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class Bench:
    """What every system of one run shares."""

    model_name: str  # row key, e.g. "esm2_t33_650M"
    spec: str  # virnucpro model spec, e.g. "random:esm2_t33_650M_UR50D"
    model: esm.model.esm2.ESM2  # fp32 master on the device; systems copy it, never change it
    alphabet: esm.data.Alphabet
    device: torch.device
    dtype: torch.dtype  # virnucpro and floor precision: bf16 on the GPU, fp32 on the CPU
    kernels: str  # PackedESM2 kernels= (run_embed's default: auto)
    gelu: str  # PackedESM2 gelu= (run_embed's default: auto)
    max_tokens: int  # virnucpro token budget per packed batch
    workers: int | None  # run_embed's DataLoader workers; None = its default
    passes: int
    seed: int
    long_repeat: int  # copies of each data set for virnucpro-e2e-long; 1 = no such row


@dataclass(frozen=True)
class Data:
    """One data set, in memory and as a FASTA file."""

    name: str
    records: list[tuple[str, str]]
    fasta: Path
    tokens: int  # sum of min(n, 1022) + 2 over the records


# One packed batch on the device: input_ids (T,) int64, cu_seqlens (N + 1,) int32, max_seqlen.
Batch = tuple[torch.Tensor, torch.Tensor, int]


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``fn()`` and its wall time in seconds, the device drained before both clock reads."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


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


def fair_esm(bench: Bench, data: Data, system: str, dtype: torch.dtype, toks_per_batch: int) -> dict[str, Any]:
    """esm-extract's loop over in-memory sequences, on a ``dtype`` copy of the model."""
    model = copy.deepcopy(bench.model).to(dtype)
    layer = model.num_layers
    labels, seqs = zip(*data.records)
    dataset = esm.data.FastaBatchedDataset(labels, seqs)
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    converter = bench.alphabet.get_batch_converter(truncation_seq_length=TRUNCATION)

    def embed(batch_sampler: list[list[int]]) -> list[torch.Tensor]:
        loader = DataLoader(dataset, collate_fn=converter, batch_sampler=batch_sampler)
        means = []
        with torch.no_grad():
            for _, strs, toks in loader:
                toks = toks.to(bench.device, non_blocking=True)
                rep = model(toks, repr_layers=[layer])["representations"][layer]  # (B, T, E)
                means.append(
                    torch.stack([rep[i, 1 : min(len(s), TRUNCATION) + 1].mean(0) for i, s in enumerate(strs)]).cpu()
                )
        return means

    embed([batches[0], batches[-1]])
    resident = start_memory(bench.device)
    means, seconds = timed(lambda: embed(batches), bench.device)
    check_count(f"{system} embeddings", sum(len(m) for m in means), len(data.records))
    return row(bench, data, system, seconds, toks_per_batch, resident, dtype=DTYPE_NAMES[dtype], batches=len(batches))


def virnucpro_e2e(bench: Bench, data: Data, workdir: Path, system: str = "virnucpro-e2e") -> dict[str, Any]:
    """``run_embed`` from the FASTA file to an HDF5 file, twice; the second run is the figure.

    ``virnucpro-e2e-long`` runs once, after ``virnucpro-e2e`` has warmed up.
    """
    config = EmbedConfig(
        inputs=(str(data.fasta),),
        output=str(workdir / f"{data.name}.h5"),
        model=bench.spec,
        dtype=DTYPE_NAMES[bench.dtype],
        device=str(bench.device),
        max_tokens=bench.max_tokens,
        kernels=bench.kernels,
        gelu=bench.gelu,
        overwrite=True,
        progress=False,
        **({} if bench.workers is None else {"workers": bench.workers}),
    )
    first = {}
    if system == "virnucpro-e2e":
        summary, first_seconds = timed(lambda: run_embed(config, model=bench.model), bench.device)
        check_count(f"{system} first run records", summary.records, len(data.records))
        first = {"first_run_tokens_per_s": data.tokens / first_seconds, "first_run_seconds": first_seconds}
    resident = start_memory(bench.device)
    summary, seconds = timed(lambda: run_embed(config, model=bench.model), bench.device)
    check_count(f"{system} records", summary.records, len(data.records))
    check_count(f"{system} tokens", summary.tokens, data.tokens)
    return row(
        bench,
        data,
        system,
        seconds,
        summary.max_tokens,
        resident,
        dtype=DTYPE_NAMES[bench.dtype],
        **first,
        input_wait=summary.input_wait,
        startup_s=summary.startup_s,
        setup_s=summary.setup_s,
        finish_s=summary.finish_s,
        loop_s=summary.wall_s,
        library_tokens_per_s=summary.tokens_per_s,
        attention=summary.backend,
        kernels=summary.kernels,
        gelu=summary.gelu,
        workers=config.workers,
    )


def packed_batches(bench: Bench, data: Data, max_tokens: int | None = None) -> list[Batch]:
    """The pipeline's packed batches of ``data``, tokenised and moved to the device up front."""
    max_tokens = max_tokens or bench.max_tokens
    dataset = SequenceDataset([data.fasta], max_length=TRUNCATION, max_tokens=max_tokens, report=False)
    collator = VarlenCollator(bench.alphabet.get_batch_converter())
    loader = DataLoader(dataset, batch_size=None, collate_fn=collator)
    batches = [(b["input_ids"].to(bench.device), b["cu_seqlens"].to(bench.device), b["max_seqlen"]) for b in loader]
    check_count("packed batches tokens", sum(ids.numel() for ids, _, _ in batches), data.tokens)
    return batches


def timed_passes(bench: Bench, one_pass: Callable[[], Any]) -> tuple[Any, list[float], int | None]:
    """One warm-up pass (its result is returned), the seconds of ``bench.passes`` timed
    passes after it, and the bytes resident when they began."""
    warm = one_pass()
    resident = start_memory(bench.device)
    return warm, [timed(one_pass, bench.device)[1] for _ in range(bench.passes)], resident


def virnucpro_gpu_only(bench: Bench, data: Data, batches: list[Batch]) -> dict[str, Any]:
    """Packed forward and mean pooling over device-resident batches: no input pipeline, no output file."""
    packed = PackedESM2(bench.model, dtype=bench.dtype, device=bench.device, kernels=bench.kernels, gelu=bench.gelu)
    layer = bench.model.num_layers
    embeddings, runs, resident = timed_passes(bench, functools.partial(forward_pass, packed, batches, layer))
    check_count("virnucpro-gpu-only embeddings", sum(len(e) for e in embeddings), len(data.records))
    return row(
        bench, data, "virnucpro-gpu-only", statistics.median(runs), bench.max_tokens, resident,
        dtype=DTYPE_NAMES[bench.dtype], batches=len(batches), attention=packed.backend, kernels=packed.kernels,
        gelu=packed.gelu,
        tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def forward_pass(packed: PackedESM2, batches: list[Batch], layer: int) -> list[torch.Tensor]:
    """Mean embeddings of ``layer`` per batch; PackedESM2.forward runs without autograd, as run_embed calls it."""
    return [
        mean_pool(packed(ids, cu, max_seqlen, repr_layers=[layer])["representations"][layer], cu)
        for ids, cu, max_seqlen in batches
    ]


def budget_sweep(bench: Bench, data: Data) -> list[dict[str, Any]]:
    """Peak memory above the resident models, and speed (one timed pass), of the gpu-only forward + mean
    pooling per budget."""
    packed = PackedESM2(bench.model, dtype=bench.dtype, device=bench.device, kernels=bench.kernels, gelu=bench.gelu)
    layer = bench.model.num_layers
    rows = []
    for budget in BUDGETS:
        batches = packed_batches(bench, data, budget)
        one_pass = functools.partial(forward_pass, packed, batches, layer)
        _, runs, resident = timed_passes(dataclasses.replace(bench, passes=1), one_pass)
        peak = peak_memory(bench.device)
        largest = max(ids.numel() for ids, _, _ in batches)
        rows.append({
            "model": bench.model_name, "dataset": data.name, "token_budget": budget, "largest_batch": largest,
            "longest_sequence": max(m for _, _, m in batches), "tokens_per_s": data.tokens / statistics.median(runs),
            "peak_gpu_bytes": peak, "resident_gpu_bytes": resident,
            "activation_bytes_per_token": None if peak is None else (peak - resident) / largest,
        })  # fmt: skip
        print(f"  budget {budget:>7,}: {rows[-1]['tokens_per_s']:>10,.0f} tokens/s, peak {gib(peak)} GiB", flush=True)
        del batches
        free_memory(bench.device)
    del packed
    free_memory(bench.device)
    return rows


def matmul_floor(bench: Bench, data: Data, token_counts: list[int]) -> dict[str, Any]:
    """The linear layers' matmuls alone (no bias, no attention, no elementwise work) per packed batch.

    Each layer has its own weights, as in the model, so that the weights stream
    from memory rather than sit in the L2 cache.
    """
    num_layers, dim = bench.model.num_layers, bench.model.embed_dim
    generator = torch.Generator(bench.device).manual_seed(bench.seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=bench.device, dtype=bench.dtype)

    # (out, in) per layer: fused QKV, attention output, fc1, fc2.
    weights = [
        [randn(3 * dim, dim), randn(dim, dim), randn(4 * dim, dim), randn(dim, 4 * dim)] for _ in range(num_layers)
    ]
    x, hidden = randn(max(token_counts), dim), randn(max(token_counts), 4 * dim)

    def one_pass() -> None:
        for tokens in token_counts:
            for qkv, out, fc1, fc2 in weights:
                F.linear(x[:tokens], qkv)
                F.linear(x[:tokens], out)
                F.linear(x[:tokens], fc1)
                F.linear(hidden[:tokens], fc2)

    _, runs, resident = timed_passes(bench, one_pass)
    seconds = statistics.median(runs)
    flops = 2 * 12 * dim * dim * num_layers * sum(token_counts)
    return row(
        bench, data, f"matmul-floor-{DTYPE_NAMES[bench.dtype]}", seconds, bench.max_tokens, resident,
        dtype=DTYPE_NAMES[bench.dtype], batches=len(token_counts), tflops_per_s=flops / seconds / 1e12,
        tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def check_count(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: got {got}, expected {expected}; the systems would not compare the same work")


def row(
    bench: Bench, data: Data, system: str, seconds: float, budget: int, resident: int | None, **extra: Any
) -> dict[str, Any]:
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


def run_dataset(
    bench: Bench, data: Data, systems: list[str], fp16_budgets: list[int], record: Callable, sweep: bool
) -> None:
    """Every selected system on one data set; ``record`` stores each row as soon as it exists."""
    if sweep:
        record([], budget_sweep(bench, data))
    if "virnucpro-e2e" in systems:
        with tempfile.TemporaryDirectory() as workdir:
            record([virnucpro_e2e(bench, data, Path(workdir))])
            if bench.long_repeat > 1:
                records = repeat(data.records, bench.long_repeat)
                write_fasta(records, Path(workdir) / "long.faa")
                long = Data(data.name, records, Path(workdir) / "long.faa", count_tokens(records))
                record([virnucpro_e2e(bench, long, Path(workdir), "virnucpro-e2e-long")])
        free_memory(bench.device)
    if "virnucpro-gpu-only" in systems or "matmul-floor" in systems:
        batches = packed_batches(bench, data)
        if "virnucpro-gpu-only" in systems:
            record([virnucpro_gpu_only(bench, data, batches)])
            free_memory(bench.device)
        if "matmul-floor" in systems:
            record([matmul_floor(bench, data, [ids.numel() for ids, _, _ in batches])])
        del batches
        free_memory(bench.device)
    if "fair-esm-fp16" in systems and bench.device.type == "cuda":
        fp16_rows = []
        for budget in fp16_budgets:
            fp16_rows.append(fair_esm(bench, data, f"fair-esm-fp16-{budget}", torch.float16, budget))
            record(fp16_rows[-1:])
            free_memory(bench.device)
        best = max(fp16_rows, key=lambda r: r["tokens_per_s"])
        record([{**best, "system": "fair-esm-fp16", "best_of": best["system"]}])
    if "fair-esm-fp32" in systems:
        fp32_row = fair_esm(bench, data, "fair-esm-fp32", torch.float32, ESM_EXTRACT_TOKS_PER_BATCH)
        # A library that switched fp32 matmuls to TF32 globally would speed this row up unseen.
        fp32_row["fp32_matmul_precision"] = torch.get_float32_matmul_precision()
        record([fp32_row])
        free_memory(bench.device)


def merge_rows(path: Path, rows: list[dict[str, Any]], budgets: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """Write ``rows`` (``budgets``) into the JSON at ``path``, replacing rows of the same (model, dataset,
    system) (budget rows of the same model)."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    doc = {"device": device, "torch": torch.__version__, "rows": [], "budgets": []}
    if path.exists():
        old = json.loads(path.read_text())
        if old["device"] != device:
            raise RuntimeError(f"{path} holds rows from {old['device']!r}, this is {device!r}; pass another --out")
        doc["rows"], doc["budgets"] = old["rows"], old.get("budgets", [])
    key = lambda r: (r["model"], r["dataset"], r["system"])  # noqa: E731
    new = {key(r) for r in rows}
    doc["rows"] = [r for r in doc["rows"] if key(r) not in new] + rows
    swept = {r["model"] for r in budgets}
    doc["budgets"] = [r for r in doc["budgets"] if r["model"] not in swept] + list(budgets)
    order = {name: i for i, name in enumerate(ROW_ORDER)}
    doc["rows"].sort(key=lambda r: (r["model"], r["dataset"], order.get(r["system"], len(order)), r["system"]))
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """Per model: tokens/s and peak memory of every system per data set, then the ratios."""
    lines = [
        f"# Throughput on {doc['device']} (torch {doc['torch']})",
        "",
        "Tokens/s; a sequence of n residues counts min(n, 1022) + 2 tokens. Random weights at the real "
        "architecture sizes. Peak GiB is `max_memory_allocated` over the timed region; it includes the fp32 "
        "model that stays resident while every system runs from its own copy. Generated by "
        "`benchmarks/throughput.py` from the JSON beside this file.",
    ]
    for model in sorted({r["model"] for r in doc["rows"]}):
        rows = {(r["dataset"], r["system"]): r for r in doc["rows"] if r["model"] == model}
        datasets = sorted({d for d, _ in rows})
        systems = [r["system"] for r in doc["rows"] if r["model"] == model and r["dataset"] == datasets[0]]
        systems += sorted({s for _, s in rows} - set(systems))
        lines += ["", f"## {model}", ""]
        lines += ["| system | token budget | " + " | ".join(f"{d} tokens/s | {d} peak GiB" for d in datasets) + " |"]
        lines += ["|---|---:|" + "---:|---:|" * len(datasets)]
        for system in systems:
            budgets = sorted({rows[d, system]["token_budget"] for d in datasets if (d, system) in rows})
            budget = "/".join(f"{b:,}" for b in budgets)
            cells = []
            for d in datasets:
                r = rows.get((d, system))
                cells += [f"{r['tokens_per_s']:,.0f}" if r else "–", gib(r["peak_gpu_bytes"]) if r else "–"]
            lines.append(f"| {system} | {budget} | " + " | ".join(cells) + " |")
            if system == "virnucpro-e2e":
                cells = []
                for d in datasets:
                    r = rows.get((d, system))
                    cells += [f"{r['first_run_tokens_per_s']:,.0f}" if r else "–", ""]
                lines.append("| virnucpro-e2e, first run | | " + " | ".join(cells) + " |")
        lines += ["", "| ratio | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
        floor = next((s for s in systems if s.startswith("matmul-floor")), "matmul-floor-bf16")
        for num, den in (
            ("virnucpro-e2e", "fair-esm-fp16"),
            ("virnucpro-e2e", "fair-esm-fp32"),
            ("virnucpro-e2e", floor),
            ("virnucpro-e2e-long", "fair-esm-fp16"),
            ("virnucpro-e2e-long", floor),
            ("virnucpro-gpu-only", floor),
        ):
            cells = [ratio(rows.get((d, num)), rows.get((d, den))) for d in datasets]
            lines.append(f"| {num} / {den} | " + " | ".join(cells) + " |")
        waits = [f"{d} {rows[d, 'virnucpro-e2e']['input_wait']:.1%}" for d in datasets if (d, "virnucpro-e2e") in rows]
        if waits:
            lines += ["", "virnucpro-e2e input wait (share of wall time the GPU waited for input): " + ", ".join(waits)]
        for d, system in ((d, s) for s in ("virnucpro-e2e", "virnucpro-e2e-long") for d in datasets):
            r = rows.get((d, system))
            if r and "setup_s" in r:
                lines += [
                    f"{system} {d} ({r['sequences']:,} sequences, {r['tokens']:,} tokens), {r['seconds']:.2f} s in all: "
                    f"model set-up {r['setup_s']:.2f} s, "
                    f"first batch after {r['startup_s']:.2f} s, batches {r['loop_s'] - r['startup_s']:.2f} s, "
                    f"final assembly {r['finish_s']:.2f} s"
                ]
        sweep = [r for r in doc.get("budgets", []) if r["model"] == model]
        if sweep:
            lines += [
                "",
                f"Token budgets ({sweep[0]['dataset']}, gpu-only forward + mean pooling; peak above the "
                "resident models, per token of the largest batch):",
                "",
                "| budget | largest batch | tokens/s | peak GiB | activation bytes/token |",
                "|---:|---:|---:|---:|---:|",
            ]
            for r in sweep:
                lines.append(
                    f"| {r['token_budget']:,} | {r['largest_batch']:,} | {r['tokens_per_s']:,.0f} | "
                    f"{gib(r['peak_gpu_bytes'])} | {r['activation_bytes_per_token'] or 0:,.0f} |"
                )
    return "\n".join(lines) + "\n"


def gib(nbytes: int | None) -> str:
    return "–" if nbytes is None else f"{nbytes / 2**30:.1f}"


def ratio(num: dict | None, den: dict | None) -> str:
    return f"{num['tokens_per_s'] / den['tokens_per_s']:.2f}" if num and den else "–"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=[*ARCHITECTURES, "tiny"], help="tiny for --device cpu")
    parser.add_argument("--out", type=Path, required=True, help="JSON to merge rows into; the .md goes beside it")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: smoke test, fp32 everywhere")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {','.join(DATASETS)}")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {','.join(SYSTEMS)}")
    parser.add_argument("--repeat", type=int, help="copies of each data set (default 3; 1 with --device cpu)")
    parser.add_argument("--fp16-toks-per-batch", default="4096,16384", help="fair-esm fp16 budgets, comma-separated")
    parser.add_argument("--max-tokens", type=int, help="virnucpro tokens per packed batch (default: run_embed's)")
    parser.add_argument("--workers", type=int, help="virnucpro-e2e DataLoader workers (default: run_embed's)")
    parser.add_argument("--kernels", default="auto", help="PackedESM2 kernels= for both virnucpro systems")
    parser.add_argument("--gelu", default="auto", help="PackedESM2 gelu= for both virnucpro systems")
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
    args.fp16_toks_per_batch = [int(b) for b in args.fp16_toks_per_batch.split(",")]
    for name, chosen, known in (("--datasets", args.datasets, DATASETS), ("--systems", args.systems, SYSTEMS)):
        if unknown := set(chosen) - set(known):
            parser.error(f"{name}: unknown {sorted(unknown)}; choose from {','.join(known)}")
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
        kernels=args.kernels,
        gelu=args.gelu,
        max_tokens=args.max_tokens or default_max_tokens(model, dtype, device),
        workers=args.workers,
        passes=args.passes,
        seed=args.seed,
        long_repeat=args.long_repeat,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def record(rows: list[dict[str, Any]], budgets: list[dict[str, Any]] = ()) -> None:
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
            sweep = "budgets" in args.systems and name == args.datasets[0] and device.type == "cuda"
            run_dataset(bench, data, args.systems, args.fp16_toks_per_batch, record, sweep)
            print(f"  {time.perf_counter() - start:.0f} s since start", flush=True)
    print()
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
