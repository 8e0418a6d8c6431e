"""``ForwardOptions``: how a packed model computes, as one validated, frozen value.

The same object travels from the CLI through ``EmbedConfig`` into the packed model, the
resume fingerprint and the output's attributes. Built with "auto" where a choice depends
on the device and dtype; ``resolve`` turns it into the concrete choice for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .common.attention import BACKENDS, select_attention
from .common.kernels import KERNELS, select_kernels

__all__ = ["ForwardOptions", "GELUS", "MATMULS"]

GELUS = ("exact", "tanh")
#: "native": matmuls in the compute dtype.
MATMULS = ("native",)
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
    """

    attention: str = "auto"
    kernels: str = "auto"
    gelu: str = "auto"
    matmul: str = "native"

    def __post_init__(self) -> None:
        for name, value, known, flag in (
            ("attention", self.attention, BACKENDS, "--attention"),
            ("kernels", self.kernels, KERNELS, "--kernels"),
            ("gelu", self.gelu, GELUS, "--gelu"),
            ("matmul", self.matmul, MATMULS, "--dtype"),
        ):
            choices = known if name == "matmul" else ("auto", *known)
            if value not in choices:
                raise ValueError(f"{name}={value!r} is unknown; choose one of {choices} (CLI: {flag})")

    def resolve(self, device: torch.device | str, dtype: torch.dtype) -> ForwardOptions:
        """The concrete options a packed model on ``device`` computing in ``dtype`` uses.

        Raises ``ValueError`` for a choice that cannot run there, naming it and the fix.
        """
        device = torch.device(device)
        if self.gelu == "auto":
            gelu = "tanh" if device.type == "cuda" and dtype in _HALF else "exact"
        else:
            gelu = self.gelu
        return ForwardOptions(
            attention=select_attention(self.attention, device, dtype)[0],
            kernels=select_kernels(self.kernels, device).name,
            gelu=gelu,
            matmul=self.matmul,
        )

    def as_dict(self) -> dict[str, str]:
        """The options by field name, as the fingerprint and the output's attributes store them."""
        return asdict(self)
