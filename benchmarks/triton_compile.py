"""How long Triton takes to compile the bf16 forward's kernels from an empty cache, one after another or in threads.

Each run is a fresh process with its own empty TRITON_CACHE_DIR, as the first process on a
machine sees it; the first kernel also pays for Triton's one-time driver set-up. On the GPU:

    for m in serial threads serial threads; do python benchmarks/triton_compile.py $m; done

Results: ``benchmarks/results/triton_compile.txt``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time

os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()  # before Triton is imported

import torch  # noqa: E402

EMBED, HEADS, DTYPE, DEVICE = 2560, 40, torch.bfloat16, "cuda"  # 3B's shapes


def layer_norm(triton_kernels, delta: bool) -> None:
    x = torch.randn(64, EMBED, device=DEVICE, dtype=DTYPE)
    weight, bias = torch.ones(EMBED, device=DEVICE, dtype=DTYPE), torch.zeros(EMBED, device=DEVICE, dtype=DTYPE)
    triton_kernels.add_layer_norm(x, x.clone() if delta else None, weight, bias, 1e-5)


def rotary(triton_kernels) -> None:
    qkv = torch.randn(64, 3 * EMBED, device=DEVICE, dtype=DTYPE)
    positions = torch.zeros(64, device=DEVICE, dtype=torch.int32)
    cos, sin = torch.ones(64, 32, device=DEVICE), torch.zeros(64, 32, device=DEVICE)
    triton_kernels.rotary(qkv, positions, cos, sin, HEADS)


def attention(triton_kernels) -> None:
    q = torch.randn(64, HEADS, 64, device=DEVICE, dtype=DTYPE)
    cu_seqlens = torch.tensor([0, 64], dtype=torch.int32, device=DEVICE)
    triton_kernels.varlen_attention(q, q.clone(), q.clone(), cu_seqlens, 64)


def main(mode: str) -> None:
    torch.zeros(1, device=DEVICE)
    torch.cuda.synchronize()
    start = time.time()
    from virnucpro.models.common import _triton

    print("import triton+_triton", round(time.time() - start, 2))
    jobs = [lambda: layer_norm(_triton, True), lambda: layer_norm(_triton, False)]
    jobs += [lambda: rotary(_triton), lambda: attention(_triton)]
    start = time.time()
    if mode == "serial":
        for job in jobs:
            began = time.time()
            job()
            torch.cuda.synchronize()
            print("  kernel", round(time.time() - began, 2))
    else:  # the first alone (Triton's driver set-up is not made for threads), the rest at once
        jobs[0]()
        torch.cuda.synchronize()
        print("  first", round(time.time() - start, 2))
        threads = [threading.Thread(target=job) for job in jobs[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        torch.cuda.synchronize()
    print(mode, "all kernels", round(time.time() - start, 2))


if __name__ == "__main__":
    main(sys.argv[1])
