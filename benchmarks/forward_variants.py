"""The packed forward's speed per set of forward options, in one run on one GPU.

For each ESM-2 size (random weights): tokens/s of the bf16 packed forward + mean pooling
over the proteome, packed at 131,072 tokens and resident on the GPU, per variant; the
per-sequence cosine of its mean embeddings against fair-esm's fp32 padded forward
(esm-extract's loop, ``tests/esm_reference.py``); and kernel time by category from the
torch profiler. Also fc1 (+ bias + GELU) alone.

Variants are ``kernels-gelu[-attention]``, the ``ForwardOptions`` fields (attention "auto"
when left out), e.g. ``torch-exact``, ``triton-exact``, ``triton-tanh-torch-varlen``,
``triton-tanh-triton``. Timing is CUDA-event time (``timing.median_seconds``).

The committed results were made with earlier versions of this file, whose reference
grouped each packed batch's sequences 64 at a time instead of esm-extract's batches (the
same values to float32 rounding):

- ``forward_variants.json``, at 7b23949, where a ``before`` variant measured an earlier
  ``packed_esm2.py`` given with ``--old`` (whole blocks through ``torch.compile(dynamic=True)``;
  that option is gone, check out 7b23949 to repeat it), when "auto" attention meant
  torch-varlen::

    git show 0d71176:virnucpro/models/packed_esm2.py | sed 's/^from \\.\\(attention\\|segments\\)/from virnucpro.models.\\1/' > old.py
    python benchmarks/forward_variants.py --old old.py --out forward_variants.json

- ``forward_variants_attention.json``, at af60677, the attention step::

    python benchmarks/forward_variants.py --variants triton-tanh-torch-varlen triton-tanh-triton \\
        --out forward_variants_attention.json
"""

from __future__ import annotations

import argparse
import functools
import json
from collections import defaultdict
from pathlib import Path

import _paths  # noqa: F401  (tests/ on sys.path: the fair-esm reference loop)
import esm
import torch
import torch.nn.functional as F
from esm.data import FastaBatchedDataset
from esm_reference import esm_extract_batches, esm_extract_means, in_input_order
from timing import median_seconds, wall_seconds
from torch.profiler import ProfilerActivity, profile

from virnucpro.data import PackedBatch, SequenceDataset, VarlenCollator
from virnucpro.models import ARCHITECTURES, ForwardOptions, PackedESM2, mean_pool

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
PROTEOME = EXAMPLES / "MIIJ01000039.single.faa.gz"
REFERENCE_TOKS_PER_BATCH = 8192  # fair-esm's padded batches; memory, not speed, matters here
CATEGORIES = (  # first match wins: flash kernels carry cutlass names in their template arguments
    ("attention", ("flash", "fmha", "attention")),
    ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "wgmma", "cublas")),
    ("triton", ("triton",)),
    ("copy", ("memcpy", "memset", "copy")),
    ("eager elementwise / norm / index", ("elementwise", "reduce", "norm", "index", "gather", "scatter", "cat")),
)
FRAMEWORK_EVENTS = ("aten::", "torch::", "inductor", "Torch-Compiled", "CompiledFunction")


def category(kernel: str) -> str:
    name = kernel.lower()
    for label, needles in CATEGORIES:
        if any(n in name for n in needles):
            return label
    return "other"


def options(variant: str) -> ForwardOptions:
    """``kernels-gelu[-attention]`` as ``ForwardOptions``; attention "auto" when left out."""
    kernels, gelu, *attention = variant.split("-", 2)
    return ForwardOptions(attention=attention[0] if attention else "auto", kernels=kernels, gelu=gelu)


def fc1_bench(dim: int, tokens: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4 * dim, dim, device="cuda", dtype=torch.bfloat16) / dim**0.5
    b = torch.randn(4 * dim, device="cuda", dtype=torch.bfloat16)
    exact = torch.compile(lambda x, w, b: F.gelu(F.linear(x, w, b)))
    epilogue = lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True)  # noqa: E731
    out = {
        "linear": median_seconds(lambda: F.linear(x, w, b), 10),
        "linear+gelu eager": median_seconds(lambda: F.gelu(F.linear(x, w, b)), 10),
        "linear+gelu compiled": median_seconds(lambda: exact(x, w, b), 10),
        "addmm_activation (cuBLASLt GELU epilogue)": median_seconds(epilogue, 10),
    }
    ref = F.gelu(F.linear(x.float(), w.float(), b.float()))
    tanh = F.gelu(F.linear(x, w, b), approximate="tanh")
    for name, y in (("exact", F.gelu(F.linear(x, w, b))), ("tanh epilogue", epilogue()), ("tanh", tanh)):
        out[f"max abs vs fp32 exact: {name}"] = (y.float() - ref).abs().max().item()
    out["max abs tanh epilogue vs tanh"] = (epilogue().float() - tanh.float()).abs().max().item()
    return out


def proteome_batches(max_tokens: int) -> tuple[list[tuple[str, str]], list[PackedBatch]]:
    """The proteome's records as (id, sequence), in input order, and their packed batches."""
    collate = VarlenCollator(esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter())
    dataset = SequenceDataset([PROTEOME], max_tokens=max_tokens, report=False)
    records = list(dataset.records())
    assert [r.index for r in records] == list(range(len(records))), "records out of input order"
    return [(r.id, r.sequence) for r in records], [collate(batch) for batch in dataset.batches()]


def reference_means(model, records: list[tuple[str, str]], batches: list[PackedBatch]) -> list[torch.Tensor]:
    """fair-esm's fp32 padded forward, esm-extract's mean over residues, per packed batch on the model's device."""
    dataset = FastaBatchedDataset(*zip(*records))
    groups = esm_extract_batches(dataset, REFERENCE_TOKS_PER_BATCH)
    converter = model.alphabet.get_batch_converter()
    means = in_input_order(esm_extract_means(model, converter, dataset, groups, model.num_layers), groups)
    device = model.embed_tokens.weight.device
    return [means[b.indices].to(device) for b in batches]


def kernel_seconds(one_pass) -> tuple[dict[str, float], dict[str, float]]:
    """GPU kernel seconds of one pass from the torch profiler: by category, and the 10 longest kernels."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        one_pass()
        torch.cuda.synchronize()
    cats: dict[str, float] = defaultdict(float)
    top: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", 0)
        if us <= 0 or ev.key.startswith(FRAMEWORK_EVENTS):
            continue
        cats[category(ev.key)] += us / 1e6
        top[ev.key[:80]] += us / 1e6
    return dict(sorted(cats.items(), key=lambda kv: -kv[1])), dict(sorted(top.items(), key=lambda kv: -kv[1])[:10])


def measure(packed: PackedESM2, batches: list[PackedBatch], expected: list[torch.Tensor]) -> dict:
    dev = [b.to("cuda") for b in batches]
    layer = packed.num_layers

    def one_pass():
        return [mean_pool(packed(b, repr_layers=[layer])["representations"][layer], b.cu_seqlens) for b in dev]

    got, first = wall_seconds(one_pass, "cuda")
    seconds = median_seconds(one_pass, 3)
    cos = torch.cat([F.cosine_similarity(g.float(), e, dim=1) for g, e in zip(got, expected)])
    cats, top = kernel_seconds(one_pass)
    return {
        "options": packed.options.as_dict(),
        "tokens_per_s": sum(b.num_tokens for b in dev) / seconds,
        "seconds_per_pass": seconds,
        "first_pass_s": first,
        "cos_min": cos.min().item(),
        "cos_mean": cos.mean().item(),
        "gpu_busy_fraction": sum(cats.values()) / seconds,
        "kernel_s_by_category": cats,
        "top_kernels": top,
    }


def report(name: str, variant: str, r: dict) -> None:
    print(
        f"{name} {variant:14s} {r['tokens_per_s']:>10,.0f} tokens/s  first pass {r['first_pass_s']:.1f} s  "
        f"cos min {r['cos_min']:.7f} mean {r['cos_mean']:.7f}  "
        + "  ".join(f"{k} {v * 1e3:.0f} ms" for k, v in r["kernel_s_by_category"].items()),
        flush=True,
    )
    for k, v in list(r["top_kernels"].items())[:8]:
        print(f"    {v * 1e3:7.1f} ms  {k}", flush=True)


def run_model(name: str, args: argparse.Namespace, records, batches, results: dict, save) -> None:
    """fc1 alone, then every variant, for one ESM-2 size; ``save`` after each variant."""
    layers, dim, heads = ARCHITECTURES[name]
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = esm.model.esm2.ESM2(layers, dim, heads, alphabet="ESM-1b").eval()
    expected, seconds = wall_seconds(functools.partial(reference_means, model, records, batches), "cuda")
    print(f"{name}: fair-esm fp32 reference in {seconds:.1f} s", flush=True)
    results["fc1"][name] = fc1_bench(dim, args.max_tokens)
    print(json.dumps(results["fc1"][name], indent=1), flush=True)
    results["forward"][name] = {}
    for variant in args.variants:
        packed = PackedESM2(model, dtype=torch.bfloat16, options=options(variant))
        results["forward"][name][variant] = measure(packed, batches, expected)
        save()
        report(name, variant, results["forward"][name][variant])
        del packed
        torch.cuda.empty_cache()
    del model
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["esm2_t33_650M_UR50D", "esm2_t36_3B_UR50D"])
    parser.add_argument("--max-tokens", type=int, default=131072)
    parser.add_argument(
        "--variants", nargs="+", default=["torch-exact", "triton-exact", "triton-tanh"], help="kernels-gelu[-attention]"
    )
    args = parser.parse_args()
    for variant in args.variants:
        try:
            options(variant)
        except (TypeError, ValueError) as err:
            parser.error(f"--variants {variant}: {err}")
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "fc1": {}, "forward": {}}

    def save():
        args.out.write_text(json.dumps(results, indent=1))

    records, batches = proteome_batches(args.max_tokens)
    for name in args.models:
        run_model(name, args, records, batches, results, save)
    save()


if __name__ == "__main__":
    main()
