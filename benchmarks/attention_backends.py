"""Varlen attention backends side by side, on the real packed batches, in one run on one GPU.

For each head layout (ESM-2 3B: 40 heads of 64; 650M: 20 heads of 64) and each data
set (3 copies, as in throughput.py), the packed batches (131,072-token budget) get
random bf16 q, k, v laid out as PackedESM2 lays them out: q and k contiguous (T, H, D),
v a view of the fused (T, 3, H, D) projection. Each attention backend of
``virnucpro.models.common.attention`` that is installed is then

- checked against exact float32 attention per sequence: max abs error, and the
  largest per-sequence relative error (Frobenius norm);
- timed with CUDA events (``timing.cuda_seconds``): the first call on each batch (the
  first of all includes loading or compiling the kernel), then the median of
  ``--repeat`` passes over all batches.

One pass is one layer's attention over the whole data set. Writes ``--out`` (JSON)
and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from pathlib import Path

import esm
import torch
from bench_data import DATASETS, repeat, write_fasta
from timing import cuda_seconds, median_seconds

from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models.common.attention import BACKENDS, reference_attention, select_attention

LAYOUTS = {"esm2_t36_3B": (40, 64), "esm2_t33_650M": (20, 64)}


def packed_lengths(name: str, copies: int, max_tokens: int, tmp: Path) -> list[tuple[torch.Tensor, int]]:
    """(cu_seqlens on the GPU, max_seqlen) of each packed batch of a data set, as the pipeline packs it."""
    fasta = tmp / f"{name}.faa"
    write_fasta(repeat(DATASETS[name](), copies), fasta)
    dataset = SequenceDataset([fasta], max_tokens=max_tokens, report=False)
    collator = VarlenCollator(esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter())
    return [(b.cu_seqlens.cuda(), b.max_seqlen) for b in map(collator, dataset)]


def qkv(total: int, heads: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    fused = torch.randn(total, 3, heads, dim, device="cuda", dtype=torch.bfloat16, generator=gen)
    q, k, v = fused.unbind(1)
    return (q * dim**-0.5).contiguous(), k.contiguous(), v  # q pre-scaled: kernels run with scale 1.0


def errors(out: torch.Tensor, q, k, v, cu_seqlens: torch.Tensor) -> dict[str, float]:
    """Max abs error, and the largest per-sequence relative error, against float32 attention."""
    want = reference_attention(q.float(), k.float(), v.float(), cu_seqlens, int(cu_seqlens.diff().max()))
    bounds = cu_seqlens.tolist()
    rel = max((out[s:e].float() - want[s:e]).norm() / want[s:e].norm() for s, e in zip(bounds[:-1], bounds[1:]))
    return {"max_abs": (out.float() - want).abs().max().item(), "max_rel": rel.item()}


def measure(backend: str, batches, heads: int, dim: int, repeat: int) -> dict:
    _, attend = select_attention(backend, "cuda", torch.bfloat16)
    inputs = [(qkv(int(cu[-1]), heads, dim, seed=i), cu, m) for i, (cu, m) in enumerate(batches)]
    first = [cuda_seconds(functools.partial(attend, q, k, v, cu, m))[1] for (q, k, v), cu, m in inputs]
    worst = {"max_abs": 0.0, "max_rel": 0.0}
    for (q, k, v), cu, m in inputs:
        for key, value in errors(attend(q, k, v, cu, m), q, k, v, cu).items():
            worst[key] = max(worst[key], value)

    def one_pass() -> None:
        for (q, k, v), cu, m in inputs:
            attend(q, k, v, cu, m)

    seconds = median_seconds(one_pass, repeat, warmup=0)  # the calls above warmed every shape up
    tokens = sum(int(cu[-1]) for cu, _ in batches)
    return {
        "backend": backend,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "first_call_s": first,
        **worst,
    }


def table(doc: dict) -> str:
    """The rows as a markdown table."""
    lines = [
        f"# Varlen attention on {doc['device']} (torch {doc['torch']})",
        "",
        "| model | dataset | backend | ms per pass | tokens/s | first call per shape, ms | max abs err | max rel err |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for r in doc["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['dataset']} | {r['backend']} | {r['error']} | | | | |")
            continue
        first = ", ".join(f"{s * 1e3:.1f}" for s in r["first_call_s"])
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['backend']} | {r['seconds'] * 1e3:.2f} | "
            f"{r['tokens_per_s']:,.0f} | {first} | {r['max_abs']:.2e} | {r['max_rel']:.2e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=131072)
    parser.add_argument("--copies", type=int, default=3, help="copies of each data set, as throughput.py's --repeat")
    parser.add_argument("--repeat", type=int, default=20, help="timed passes, median kept")
    parser.add_argument("--backends", default=",".join(b for b in BACKENDS if b != "reference"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for dataset in DATASETS:
        batches = packed_lengths(dataset, args.copies, args.max_tokens, tmp)
        for model, (heads, dim) in LAYOUTS.items():
            for backend in args.backends.split(","):
                try:
                    result = measure(backend, batches, heads, dim, args.repeat)
                except (ValueError, RuntimeError) as err:
                    result = {"backend": backend, "error": str(err).splitlines()[0]}
                rows.append({"model": model, "dataset": dataset, "heads": heads, "head_dim": dim, **result})
                print(json.dumps(rows[-1]), flush=True)
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    markdown = table(doc)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown, end="")


if __name__ == "__main__":
    main()
