"""Where the GPU time of one packed forward goes: matmuls, attention, fused elementwise, the rest.

Profiles ``PackedESM2`` (bf16, eager and compiled) plus mean pooling on packed batches of
the real proteome already resident on the GPU, sums CUDA kernel time per category, and
compares the matmul share with the bf16 matmul floor. Writes ``--out`` (JSON).

    python benchmarks/profile_forward.py --model esm2_t36_3B_UR50D --out profile.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import esm
import torch
from torch.profiler import ProfilerActivity, profile

from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models import ARCHITECTURES, PackedESM2, mean_pool

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
CATEGORIES = (  # first match wins: flash kernels carry cutlass names in their template arguments
    ("attention", ("flash", "fmha", "attention")),
    ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "wgmma", "cublas")),
    ("fused elementwise (triton)", ("triton",)),
    ("copy", ("memcpy", "memset", "copy")),
    ("eager elementwise / norm / index", ("elementwise", "reduce", "norm", "index", "gather", "scatter", "cat")),
)


def category(kernel: str) -> str:
    name = kernel.lower()
    for label, needles in CATEGORIES:
        if any(n in name for n in needles):
            return label
    return "other"


def batches(max_tokens: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    collate = VarlenCollator(esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter())
    dataset = SequenceDataset([EXAMPLES / "MIIJ01000039.single.faa.gz"], max_tokens=max_tokens, report=False)
    out = []
    for records in dataset.batches():
        b = collate(records)
        out.append((b["input_ids"].to(device), b["cu_seqlens"].to(device), b["max_seqlen"]))
    return out


def run(packed: PackedESM2, data, repeats: int) -> None:
    for _ in range(repeats):
        for input_ids, cu, max_seqlen in data:
            reps = packed(input_ids, cu, max_seqlen)["representations"][packed.num_layers]
            mean_pool(reps, cu)


def profile_one(packed: PackedESM2, data) -> dict:
    run(packed, data, 2)  # warm-up (and compilation)
    torch.cuda.synchronize()
    tokens = sum(ids.numel() for ids, _, _ in data)
    start = time.perf_counter()
    run(packed, data, 3)
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / 3
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run(packed, data, 1)
        torch.cuda.synchronize()
    per_category: dict[str, float] = defaultdict(float)
    top: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        device_us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
        if device_us <= 0 or event.key.startswith("ProfilerStep"):
            continue
        if any(
            event.key.startswith(p) for p in ("aten::", "torch::", "inductor", "Torch-Compiled", "CompiledFunction")
        ):
            continue  # CPU-side ranges that also carry device time: counted through their kernels
        per_category[category(event.key)] += device_us / 1e6
        top[event.key[:90]] += device_us / 1e6
    kernel_s = sum(per_category.values())
    return {
        "tokens_per_s": tokens / wall,
        "wall_s_per_pass": wall,
        "kernel_s_per_pass": kernel_s,
        "gpu_busy_fraction": kernel_s / wall,
        "seconds_by_category": dict(sorted(per_category.items(), key=lambda kv: -kv[1])),
        "top_kernels": dict(sorted(top.items(), key=lambda kv: -kv[1])[:12]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="esm2_t33_650M_UR50D", choices=sorted(ARCHITECTURES))
    parser.add_argument("--max-tokens", type=int, default=65536)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    layers, dim, heads = ARCHITECTURES[args.model]
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = esm.model.esm2.ESM2(layers, dim, heads, alphabet="ESM-1b").eval()
    data = batches(args.max_tokens, torch.device("cuda"))
    results = {
        "model": args.model,
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "max_tokens": args.max_tokens,
    }
    for label, compiled in (("eager", False), ("compiled", True)):
        packed = PackedESM2(model, dtype=torch.bfloat16, attention="auto", compile=compiled)
        results[label] = profile_one(packed, data)
        results[label]["backend"] = packed.backend
        del packed
        torch.cuda.empty_cache()
    args.out.write_text(json.dumps(results, indent=1))
    for label in ("eager", "compiled"):
        r = results[label]
        print(f"{args.model} {label}: {r['tokens_per_s']:,.0f} tokens/s, GPU busy {100 * r['gpu_busy_fraction']:.1f} %")
        for name, seconds in r["seconds_by_category"].items():
            print(f"  {name:34s} {seconds * 1e3:9.1f} ms/pass  {100 * seconds / r['kernel_s_per_pass']:5.1f} %")
        for name, seconds in list(r["top_kernels"].items())[:6]:
            print(f"    {seconds * 1e3:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
