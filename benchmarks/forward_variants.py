"""Before/after measurements of the packed forward's speed work, in one run on one GPU.

For each ESM-2 size (random weights): tokens/s of the bf16 packed forward + mean pooling
over the proteome, packed at 131,072 tokens and resident on the GPU, per variant; the
per-sequence cosine of its mean embeddings against fair-esm's fp32 padded forward; and
kernel time by category from the torch profiler. Also fc1 (+ bias + GELU) alone.

Variants: ``before``, an earlier ``packed_esm2.py`` given with ``--old`` (whole blocks
through ``torch.compile(dynamic=True)``), then ``kernels-gelu[-attention]`` for PackedESM2's
``kernels=``, ``gelu=`` and ``attention=`` options (attention "auto" when left out), e.g.
``torch-exact``, ``triton-exact``, ``triton-tanh-torch-varlen``, ``triton-tanh-triton``.
``forward_variants.json`` was measured when "auto" meant torch-varlen;
``forward_variants_attention.json`` measures the attention step. The "before" file of
the committed results was made with

    git show 0d71176:virnucpro/models/packed_esm2.py | sed 's/^from \.\(attention\|segments\)/from virnucpro.models.\1/' > old.py
    python benchmarks/forward_variants.py --old old.py --out forward_variants.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import esm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models import ARCHITECTURES, PackedESM2, mean_pool

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
CATEGORIES = (  # first match wins: flash kernels carry cutlass names in their template arguments
    ("attention", ("flash", "fmha", "attention")),
    ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "wgmma", "cublas")),
    ("triton", ("triton",)),
    ("copy", ("memcpy", "memset", "copy")),
    ("eager elementwise / norm / index", ("elementwise", "reduce", "norm", "index", "gather", "scatter", "cat")),
)


def category(kernel: str) -> str:
    name = kernel.lower()
    for label, needles in CATEGORIES:
        if any(n in name for n in needles):
            return label
    return "other"


def cuda_seconds(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def fc1_bench(dim: int, tokens: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4 * dim, dim, device="cuda", dtype=torch.bfloat16) / dim**0.5
    b = torch.randn(4 * dim, device="cuda", dtype=torch.bfloat16)
    exact = torch.compile(lambda x, w, b: F.gelu(F.linear(x, w, b)))
    out = {
        "linear": cuda_seconds(lambda: F.linear(x, w, b), 10),
        "linear+gelu eager": cuda_seconds(lambda: F.gelu(F.linear(x, w, b)), 10),
        "linear+gelu compiled": cuda_seconds(lambda: exact(x, w, b), 10),
        "addmm_activation (cuBLASLt GELU epilogue)": cuda_seconds(
            lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True), 10
        ),
    }
    ref = F.gelu(F.linear(x.float(), w.float(), b.float()))
    for name, y in (
        ("exact", F.gelu(F.linear(x, w, b))),
        ("tanh epilogue", torch._addmm_activation(b, x, w.t(), use_gelu=True)),
        ("tanh", F.gelu(F.linear(x, w, b), approximate="tanh")),
    ):
        out[f"max abs vs fp32 exact: {name}"] = (y.float() - ref).abs().max().item()
    out["max abs tanh epilogue vs tanh"] = (
        (
            torch._addmm_activation(b, x, w.t(), use_gelu=True).float()
            - F.gelu(F.linear(x, w, b), approximate="tanh").float()
        )
        .abs()
        .max()
        .item()
    )
    return out


def proteome_batches(max_tokens: int):
    collate = VarlenCollator(esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter())
    dataset = SequenceDataset([EXAMPLES / "MIIJ01000039.single.faa.gz"], max_tokens=max_tokens, report=False)
    return [collate(records) for records in dataset.batches()]


@torch.no_grad()
def reference_means(model, batches) -> list[torch.Tensor]:
    """fair-esm fp32 padded forward, mean over residues (BOS/EOS excluded), per packed batch."""
    means = []
    for b in batches:
        cu = b["cu_seqlens"].tolist()
        ids = b["input_ids"]
        rows = []
        for i in range(0, len(cu) - 1, 64):
            group = [ids[cu[j] : cu[j + 1]] for j in range(i, min(i + 64, len(cu) - 1))]
            tokens = torch.nn.utils.rnn.pad_sequence(group, batch_first=True, padding_value=model.padding_idx).cuda()
            reps = model(tokens, repr_layers=[model.num_layers])["representations"][model.num_layers]
            for k, g in enumerate(group):
                rows.append(reps[k, 1 : len(g) - 1].mean(0))
        means.append(torch.stack(rows))
    return means


def measure(packed, batches, expected) -> dict:
    dev = [(b["input_ids"].cuda(), b["cu_seqlens"].cuda(), b["max_seqlen"]) for b in batches]
    layer = packed.num_layers

    def one_pass():
        return [mean_pool(packed(i, c, m, repr_layers=[layer])["representations"][layer], c) for i, c, m in dev]

    t0 = time.perf_counter()
    got = one_pass()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    tokens = sum(i.numel() for i, _, _ in dev)
    seconds = cuda_seconds(one_pass, 3)
    cos = torch.cat([F.cosine_similarity(g.float(), e, dim=1) for g, e in zip(got, expected)])
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        one_pass()
        torch.cuda.synchronize()
    cats: dict[str, float] = defaultdict(float)
    top: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", 0)
        if us <= 0 or any(
            ev.key.startswith(p) for p in ("aten::", "torch::", "inductor", "Torch-Compiled", "CompiledFunction")
        ):
            continue
        cats[category(ev.key)] += us / 1e6
        top[ev.key[:80]] += us / 1e6
    return {
        "tokens_per_s": tokens / seconds,
        "seconds_per_pass": seconds,
        "first_pass_s": first,
        "cos_min": cos.min().item(),
        "cos_mean": cos.mean().item(),
        "gpu_busy_fraction": sum(cats.values()) / seconds,
        "kernel_s_by_category": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
        "top_kernels": dict(sorted(top.items(), key=lambda kv: -kv[1])[:10]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--old", type=Path, help="an earlier packed_esm2.py to measure as 'before'")
    parser.add_argument("--models", nargs="+", default=["esm2_t33_650M_UR50D", "esm2_t36_3B_UR50D"])
    parser.add_argument("--max-tokens", type=int, default=131072)
    parser.add_argument("--variants", nargs="+", default=["before", "torch-exact", "triton-exact", "triton-tanh"])
    args = parser.parse_args()
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "fc1": {}, "forward": {}}

    def save():
        args.out.write_text(json.dumps(results, indent=1))

    old = None
    if args.old:
        spec = importlib.util.spec_from_file_location("old_packed_esm2", args.old)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
    batches = proteome_batches(args.max_tokens)
    for name in args.models:
        layers, dim, heads = ARCHITECTURES[name]
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = esm.model.esm2.ESM2(layers, dim, heads, alphabet="ESM-1b").eval()
        t0 = time.perf_counter()
        expected = reference_means(model, batches)
        print(f"{name}: fair-esm fp32 reference in {time.perf_counter() - t0:.1f} s", flush=True)
        results["fc1"][name] = fc1_bench(dim, args.max_tokens)
        print(json.dumps(results["fc1"][name], indent=1), flush=True)
        results["forward"][name] = {}
        for variant in args.variants:
            if variant == "before":
                if old is None:
                    continue
                packed = old.PackedESM2(model, dtype=torch.bfloat16, compile=True)
            else:
                kernels, gelu, *attention = variant.split("-", 2)
                packed = PackedESM2(
                    model,
                    dtype=torch.bfloat16,
                    kernels=kernels,
                    gelu=gelu,
                    attention=attention[0] if attention else "auto",
                )
            r = measure(packed, batches, expected)
            results["forward"][name][variant] = r
            save()
            print(
                f"{name} {variant:14s} {r['tokens_per_s']:>10,.0f} tokens/s  first pass {r['first_pass_s']:.1f} s  "
                f"cos min {r['cos_min']:.7f} mean {r['cos_mean']:.7f}  "
                + "  ".join(f"{k} {v * 1e3:.0f} ms" for k, v in r["kernel_s_by_category"].items()),
                flush=True,
            )
            for k, v in list(r["top_kernels"].items())[:8]:
                print(f"    {v * 1e3:7.1f} ms  {k}", flush=True)
            del packed
            torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()
    save()


if __name__ == "__main__":
    main()
