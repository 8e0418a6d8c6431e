"""Variable-length self-attention over packed sequences, with named backends.

Every backend has the signature of ``AttentionFn``:

    attend(q, k, v, cu_seqlens, max_seqlen, *, alibi_slopes=None) -> out
        q, k, v: (T, H, D), q already scaled (the kernel's own scale is 1.0).
        cu_seqlens: (N + 1,) int32 on q's device, cu_seqlens[0] == 0, cu_seqlens[-1] == T.
        max_seqlen: host int, the longest sequence, max(cu_seqlens.diff()).
        alibi_slopes: None, or (H,) float32 on q's device (``alibi.alibi_slopes``): then the
            score of query i against key j is q_i . k_j - alibi_slopes[h] * |i - j|, i and j
            positions within their own sequence, counted from 0 (ALiBi, as in DNABERT-S).
        out: (T, H, D), q.dtype; each row attends to the rows of its own sequence only.

Backends (``ALIBI_BACKENDS``: those that take alibi_slopes):
    "flash-attn"   flash_attn.flash_attn_varlen_func; CUDA, float16/bfloat16. ALiBi: its own
                   ``alibi_slopes`` (non-causal: -slope * |i - j|).
    "triton"       virnucpro's own FlashAttention-style Triton kernel (``_triton.varlen_attention``);
                   CUDA, float16/bfloat16. On the H200 it takes 26-41 % less time than
                   FlashAttention-2 on ESM-2's 64-wide heads and real length distributions
                   (``benchmarks/results/attention_backends.md``). ALiBi: the bias is computed
                   in float32 inside the kernel, which is compiled without it for None.
    "torch-varlen" torch.nn.attention.varlen.varlen_attn (torch >= 2.10); CUDA, float16/bfloat16.
                   No bias: refuses alibi_slopes.
    "reference"    exact F.scaled_dot_product_attention per sequence; any device and dtype;
                   reads cu_seqlens on the host, so it synchronises on every call. ALiBi: the
                   dense float32 bias added in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .alibi import alibi_bias, check_alibi_slopes

__all__ = ["ALIBI_BACKENDS", "BACKENDS", "AttentionFn", "reference_attention", "select_attention"]


class AttentionFn(Protocol):
    """An attention backend (see module doc)."""

    def __call__(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        *,
        alibi_slopes: Tensor | None = None,
    ) -> Tensor: ...


BACKENDS = ("flash-attn", "triton", "torch-varlen", "reference")
ALIBI_BACKENDS = ("flash-attn", "triton", "reference")
_HALF = (torch.float16, torch.bfloat16)


def reference_attention(
    q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, max_seqlen: int, *, alibi_slopes: Tensor | None = None
) -> Tensor:
    """Exact attention, one ``scaled_dot_product_attention`` call per sequence (see module doc)."""
    if alibi_slopes is not None:
        check_alibi_slopes(alibi_slopes, q)
    bounds = cu_seqlens.tolist()
    out = torch.empty_like(q)
    for start, end in zip(bounds[:-1], bounds[1:]):
        # (L, H, D) => (H, L, D) => (L, H, D)
        q_, k_, v_ = (t[start:end].transpose(0, 1) for t in (q, k, v))
        if alibi_slopes is None:
            out[start:end] = F.scaled_dot_product_attention(q_, k_, v_, scale=1.0).transpose(0, 1)
        else:
            out[start:end] = _biased(q_, k_, v_, alibi_bias(alibi_slopes, end - start)).transpose(0, 1)
    return out


def _biased(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """Exact attention of (H, L, D) q, k, v with an (H, L, L) float32 bias, in float32 or wider.

    A bias of a few hundred (slope × distance) would lose whole units rounded to bfloat16, so
    everything is computed at least in float32 and only the output is rounded to q's dtype.
    """
    work = torch.promote_types(q.dtype, torch.float32)
    out = F.scaled_dot_product_attention(q.to(work), k.to(work), v.to(work), attn_mask=bias.to(work), scale=1.0)
    return out.to(q.dtype)


def _flash_attn() -> AttentionFn:
    from flash_attn import flash_attn_varlen_func

    def attend(
        q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, max_seqlen: int, *, alibi_slopes: Tensor | None = None
    ) -> Tensor:
        if alibi_slopes is not None:
            check_alibi_slopes(alibi_slopes, q)
        return flash_attn_varlen_func(
            q,
            k,
            v,
            cu_seqlens,
            cu_seqlens,
            max_seqlen,
            max_seqlen,
            dropout_p=0.0,
            softmax_scale=1.0,
            causal=False,
            alibi_slopes=alibi_slopes,
        )

    return attend


def _triton() -> AttentionFn:
    if importlib.util.find_spec("triton") is None:
        raise ImportError("triton")
    from ._triton import varlen_attention

    return varlen_attention


def _torch_varlen() -> AttentionFn:
    from torch.nn.attention.varlen import varlen_attn

    def attend(
        q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, max_seqlen: int, *, alibi_slopes: Tensor | None = None
    ) -> Tensor:
        if alibi_slopes is not None:
            raise ValueError(_NO_ALIBI)
        return varlen_attn(q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, scale=1.0)

    return attend


_LOADERS: dict[str, Callable[[], AttentionFn]] = {
    "flash-attn": _flash_attn,
    "torch-varlen": _torch_varlen,
    "triton": _triton,
    "reference": lambda: reference_attention,
}
_NO_ALIBI = (
    "alibi_slopes: attention='torch-varlen' (CLI: --attention torch-varlen) cannot add an ALiBi bias "
    "(varlen_attn takes none); use attention='triton' (CLI: --attention triton) or attention='reference' "
    "(CLI: --attention reference)"
)
_INSTALL = {
    "flash-attn": "install it with `pip install flash-attn`",
    "torch-varlen": f"it needs torch >= 2.10, this is torch {torch.__version__}",
    "triton": "install it with `pip install triton`; CUDA builds of torch include it",
}


def select_attention(
    name: str, device: torch.device | str, dtype: torch.dtype, *, alibi: bool = False
) -> tuple[str, AttentionFn]:
    """Resolve an attention backend for tensors on ``device`` in ``dtype``.

    Args:
        name: "auto" or one of ``BACKENDS``. "auto" picks, for CUDA and float16/bfloat16,
            the first of flash-attn, triton and torch-varlen that is installed (with
            ``alibi``, the first of flash-attn and triton); else reference.
            flash-attn is an optional extra, used when installed; it could not be measured
            here (no wheel for the H200 machine), while triton beat torch-varlen's
            FlashAttention-2 there.
        device: where q, k, v will live.
        dtype: their dtype.
        alibi: the model will pass ``alibi_slopes``: only ``ALIBI_BACKENDS`` will do.

    Returns:
        (the backend's name, its ``AttentionFn``).

    Raises:
        ValueError: unknown name; a backend without ALiBi for ``alibi``; a kernel requested
            for a device or dtype it cannot run on; a kernel whose package is missing.
    """
    device = torch.device(device)
    on_gpu_in_half = device.type == "cuda" and dtype in _HALF
    if name == "auto":
        name = _auto(on_gpu_in_half, alibi)
    if name not in _LOADERS:
        raise ValueError(f"attention (CLI: --attention) must be 'auto' or one of {BACKENDS}, got {name!r}")
    if alibi and name not in ALIBI_BACKENDS:
        raise ValueError(
            f"attention={name!r} (CLI: --attention {name}) cannot add the ALiBi bias this model needs; choose attention "
            f"(CLI: --attention) 'auto' or one of {ALIBI_BACKENDS}"
        )
    if name != "reference" and not on_gpu_in_half:
        raise ValueError(
            f"attention={name!r} (CLI: --attention {name}) runs only on CUDA in float16/bfloat16, not on {device} "
            f"in {dtype}; use attention='reference' (CLI: --attention reference), exact on any device, or "
            "attention='auto' (CLI: --attention auto)"
        )
    try:
        return name, _LOADERS[name]()
    except ImportError as err:
        raise ValueError(
            f"attention={name!r} (CLI: --attention {name}) is unavailable ({_INSTALL[name]}); "
            "or use attention='auto' (CLI: --attention auto)"
        ) from err


def _auto(on_gpu_in_half: bool, alibi: bool) -> str:
    if not on_gpu_in_half:
        return "reference"
    # An installed package that fails to import raises later, in select_attention, rather than being skipped.
    if importlib.util.find_spec("flash_attn") is not None:  # installed on purpose: the user's choice
        return "flash-attn"
    if importlib.util.find_spec("triton") is not None:
        return "triton"
    if not alibi and importlib.util.find_spec("torch.nn.attention.varlen") is not None:
        return "torch-varlen"
    return "reference"
