"""Where DNABERT-S's packed forward spends its GPU time: ``torch.profiler`` over device-resident batches of
VirNucPro's 500-bp slices (``dnabert_speed``'s data), kernels grouped into matmuls, attention and the rest.

    python benchmarks/dnabert_profile.py --repeat 20     # GPU only; prints a table, writes --out as JSON
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from dnabert_speed import build_bench, build_data, host_batches, parse_args
from torch.profiler import ProfilerActivity, profile

from virnucpro.models import mean_pool
from virnucpro.models.dnabert import PackedDNABERT

GROUPS = (("attention", ("attention", "attn", "alibi")), ("matmul", ("gemm", "sm90", "cutlass", "cublas", "xmma")),
          ("gated GELU", ("gated", "gelu")), ("add+LayerNorm", ("layer_norm", "layernorm", "add_ln")))  # fmt: skip


def group_of(name: str) -> str:
    lower = name.lower()
    return next((group for group, keys in GROUPS if any(k in lower for k in keys)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("dnabert_profile.json"))
    args = parser.parse_args()
    bench_args = parse_args(["--chunks", "500", "--repeat", str(args.repeat), "--out", "/tmp/unused.json"])
    bench = build_bench(bench_args, torch.device("cuda"))
    with tempfile.TemporaryDirectory() as tmp:
        data = build_data("slices-500", 500, bench_args, bench.tokenizer, Path(tmp))
    batches = [(i.cuda(), c.cuda(), m) for i, c, m in host_batches(bench, data)]
    packed = PackedDNABERT(bench.weights, dtype=bench.dtype, device=bench.device, options=bench.options)
    packed.warm_up()
    layer = packed.num_layers

    def one_pass() -> None:
        for ids, cu, longest in batches:
            reps = packed(ids, cu, longest, repr_layers=[layer])["representations"][layer]
            mean_pool(reps, cu, bos=False, eos=False)

    one_pass()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        one_pass()
        torch.cuda.synchronize()
    kernels: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for event in prof.events():
        if event.device_type.name == "CUDA":
            kernels[event.name][0] += event.device_time / 1e3
            kernels[event.name][1] += 1
    total = sum(ms for ms, _ in kernels.values())
    groups: dict[str, float] = defaultdict(float)
    for name, (ms, _) in kernels.items():
        groups[group_of(name)] += ms
    print(f"{data.tokens:,} tokens in {len(batches)} batches; GPU kernel time {total:.1f} ms "
          f"({data.tokens / total * 1e3:,.0f} tokens/s)")  # fmt: skip
    for group, ms in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {group:<14} {ms:9.1f} ms  {100 * ms / total:5.1f} %")
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:20]
    for name, (ms, calls) in top:
        print(f"  {ms:9.1f} ms {100 * ms / total:5.1f} % x{calls:<5} {group_of(name):<13} {name[:110]}")
    args.out.write_text(json.dumps({"tokens": data.tokens, "batches": len(batches), "total_ms": total,
                                    "groups": groups, "kernels": {n: v for n, v in top}}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
