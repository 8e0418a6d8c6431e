"""DNABERT-S throughput: virnucpro's packed forward beside DNABERT-S's own code, as VirNucPro and as
batched rewrites run it, and the dense-matmul floor, on one GPU, in one run.

Tokens/s, where a sequence counts its DNABERT-S tokens, [CLS] and [SEP] included: the same
sequences and the same count for every system.

* ``virnucpro-e2e``: ``run_embed``, the nucleotide FASTA on disk to HDF5 on disk, with the
  family's mean (every token). The first run warms up (``first_run_tokens_per_s``); a second
  is timed. Needs the pipeline to route DNABERT-S specs (``registry.family_for``); skipped
  with a note where it does not.
* ``virnucpro-gpu-only``: ``PackedDNABERT`` forward and the mean over every token, over packed
  batches tokenised beforehand and resident on the GPU.
* ``dnabert-s-fp32-sequential``: DNABERT-S's own ``BertModel`` as VirNucPro's
  ``extract_DNABERT_S`` runs it: fp32, one sequence at a time, tokenised in the loop,
  ``torch.mean(model(ids)[0], dim=1)`` copied to the host as a list. Timed on
  ``--sequential-limit`` evenly spaced sequences (their tokens/s: the rate is per token).
* ``dnabert-s-bf16-padded``: the same code batched, as the best public rewrite does:
  sequences sorted by length, padded batches of at most ``--padded-tokens`` tokens with an
  attention mask, the model in bf16 under autocast (its ALiBi bias is float32), a masked mean.
* ``matmul-floor-bf16``: the linear layers' matmuls alone (E->3E, E->E, E->2I, I->E per
  block) at the packed batches' token counts (``matmul_floor.floor_pass``).

Data sets: VirNucPro's nucleotide slices (``virnucpro translate --nucleotide-out``:
``write_translation``) of 500- and 300-bp chunks of ``--inputs`` (default the bundled
``examples/data/*.fna.gz``, the files of /work/shared/data), ``--repeat`` copies with distinct
ids. Random weights at DNABERT-S's shape (``random:dnabert-s``, its tokenizer learnt from
the bundled DNA), the same weights in every system; speed does not depend on their values.
gpu-only, the padded reference and the floor report the median of ``--passes`` timed passes
after a warm-up; the end-to-end and sequential rows one timed run after a warm-up; all by
wall clock with the device drained (``timing.wall_seconds``).

Needs torch, tokenizers and safetensors (virnucpro), fair-esm and Biopython (virnucpro's data
layer and pipeline import them; ``h200_run.sh`` carries both as wheels), transformers and
einops (DNABERT-S's code, vendored in ``tests/reference/dnabert_s``).

    python benchmarks/dnabert_speed.py                      # GPU: benchmarks/results/dnabert_speed.{json,md}
    python benchmarks/dnabert_speed.py --device cpu --smoke  # < 1 minute: a tiny model, fp32, 120 slices of 500 bp
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _paths  # noqa: F401  (tests/ on sys.path: DNABERT-S's own code and its runners)
import torch
from bench_data import repeat, write_fasta
from dnabert_reference import REAL, our_weights, packed_batches, padded_batches, reference_model
from matmul_floor import floor_pass
from throughput import check_count, free_memory, peak_memory, start_memory, timed_passes
from throughput_report import merge_rows
from timing import wall_seconds

from virnucpro.data import sequence_dataset
from virnucpro.data.translation_files import write_translation
from virnucpro.models import ForwardOptions, family_for, mean_pool
from virnucpro.models.dnabert import DNABERTWeights, DNATokenizer, PackedDNABERT, auto_max_tokens, tokenizer
from virnucpro.tasks.embed import EmbedConfig, run_embed

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
SPEC = "random:dnabert-s"
TINY = (2, 64, 4, 96)  # layers, hidden, heads, intermediate: the CPU smoke model
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

Row = dict[str, Any]


@dataclass(frozen=True)
class Bench:
    """What every system of one run shares."""

    model_name: str  # row key: "dnabert-s", or "tiny" for the smoke test
    weights: DNABERTWeights  # fp32 on the device: virnucpro's systems copy it
    reference: torch.nn.Module  # DNABERT-S's own BertModel, fp32 on the device, the same weights
    tokenizer: DNATokenizer
    device: torch.device
    dtype: torch.dtype  # virnucpro, padded reference and floor: bf16 on the GPU, fp32 on the CPU
    options: ForwardOptions
    max_tokens: int  # virnucpro tokens per packed batch
    padded_tokens: int  # padded tokens per batch of the batched reference
    workers: int | None  # virnucpro-e2e DataLoader workers; None: run_embed's default
    group_characters: tuple[int, ...]  # virnucpro-e2e byte-pair group sizes to run; () the library's
    sequential_limit: int
    passes: int
    seed: int


@dataclass(frozen=True)
class Data:
    """One data set: its records, its FASTA on disk, its token sequences."""

    name: str
    records: list[tuple[str, str]]
    fasta: Path
    sequences: list[torch.Tensor]  # token ids per record, [CLS] and [SEP] included, in record order
    tokens: int


def build_data(name: str, chunk: int, args: argparse.Namespace, tokens: DNATokenizer, workdir: Path) -> Data:
    """VirNucPro's nucleotide slices of ``chunk``-bp chunks of ``args.inputs`` (``virnucpro translate``'s)."""
    slices = workdir / f"{name}.slices.fna"
    write_translation(args.inputs, workdir / f"{name}.faa", chunk_size=chunk, nucleotide_out=slices)
    lines = slices.read_text().splitlines()  # ours: ">id" and one sequence line per record
    records = list(zip((line[1:] for line in lines[0::2]), lines[1::2]))
    if args.limit:
        records = records[:: max(1, len(records) // args.limit)][: args.limit]
    records = repeat(records, args.repeat)
    fasta = workdir / f"{name}.fna"
    write_fasta(records, fasta)
    ids, lengths = tokens.encode([seq for _, seq in records])
    sequences = list(torch.from_numpy(ids).split(lengths.tolist()))
    return Data(name, records, fasta, sequences, int(lengths.sum()))


def row(bench: Bench, data: Data, system: str, seconds: float, tokens: int, resident: int | None, **extra: Any) -> Row:
    result = {
        "model": bench.model_name,
        "dataset": data.name,
        "system": system,
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "tokens": tokens,
        "sequences": len(data.records),
        "peak_gpu_bytes": peak_memory(bench.device),
        "resident_gpu_bytes": resident,
        **extra,
    }
    print(f"  {system:<28} {result['tokens_per_s']:>12,.0f} tokens/s over {seconds:.2f} s", flush=True)
    return result


# --- the systems: one function each, yielding its rows ----------------------------------------


def virnucpro_e2e(bench: Bench, data: Data) -> Iterator[Row]:
    """``run_embed`` from the FASTA file to an HDF5 file, twice; the second run is the figure. One row
    per ``--group-characters`` value (``virnucpro-e2e-gN`` for a value other than the library's)."""
    family = family_for(SPEC).name
    if family != "dnabert":
        print(f"  virnucpro-e2e: skipped: the pipeline routes {SPEC!r} to the {family!r} family, not DNABERT-S")
        return
    default = sequence_dataset.GROUP_CHARACTERS_PER_TOKEN
    try:
        for group in bench.group_characters or (default,):
            sequence_dataset.GROUP_CHARACTERS_PER_TOKEN = group  # read in the workers, which fork after this
            system = "virnucpro-e2e" if group == default else f"virnucpro-e2e-g{group}"
            yield _e2e_row(bench, data, system, group)
    finally:
        sequence_dataset.GROUP_CHARACTERS_PER_TOKEN = default


def _e2e_row(bench: Bench, data: Data, system: str, group: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        config = EmbedConfig(
            inputs=(data.fasta,), output=Path(tmp) / f"{data.name}.h5", model=SPEC, dtype=DTYPE_NAMES[bench.dtype],
            device=str(bench.device), max_tokens=bench.max_tokens, forward=bench.options, overwrite=True,
            progress=False, **({} if bench.workers is None else {"workers": bench.workers}),
        )  # fmt: skip
        summary, first = wall_seconds(lambda: run_embed(config, model=bench.weights), bench.device)
        check_count(f"{system} first run records", summary.records, len(data.records))
        resident = start_memory(bench.device)
        summary, seconds = wall_seconds(lambda: run_embed(config, model=bench.weights), bench.device)
    check_count(f"{system} records", summary.records, len(data.records))
    check_count(f"{system} tokens", summary.tokens, data.tokens)
    print(f"    {summary.line()}; GPU busy {summary.gpu_busy_s:.2f} s", flush=True)
    return row(
        bench, data, system, seconds, data.tokens, resident, dtype=DTYPE_NAMES[bench.dtype],
        token_budget=summary.max_tokens, first_run_tokens_per_s=data.tokens / first, first_run_seconds=first,
        startup_s=summary.startup_s, setup_s=summary.setup_s, loop_s=summary.wall_s, input_wait=summary.input_wait,
        finish_s=summary.finish_s, gpu_busy_s=summary.gpu_busy_s, group_characters=group, workers=summary.workers,
        attention=summary.options.attention, kernels=summary.options.kernels, gelu=summary.options.gelu,
    )  # fmt: skip


def virnucpro_gpu_only(bench: Bench, data: Data) -> Iterator[Row]:
    """PackedDNABERT forward and the mean over every token, over device-resident packed batches."""
    batches = [(ids.to(bench.device), cu.to(bench.device), longest) for ids, cu, longest in host_batches(bench, data)]
    packed = PackedDNABERT(bench.weights, dtype=bench.dtype, device=bench.device, options=bench.options)
    packed.warm_up()
    layer = packed.num_layers

    def one_pass() -> list[torch.Tensor]:
        return [
            mean_pool(packed(ids, cu, longest, repr_layers=[layer])["representations"][layer], cu, bos=False, eos=False)
            for ids, cu, longest in batches
        ]

    means, runs, resident = timed_passes(bench, one_pass)
    check_count("virnucpro-gpu-only embeddings", sum(len(m) for m in means), len(data.records))
    o = packed.options
    yield row(
        bench, data, "virnucpro-gpu-only", statistics.median(runs), data.tokens, resident,
        dtype=DTYPE_NAMES[bench.dtype], token_budget=bench.max_tokens, batches=len(batches),
        attention=o.attention, kernels=o.kernels, gelu=o.gelu, tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def sequential_fp32(bench: Bench, data: Data) -> Iterator[Row]:
    """VirNucPro's ``extract_DNABERT_S`` loop on evenly spaced records: fp32, one sequence at a time."""
    step = max(1, len(data.records) // bench.sequential_limit)
    subset = [seq for _, seq in data.records[::step][: bench.sequential_limit]]
    tokens = int(bench.tokenizer.count(subset).sum())

    @torch.no_grad()
    def extract(sequences: list[str]) -> list[list[float]]:
        out = []
        for seq in sequences:
            ids = torch.from_numpy(bench.tokenizer.encode([seq])[0])[None].to(bench.device)
            hidden_states = bench.reference(ids)[0]
            out.append(torch.mean(hidden_states, dim=1).squeeze().cpu().tolist())
        return out

    extract(subset[:4])
    resident = start_memory(bench.device)
    means, seconds = wall_seconds(lambda: extract(subset), bench.device)
    check_count("dnabert-s-fp32-sequential embeddings", len(means), len(subset))
    yield row(
        bench, data, "dnabert-s-fp32-sequential", seconds, tokens, resident, dtype="fp32", timed_sequences=len(subset)
    )


def padded_reference(bench: Bench, data: Data) -> Iterator[Row]:
    """DNABERT-S's code batched with padding, sorted by length, in ``bench.dtype`` under autocast; masked means."""
    model = copy.deepcopy(bench.reference).to(bench.dtype)
    batches = list(padded_batches(sorted(data.sequences, key=len), bench.padded_tokens))

    @torch.no_grad()
    def one_pass() -> list[torch.Tensor]:
        means = []
        for ids, mask, _ in batches:
            ids, mask = ids.to(bench.device), mask.to(bench.device)
            with torch.autocast(bench.device.type, dtype=bench.dtype, enabled=bench.dtype != torch.float32):
                hidden = model(ids, attention_mask=mask)[0]  # (B, L, E), zeros past each sequence
            means.append((hidden.float().sum(1) / mask.sum(1, keepdim=True)).cpu())
        return means

    means, runs, resident = timed_passes(bench, one_pass)
    check_count("padded reference embeddings", sum(len(m) for m in means), len(data.records))
    padded = sum(ids.numel() for ids, _, _ in batches)
    name = f"dnabert-s-{DTYPE_NAMES[bench.dtype]}-padded"
    yield row(
        bench, data, name, statistics.median(runs), data.tokens, resident, dtype=DTYPE_NAMES[bench.dtype],
        token_budget=bench.padded_tokens, batches=len(batches), padded_tokens=padded,
        tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def matmul_floor(bench: Bench, data: Data) -> Iterator[Row]:
    """The linear layers' matmuls alone at the packed batches' token counts."""
    counts = [int(cu[-1]) for _, cu, _ in host_batches(bench, data)]
    c = bench.weights.config
    shapes = [(3 * c.embed_dim, c.embed_dim), (c.embed_dim, c.embed_dim), (2 * c.intermediate, c.embed_dim),
              (c.embed_dim, c.intermediate)]  # fmt: skip
    one_pass, flops = floor_pass(shapes, c.layers, counts, bench.device, bench.dtype, bench.seed)
    _, runs, resident = timed_passes(bench, one_pass)
    seconds = statistics.median(runs)
    yield row(
        bench, data, f"matmul-floor-{DTYPE_NAMES[bench.dtype]}", seconds, data.tokens, resident,
        dtype=DTYPE_NAMES[bench.dtype], token_budget=bench.max_tokens, batches=len(counts),
        tflops_per_s=flops / seconds / 1e12, tokens_per_s_runs=[data.tokens / s for s in runs],
    )  # fmt: skip


def host_batches(bench: Bench, data: Data) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """The records in order, packed into batches of ``bench.max_tokens`` tokens, as the pipeline packs them."""
    batches = packed_batches(data.sequences, bench.max_tokens)
    check_count("packed tokens", sum(int(cu[-1]) for _, cu, _ in batches), data.tokens)
    return batches


#: Rows in the order the table lists them.
ROW_ORDER = (
    "virnucpro-e2e",
    "virnucpro-gpu-only",
    "matmul-floor-bf16",
    "matmul-floor-fp32",
    "dnabert-s-bf16-padded",
    "dnabert-s-fp32-padded",
    "dnabert-s-fp32-sequential",
)
#: ``--systems`` names, in the order a run measures them.
SYSTEMS: dict[str, Callable[[Bench, Data], Iterator[Row]]] = {
    "virnucpro-e2e": virnucpro_e2e,
    "virnucpro-gpu-only": virnucpro_gpu_only,
    "dnabert-s-fp32-sequential": sequential_fp32,
    "dnabert-s-padded": padded_reference,
    "matmul-floor": matmul_floor,
}


def markdown(doc: dict[str, Any]) -> str:
    """Per model and data set: tokens/s, seconds and peak memory of every system, and its speed-up
    over VirNucPro's own loop (``dnabert-s-fp32-sequential``)."""
    lines = [
        f"# DNABERT-S throughput on {doc['device']} (torch {doc['torch']})",
        "",
        "Tokens/s, a sequence counting its DNABERT-S tokens with [CLS] and [SEP]; VirNucPro's nucleotide slices of "
        "500- and 300-bp chunks of the bundled contigs. Random weights (model `dnabert-s`: DNABERT-S's real shape; "
        "`tiny`: the CPU smoke test). Peak GiB is `max_memory_allocated` over the timed region (the fp32 weights "
        "every system copies from stay resident). Generated by `benchmarks/dnabert_speed.py` from the JSON beside "
        "this file.",
    ]
    rank = {name: i for i, name in enumerate(ROW_ORDER)}
    for model in sorted({r["model"] for r in doc["rows"]}):
        lines += ["", f"## {model}", ""]
        lines += ["| data set | system | dtype | tokens/s | seconds | peak GiB | x VirNucPro's loop |"]
        lines += ["|---|---|---|---:|---:|---:|---:|"]
        rows = [r for r in doc["rows"] if r["model"] == model]
        rows.sort(key=lambda r: (r["dataset"], rank.get(r["system"], len(rank))))
        loops = {r["dataset"]: r for r in rows if r["system"] == "dnabert-s-fp32-sequential"}
        for r in rows:
            base = loops.get(r["dataset"])
            ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.1f}" if base else ""
            peak = "" if r["peak_gpu_bytes"] is None else f"{r['peak_gpu_bytes'] / 2**30:.2f}"
            lines.append(
                f"| {r['dataset']} | {r['system']} | {r.get('dtype', '')} | {r['tokens_per_s']:,.0f} | "
                f"{r['seconds']:.3f} | {peak} | {ratio} |"
            )
    return "\n".join(lines) + "\n"


def build_bench(args: argparse.Namespace, device: torch.device) -> Bench:
    """The models (DNABERT-S's own, and our weights copied from it) and the shared settings of one run."""
    shape = TINY if args.smoke else REAL
    reference = reference_model(*shape, seed=args.seed, noise=0.0, device=str(device))
    weights = our_weights(reference)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype] if device.type == "cuda" else torch.float32
    return Bench(
        model_name="tiny" if args.smoke else "dnabert-s",
        weights=weights,
        reference=reference,
        tokenizer=tokenizer(SPEC),
        device=device,
        dtype=dtype,
        options=ForwardOptions(attention=args.attention, kernels=args.kernels),
        max_tokens=args.max_tokens or auto_max_tokens(weights, dtype, device, num_layers_out=1),
        padded_tokens=args.padded_tokens,
        workers=args.workers,
        group_characters=tuple(args.group_characters),
        sequential_limit=args.sequential_limit,
        passes=args.passes,
        seed=args.seed,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: only with --smoke")
    parser.add_argument("--workers", type=int, help="virnucpro-e2e DataLoader workers (default: run_embed's)")
    parser.add_argument(
        "--group-characters",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[],
        help="virnucpro-e2e: GROUP_CHARACTERS_PER_TOKEN values to run, one row each (default the library's)",
    )
    parser.add_argument("--stages", action="store_true", help="log each run's set-up stages (DEBUG) to stderr")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"], help="on the GPU, for every system")
    parser.add_argument("--smoke", action="store_true", help="a tiny model in fp32 on a subset: checks the script runs")
    parser.add_argument("--out", type=Path, help="JSON to merge rows into, the .md beside it (default: by mode)")
    parser.add_argument("--inputs", type=Path, nargs="+", default=sorted(EXAMPLES.glob("*.fna.gz")), help="contigs")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {','.join(SYSTEMS)}")
    parser.add_argument("--chunks", help="chunk sizes in bp, one data set each (default 500,300; smoke 500)")
    parser.add_argument("--repeat", type=int, help="copies of each data set (default 16; 1 with --smoke)")
    parser.add_argument("--limit", type=int, help="records per data set, before --repeat (default all; smoke 120)")
    parser.add_argument("--max-tokens", type=int, help="virnucpro tokens per packed batch (default: auto_max_tokens)")
    parser.add_argument("--padded-tokens", type=int, default=16384, help="padded tokens per reference batch")
    parser.add_argument("--sequential-limit", type=int, help="records run one at a time (default 1000; smoke 40)")
    parser.add_argument("--passes", type=int, help="timed passes, median kept (default 3; 1 with --smoke)")
    parser.add_argument("--attention", default="auto", help="ForwardOptions attention= for virnucpro's systems")
    parser.add_argument("--kernels", default="auto", help="ForwardOptions kernels= for virnucpro's systems")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.systems = args.systems.split(",")
    if unknown := set(args.systems) - set(SYSTEMS):
        parser.error(f"--systems: unknown {sorted(unknown)}; choose from {','.join(SYSTEMS)}")
    args.chunks = [int(size) for size in (args.chunks or ("500" if args.smoke else "500,300")).split(",")]
    args.repeat = args.repeat or (1 if args.smoke else 16)
    args.limit = args.limit or (120 if args.smoke else None)
    args.sequential_limit = args.sequential_limit or (40 if args.smoke else 1000)
    args.passes = args.passes or (1 if args.smoke else 3)
    smoke_out = Path(tempfile.gettempdir()) / "dnabert_speed_smoke.json"
    args.out = args.out or (smoke_out if args.smoke else RESULTS / "dnabert_speed.json")
    if args.device == "cpu" and not args.smoke:
        parser.error("--device cpu runs only with --smoke (a tiny model); DNABERT-S's real shape is for the GPU")
    if args.smoke and args.out.resolve().is_relative_to(RESULTS):
        parser.error(f"--smoke results stay out of {RESULTS}; pass --out elsewhere")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; use --device cpu --smoke")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.stages:
        logging.basicConfig(format="%(message)s")
        logging.getLogger("virnucpro").setLevel(logging.DEBUG)
    start = time.perf_counter()
    device = torch.device(args.device)
    bench = build_bench(args, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter() - start
    print(f"{bench.model_name}: built in {built:.1f} s; max_tokens {bench.max_tokens:,}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for chunk in args.chunks:
            data = build_data(f"slices-{chunk}", chunk, args, bench.tokenizer, Path(tmp))
            print(f"{data.name}: {len(data.records):,} sequences, {data.tokens:,} tokens", flush=True)
            for name in (s for s in SYSTEMS if s in args.systems):
                for measured in SYSTEMS[name](bench, data):
                    doc = merge_rows(args.out, [measured])
                    args.out.with_suffix(".md").write_text(markdown(doc))
                free_memory(device)
            print(f"  {time.perf_counter() - start:.0f} s since start", flush=True)
    print()
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
