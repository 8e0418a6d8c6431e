"""``ForwardOptions``: how a packed model computes, as one validated, frozen value.

The same object travels from the CLI through ``EmbedConfig`` into the packed model, the
resume fingerprint and the output's attributes. Built with "auto" where a choice depends
on the device and dtype; ``resolve`` turns it into the concrete choice for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .common.attention import BACKENDS, select_attention
from .common.fp8 import Fp8Levers, fp8_unsupported
from .common.kernels import KERNELS, select_kernels

__all__ = ["ForwardOptions", "GELUS", "MATMULS", "RESIDUALS"]

GELUS = ("exact", "tanh")
#: How a pre-LayerNorm model carries its residual stream in half precision. "compute": in the
#: compute dtype, as fair-esm's half-precision forward does. "float32": in float32, only the
#: LayerNorm outputs rounded for the matmuls (Megatron's ``fp32_residual_connection``). In bf16 the
#: rounded stream is most of the error of a 1- or 2-residue protein's mean embedding: 1 - cosine
#: 1.4e-4 against float32, 4.8e-5 with "float32" (``benchmarks/results/bf16_floor.md``), for about
#: half again the add + LayerNorm kernels' memory traffic.
RESIDUALS = ("compute", "float32")
#: "native": matmuls in the compute dtype. "fp8": e4m3 matmuls, bf16 around them, on GPUs
#: with FP8 tensor cores (``common.fp8``).
MATMULS = ("native", "fp8")
_HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class ForwardOptions:
    """How the packed forward runs; every name is checked here, at construction.

    Attributes:
        attention: "auto" or one of ``attention.BACKENDS`` (CLI ``--attention``). "auto" is
            flash-attn when installed, else our Triton kernel, on CUDA in fp16/bf16; else
            the exact reference.
        kernels: "auto", "triton" or "torch": how the residual adds, LayerNorms and rotary
            between the matmuls run (CLI ``--kernels``); "auto" is Triton on CUDA.
        gelu: "auto", "exact" (erf, as fair-esm) or "tanh" (CLI ``--gelu``); "auto" is tanh,
            in the fc1 matmul's epilogue, in fp16/bf16 on CUDA, where it is far below the
            rounding of the dtype, else exact.
        matmul: the matmul implementation, one of ``MATMULS`` (``common.matmul``).
        fp8: the accuracy levers of ``matmul="fp8"`` (``fp8.Fp8Levers``); unused otherwise.
        residual: "auto" or one of ``RESIDUALS`` (CLI ``--residual``); "auto" is "compute". In
            float32 compute both are the same and resolve to "compute". "float32" is for native
            matmuls of pre-LayerNorm models (ESM-2).
    """

    attention: str = "auto"
    kernels: str = "auto"
    gelu: str = "auto"
    matmul: str = "native"
    fp8: Fp8Levers = Fp8Levers()
    residual: str = "auto"

    def __post_init__(self) -> None:
        for name, value, known, flag in (
            ("attention", self.attention, BACKENDS, "--attention"),
            ("kernels", self.kernels, KERNELS, "--kernels"),
            ("gelu", self.gelu, GELUS, "--gelu"),
            ("matmul", self.matmul, MATMULS, "--dtype"),
            ("residual", self.residual, RESIDUALS, "--residual"),
        ):
            choices = known if name == "matmul" else ("auto", *known)
            if value not in choices:
                raise ValueError(f"{name} (CLI: {flag}) must be one of {choices}, got {value!r}")
        if self.matmul == "fp8" and self.residual == "float32":
            raise ValueError(
                "residual='float32' (CLI: --residual float32) is for bf16/fp16 matmuls, not FP8's, whose own "
                "rounding is far larger; use matmul='native' (CLI: --dtype bf16) or residual='auto' (CLI: --residual auto)"
            )
        if not isinstance(self.fp8, Fp8Levers):
            raise TypeError(f"fp8 must be an Fp8Levers, got {type(self.fp8).__name__}")

    def resolve(self, device: torch.device | str, dtype: torch.dtype) -> ForwardOptions:
        """The concrete options a packed model on ``device`` computing in ``dtype`` uses.

        Raises ``ValueError`` for a choice that cannot run there, naming it and the fix.
        """
        device = torch.device(device)
        if self.matmul == "fp8" and (reason := fp8_unsupported(device, dtype)):
            raise ValueError(reason)
        if self.gelu == "auto":
            gelu = "tanh" if device.type == "cuda" and dtype in _HALF else "exact"
        else:
            gelu = self.gelu
        return ForwardOptions(
            attention=select_attention(self.attention, device, dtype)[0],
            kernels=select_kernels(self.kernels, device).name,
            gelu=gelu,
            matmul=self.matmul,
            fp8=self.fp8,
            residual="float32" if self.residual == "float32" and dtype in _HALF else "compute",
        )

    def as_dict(self) -> dict[str, str]:
        """The options by field name, as the fingerprint and the output's attributes store them.

        ``fp8`` (``Fp8Levers.describe``) only with ``matmul="fp8"`` and ``residual`` only when
        "float32": other runs keep the keys they had, so their resume fingerprints still match.
        """
        names = {"attention": self.attention, "kernels": self.kernels, "gelu": self.gelu, "matmul": self.matmul}
        names |= {"fp8": self.fp8.describe()} if self.matmul == "fp8" else {}
        return names | ({"residual": "float32"} if self.residual == "float32" else {})
