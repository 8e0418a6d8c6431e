"""A gated linear unit's (T, E) => (T, I) on one GPU: cuBLAS's matmul then the one-pass gated-GELU kernel
(the unfused form), beside the matmul with the gated GELU in its epilogue (``_triton_gated_linear``) for
each candidate tile configuration, through TMA descriptors and through plain pointers.

Also the matmul alone, the floor a fused kernel approaches. DNABERT-S's shape (E 768, I 3072) at a
full batch of 131,072 tokens and at a count that leaves a partial row tile. Each figure is the median
of ``--repeats`` CUDA-event-timed calls after a warm-up; the error is the largest |difference| from
the float32 product's GELU(gate) * value over the first 4,096 rows, beside the unfused form's.

    python benchmarks/gated_linear.py --out benchmarks/results/gated_linear.json   # GPU only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _paths  # noqa: F401
import torch
import torch.nn.functional as F
from timing import median_seconds

import triton
import triton.language as tl
from torch import Tensor

from virnucpro.models.common import _triton_gated_linear
from virnucpro.models.common.kernels import gated_gelu_torch

CONFIGS = [  # (variant, (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages))
    *((v, c) for c in [(128, 128, 64, 8, 3), (128, 128, 64, 8, 4), (128, 64, 64, 4, 4), (128, 64, 64, 8, 4),
                       (128, 64, 64, 4, 3), (64, 128, 64, 4, 4), (256, 64, 64, 8, 3), (128, 128, 32, 8, 4),
                       (64, 64, 64, 4, 4)] for v in ("tma", "ptr")),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="131072,100003")
    parser.add_argument("--embed", type=int, default=768)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("gated_linear.json"))
    args = parser.parse_args()
    rows = []
    for tokens in map(int, args.tokens.split(",")):
        rows += measure(tokens, args.embed, args.intermediate, args.repeats)
    args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))
    report = render(rows, torch.cuda.get_device_name())
    args.out.with_suffix(".md").write_text(report)
    print(report)


def measure(tokens: int, embed: int, intermediate: int, repeats: int) -> list[dict]:
    g = torch.Generator("cuda").manual_seed(tokens)
    x = torch.randn(tokens, embed, device="cuda", generator=g).bfloat16()
    w = (torch.randn(2 * intermediate, embed, device="cuda", generator=g) / embed**0.5).bfloat16()
    want = gated_gelu_torch(F.linear(x[:4096].float(), w.float()), "none")
    flops = 2 * tokens * embed * 2 * intermediate

    def row(system: str, fn, out=None) -> dict:
        seconds = median_seconds(fn, repeats)
        err = None if out is None else (out[:4096].float() - want).abs().max().item()
        return {
            "tokens": tokens,
            "system": system,
            "ms": seconds * 1e3,
            "tflops": flops / seconds / 1e12,
            "max_err": err,
        }

    rows = [
        row("cuBLAS matmul alone", lambda: F.linear(x, w)),
        row("unfused: matmul + gated GELU", lambda: gated_gelu(F.linear(x, w), "none"),
            gated_gelu(F.linear(x, w), "none")),
    ]  # fmt: skip
    for variant, config in CONFIGS:
        name = f"fused {variant} {'/'.join(map(str, config))}"
        try:
            out = _triton_gated_linear.gated_linear(x, w, "none", config, variant)
            rows.append(
                row(name, lambda c=config, v=variant: _triton_gated_linear.gated_linear(x, w, "none", c, v), out)
            )
        except Exception as err:  # a configuration the GPU cannot hold (shared memory, registers)
            rows.append({"tokens": tokens, "system": name, "error": f"{type(err).__name__}: {err}"[:200]})
    return rows


# The unfused form's second pass: the library's one-pass gated-GELU kernel until the fused one replaced it.
#: Columns per program: 3072-wide DNABERT-S rows are three programs each, enough to fill the GPU
#: at any batch the pipeline runs, each program moving 4 KiB per bf16 row read.
_BLOCK = 1024


@triton.jit
def _gated_gelu_kernel(x_ptr, out_ptr, n_cols, x_stride, TANH: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    gate = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
    value = tl.load(x_ptr + row * x_stride + n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    # Constants inline: a @triton.jit function reads no plain module globals. sqrt(2 / pi), sqrt(1 / 2).
    if TANH:
        inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
        gelu = gate * tl.sigmoid(2.0 * inner)  # 0.5 * (1 + tanh(u)) == sigmoid(2u)
    else:
        gelu = 0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476))
    tl.store(out_ptr + row * n_cols + cols, (gelu * value).to(out_ptr.dtype.element_ty), mask=mask)


def gated_gelu(x: Tensor, approximate: str) -> Tensor:
    """As ``kernels.gated_gelu_torch``; x (T, 2I) with unit stride along its width."""
    if x.ndim != 2 or x.shape[1] % 2 or x.stride(1) != 1:
        raise ValueError(f"gated_gelu needs (T, 2I) x with unit stride along its width, got {tuple(x.shape)}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate={approximate!r} is unknown; choose 'none' (erf) or 'tanh'")
    rows, width = x.shape
    n_cols = width // 2
    out = torch.empty(rows, n_cols, dtype=x.dtype, device=x.device)
    if rows:
        grid = (rows, triton.cdiv(n_cols, _BLOCK))
        _gated_gelu_kernel[grid](
            x, out, n_cols, x.stride(0), TANH=approximate == "tanh", BLOCK=_BLOCK, num_warps=4
        )  # fmt: skip
    return out


def render(rows: list[dict], device: str) -> str:
    lines = [
        f"# Gated linear unit (T, 768) => (T, 3072), bf16, on {device}",
        "",
        "Generated by `benchmarks/gated_linear.py`. Fused configurations: BLOCK_M/BLOCK_N/BLOCK_K/warps/stages.",
        "",
        "| tokens | system | ms | TFLOP/s | max error |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tokens']:,} | {r['system']} | failed: {r['error']} | | |")
        else:
            err = "" if r["max_err"] is None else f"{r['max_err']:.2e}"
            lines.append(f"| {r['tokens']:,} | {r['system']} | {r['ms']:.3f} | {r['tflops']:.0f} | {err} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
