"""FP8 levers probed in one run: speed and accuracy of each lever combination, beside bf16 and the floors.

For each ESM-2 size (random weights at the real sizes, built on the device from ``--seed``)
and the proteome (``bench_data.proteome``, 404 proteins) packed at ``--max-tokens`` and
resident on the device, per variant:

* ``tokens_per_s``: PackedESM2 forward + mean pooling, the median of ``--passes`` timed passes
  (CUDA events) after a warm-up pass, which also compiles the kernels;
* ``cosine``: per-sequence cosine (min, mean) of the mean embeddings against fair-esm's
  float32 padded forward, on the random model and on its two outlier copies
  (``esm2.outliers``: LayerNorm channels scaled 20-100x; "massive activations" in the residual
  stream); each reference is computed once and shared by every variant.

Variants: ``bf16`` (native matmuls), then FP8 with levers (``Fp8Levers``): ``fp8-all`` (every
matmul in FP8, no folding), ``+fold1`` / ``+fold0.5`` (LayerNorm folded, alpha 1 or 0.5),
``+ends`` (first and last blocks bf16), ``+fc2`` (fc2 bf16), ``fp8-default`` (the default:
fold 1, attention projections bf16) and its ``+ends`` and ``+fast-accum``.

Floors, the linear layers' matmuls alone at the same packed token counts, each layer with its
own weights: ``matmul-floor-bf16`` (``F.linear``) and ``matmul-floor-fp8`` (``torch._scaled_mm``,
e4m3, row-wise scales, bf16 out).

JSON goes to ``--out``; a markdown table is printed and written beside it (``.md``). On an H200:

    python benchmarks/fp8_levers.py --out benchmarks/results/fp8_levers.json

CPU smoke run, a tiny model through the test-only CPU FP8 path on the first 16 proteins, in
seconds (its figures say only that everything runs; keep its output out of results):

    python benchmarks/fp8_levers.py --device cpu --model tiny --out /tmp/fp8_smoke.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import esm
import torch
import torch.nn.functional as F

from bench_data import proteome, write_fasta
from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.models import ARCHITECTURES, ForwardOptions, Fp8Levers, PackedESM2, mean_pool
from virnucpro.models.common.fp8 import Fp8Matmul, cpu_fp8_for_tests, quantise_rows
from virnucpro.models.common.kernels import select_kernels
from virnucpro.models.esm2.outliers import OUTLIERS, with_outliers

MODELS = {"esm2_t36_3B_UR50D": ARCHITECTURES["esm2_t36_3B_UR50D"], "esm2_t33_650M_UR50D": ARCHITECTURES[
    "esm2_t33_650M_UR50D"], "tiny": (3, 64, 4)}  # fmt: skip
# Every variant names each lever it sets, so the names keep their meaning when a library default changes:
# "default" is fold 1 with the attention projections in bf16, exact accumulation; the library's default
# (Fp8Levers()) is "fp8-default+fast-accum".
EXACT = {"fast_accum": False}
ALL = {"bf16_attention": False, **EXACT}
VARIANTS: dict[str, Fp8Levers | None] = {
    "bf16": None,
    "fp8-all": Fp8Levers(fold=None, **ALL),
    "fp8-all+fold1": Fp8Levers(fold=1.0, **ALL),
    "fp8-all+fold0.5": Fp8Levers(fold=0.5, **ALL),
    "fp8-all+fold1+ends": Fp8Levers(bf16_ends=True, **ALL),
    "fp8-all+fold1+fc2": Fp8Levers(bf16_fc2=True, **ALL),
    "fp8-default": Fp8Levers(**EXACT),
    "fp8-default+ends": Fp8Levers(bf16_ends=True, **EXACT),
    "fp8-default+fast-accum": Fp8Levers(fast_accum=True),
    "fp8-all+fast-accum": Fp8Levers(fold=None, bf16_attention=False, fast_accum=True),
}
REFERENCE_TOKENS = 16384  # padded tokens per fair-esm batch
Batch = tuple[torch.Tensor, torch.Tensor, int]


def packed_batches(max_tokens: int, device: torch.device, limit: int | None) -> list[Batch]:
    """The proteome (its first ``limit`` proteins) as the pipeline packs it, tokenised and moved to ``device``."""
    collate = VarlenCollator(esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter())
    with tempfile.TemporaryDirectory() as tmp:
        fasta = Path(tmp) / "proteome.faa"
        write_fasta(proteome()[:limit], fasta)
        dataset = SequenceDataset([fasta], max_length=1022, max_tokens=max_tokens, report=False)
        batches = [collate(records) for records in dataset.batches()]
    return [(b["input_ids"].to(device), b["cu_seqlens"].to(device), b["max_seqlen"]) for b in batches]


@torch.no_grad()
def reference_means(model: esm.model.esm2.ESM2, batches: list[Batch]) -> list[torch.Tensor]:
    """fair-esm's float32 padded forward, mean over residues, per packed batch (N, E) in its order."""
    out = []
    for ids, cu_seqlens, _ in batches:
        bounds = cu_seqlens.tolist()
        sequences = [ids[s:e] for s, e in zip(bounds[:-1], bounds[1:])]
        means = [None] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        while order:  # groups of similar length, at most REFERENCE_TOKENS padded tokens
            size = max(1, REFERENCE_TOKENS // len(sequences[order[min(len(order), 64) - 1]]))
            group, order = order[: min(size, 64)], order[min(size, 64) :]
            tokens = torch.nn.utils.rnn.pad_sequence(
                [sequences[i] for i in group], batch_first=True, padding_value=model.padding_idx
            )
            reps = model(tokens, repr_layers=[model.num_layers])["representations"][model.num_layers]
            for k, i in enumerate(group):
                means[i] = reps[k, 1 : len(sequences[i]) - 1].mean(0)
        out.append(torch.stack(means))
    return out


def seconds(fn: Callable[[], Any], device: torch.device, passes: int) -> tuple[Any, list[float]]:
    """fn's warm-up result and the seconds of ``passes`` timed calls after it."""
    result = fn()
    runs = []
    for _ in range(passes):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            runs.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
    return result, runs


def options(levers: Fp8Levers | None) -> ForwardOptions:
    return ForwardOptions() if levers is None else ForwardOptions(matmul="fp8", fp8=levers)


def forward_pass(packed: PackedESM2, batches: list[Batch]) -> list[torch.Tensor]:
    layer = packed.num_layers
    return [mean_pool(packed(i, c, m, repr_layers=[layer])["representations"][layer], c) for i, c, m in batches]


def cosine(got: list[torch.Tensor], want: list[torch.Tensor]) -> list[float]:
    c = torch.cat([F.cosine_similarity(g.float(), w, dim=1) for g, w in zip(got, want)])
    return [c.min().item(), c.mean().item()]


def matmul_floor(dim: int, num_layers: int, counts: list[int], fp8: bool, device: torch.device, passes: int):
    """Seconds of each timed pass of the linear layers' matmuls alone (QKV, out, fc1, fc2; no bias)
    over packed batches of ``counts`` tokens, bf16 ``F.linear`` or e4m3 ``_scaled_mm`` with row-wise scales."""
    g = torch.Generator(device).manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device, dtype=torch.bfloat16)

    shapes = ((3 * dim, dim), (dim, dim), (4 * dim, dim), (dim, 4 * dim))  # (out, in)
    weights = [[randn(n, k) / k**0.5 for n, k in shapes] for _ in range(num_layers)]
    inputs = {dim: randn(max(counts), dim), 4 * dim: randn(max(counts), 4 * dim)}
    if fp8:
        weights = [[quantise_rows(w) for w in layer] for layer in weights]
        inputs = {k: quantise_rows(v) for k, v in inputs.items()}

    def one_pass() -> None:
        for t in counts:
            for layer in weights:
                for (_, k), w in zip(shapes, layer):
                    a = inputs[k]
                    if fp8:
                        torch._scaled_mm(
                            a.codes[:t], w.codes.t(), scale_a=a.scale[:t], scale_b=w.scale.view(1, -1),
                            out_dtype=torch.bfloat16,
                        )  # fmt: skip
                    else:
                        F.linear(a[:t], w)

    return seconds(one_pass, device, passes)[1]


def measure_variant(name: str, models: dict, refs: dict, batches: list[Batch], args) -> dict[str, Any]:
    """Speed on the random model, cosine against fair-esm on every model, for one variant."""
    levers, device = VARIANTS[name], args.device
    row: dict[str, Any] = {"levers": "native bf16" if levers is None else levers.describe(), "cosine": {}}
    tokens = sum(ids.numel() for ids, _, _ in batches)
    for kind, model in models.items():
        with cpu_fp8_for_tests() if device.type == "cpu" else contextlib.nullcontext():
            packed = PackedESM2(model, dtype=torch.bfloat16, device=device, options=options(levers))
        if kind == "random":
            got, runs = seconds(functools.partial(forward_pass, packed, batches), device, args.passes)
            row |= {"tokens_per_s": tokens / statistics.median(runs), "tokens_per_s_runs": [tokens / r for r in runs]}
            row["options"] = packed.options.as_dict()
        else:
            got = forward_pass(packed, batches)
        row["cosine"][kind] = cosine(got, refs[kind])
        del packed, got
    return row


def run_model(name: str, args, batches: list[Batch], save: Callable[[str, dict], None]) -> None:
    layers, dim, heads = MODELS[name]
    device, t0 = args.device, time.perf_counter()
    torch.manual_seed(args.seed)
    with torch.device(device):
        base = esm.model.esm2.ESM2(layers, dim, heads, alphabet="ESM-1b").eval()
    models = {"random": base} | {kind: with_outliers(base, kind, seed=args.seed) for kind in OUTLIERS}
    refs = {kind: reference_means(model, batches) for kind, model in models.items()}
    counts = [ids.numel() for ids, _, _ in batches]
    doc: dict[str, Any] = {"tokens": sum(counts), "batches": len(batches), "reference_s": time.perf_counter() - t0}
    print(f"{name}: {sum(counts):,} tokens in {len(batches)} batches; 3 fair-esm fp32 references "
          f"in {doc['reference_s']:.1f} s", flush=True)  # fmt: skip
    doc["floors"] = {}
    for fp8 in (False, True):
        runs = matmul_floor(dim, layers, counts, fp8, device, args.passes)
        median = statistics.median(runs)
        doc["floors"][f"matmul-floor-{'fp8' if fp8 else 'bf16'}"] = {
            "tokens_per_s": sum(counts) / median, "tflops_per_s": 24 * dim * dim * layers * sum(counts) / median / 1e12,
        }  # fmt: skip
    doc["variants"] = {}
    for variant in args.variants:
        doc["variants"][variant] = r = measure_variant(variant, models, refs, batches, args)
        save(name, doc)
        print(f"  {variant:24s} {r['tokens_per_s']:>11,.0f} tokens/s  " + "  ".join(
            f"{k} {lo:.6f}/{mean:.6f}" for k, (lo, mean) in r["cosine"].items()
        ) + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    del models, refs, base
    if device.type == "cuda":
        torch.cuda.empty_cache()


def markdown(results: dict[str, Any]) -> str:
    lines = [f"FP8 levers on {results['device']} (torch {results['torch']}; bias in _scaled_mm's epilogue: "
             f"{results['bias_in_epilogue']}). Cosine vs fair-esm fp32, per sequence, min / mean.", ""]  # fmt: skip
    for name, doc in results["models"].items():
        bf16 = doc["variants"].get("bf16", {}).get("tokens_per_s")
        floor8 = doc["floors"]["matmul-floor-fp8"]["tokens_per_s"]
        lines += [f"### {name}: {doc['tokens']:,} tokens, {doc['batches']} batches", "",
                  "| variant | tokens/s | × bf16 | of fp8 floor | random | norm-scale | massive |",
                  "|---|---:|---:|---:|---|---|---|"]  # fmt: skip
        for variant, r in doc["variants"].items():
            speedup = f"{r['tokens_per_s'] / bf16:.2f}" if bf16 else "–"
            cos = " | ".join(f"{lo:.5f} / {mean:.5f}" for lo, mean in r["cosine"].values())
            lines.append(
                f"| {variant} | {r['tokens_per_s']:,.0f} | {speedup} | {r['tokens_per_s'] / floor8:.2f} | {cos} |"
            )
        for floor, f in doc["floors"].items():
            lines.append(f"| {floor} | {f['tokens_per_s']:,.0f} | – | – | {f['tflops_per_s']:.1f} TFLOP/s | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", dest="models", nargs="+", choices=sorted(MODELS),
                        default=["esm2_t36_3B_UR50D", "esm2_t33_650M_UR50D"])  # fmt: skip
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--device", type=torch.device, default=torch.device("cuda"))
    parser.add_argument("--max-tokens", type=int, default=131072)
    parser.add_argument("--passes", type=int, help="timed passes, median kept (default 3; 1 on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="first proteins of the proteome only (default all; 16 on the CPU)")
    args = parser.parse_args(argv)
    args.passes = args.passes or (3 if args.device.type == "cuda" else 1)
    args.limit = args.limit or (None if args.device.type == "cuda" else 16)
    with cpu_fp8_for_tests() if args.device.type == "cpu" else contextlib.nullcontext():
        probe = Fp8Matmul(args.device, select_kernels("auto", args.device), "tanh", Fp8Levers())
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu",
        "torch": torch.__version__, "bias_in_epilogue": probe.bias_in_epilogue, "passes": args.passes,
        "max_tokens": args.max_tokens, "seed": args.seed, "limit": args.limit, "models": {},
    }  # fmt: skip

    def save(name: str, doc: dict) -> None:
        results["models"][name] = doc
        args.out.write_text(json.dumps(results, indent=1))

    batches = packed_batches(args.max_tokens, args.device, args.limit)
    for name in args.models:
        run_model(name, args, batches, save)
    table = markdown(results)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
