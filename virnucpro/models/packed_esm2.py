"""fair-esm's ESM-2 forward over packed sequences: no padding, varlen attention.

Same weights, same layers, same representation keys as ``esm.model.esm2.ESM2``:
token embedding with token-dropout rescale, pre-LayerNorm blocks with rotary
attention over the full head dimension and a GELU MLP, final LayerNorm.

Per block on CUDA: four cuBLAS matmuls with the bias (and, by default in half
precision, the GELU) in their epilogue, one varlen attention kernel, and three
one-pass Triton kernels: residual add + LayerNorm twice, rotary once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2
from esm.modules import TransformerLayer
from torch import Tensor, nn

from .attention import AttentionFn, select_attention
from .kernels import Kernels, select_kernels
from .segments import segment_ids

GELUS = ("auto", "exact", "tanh")

# ESM-2 was trained masking 15 % of tokens, 80 % of those with <mask>; its embeddings
# are rescaled for that rate at inference too (×0.88 when no <mask> is present).
MASK_RATIO_TRAIN = 0.15 * 0.8


class PackedESM2(nn.Module):
    """Inference-only ESM-2 over packed batches, with its own copy of a fair-esm model's weights.

    Args:
        model: a fair-esm ESM-2. It is read, never modified: not its weights, dtype,
            device nor mode.
        dtype: dtype of the copied weights and of the computation; default the model's.
            Rotary angles, token-dropout scales and the rotation itself are float32 always.
        device: where the copy lives; default the model's. To move to another device or
            dtype, build a new PackedESM2: the attention backend is chosen for these.
        attention: "auto" or a backend name from ``attention.BACKENDS``; the one chosen
            is ``self.backend``.
        kernels: "auto", "triton" or "torch": how the work between the matmuls runs
            (``kernels.select_kernels``; "auto" is Triton on CUDA). The one chosen is
            ``self.kernels``. Biases always run in the matmuls' epilogues.
        gelu: "exact" (erf, as fair-esm), "tanh" (the tanh approximation, which on
            CUDA runs in cuBLASLt's fc1 epilogue and saves a pass over the 4E-wide
            activations) or "auto": tanh when computing in float16/bfloat16 on CUDA,
            where it is far below the rounding of the dtype, else exact. The one
            chosen is ``self.gelu``.
    """

    def __init__(
        self,
        model: ESM2,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        attention: str = "auto",
        kernels: str = "auto",
        gelu: str = "auto",
    ):
        super().__init__()
        if not isinstance(model, ESM2):
            raise TypeError(f"model must be a fair-esm esm.model.esm2.ESM2, got {type(model).__name__}")
        source = model.embed_tokens.weight
        dtype = source.dtype if dtype is None else dtype
        device = source.device if device is None else torch.device(device)
        self.backend, self._attend = select_attention(attention, device, dtype)
        self._kernels = select_kernels(kernels, device)
        self.kernels = self._kernels.name
        self.gelu = _resolve_gelu(gelu, device, dtype)

        self.num_layers = model.num_layers
        self.embed_dim = model.embed_dim
        self.attention_heads = model.attention_heads
        self.padding_idx = model.padding_idx
        self.mask_idx = model.mask_idx
        self.cls_idx = model.cls_idx
        self.eos_idx = model.eos_idx
        self.prepend_bos = model.prepend_bos
        self.append_eos = model.append_eos
        self.token_dropout = model.token_dropout

        # Weights are plain tensors copied one by one, not nn.Linear modules: building a
        # module per layer cost more host time (0.1-0.2 s on 3B) than the copy costs the GPU.
        with torch.no_grad():
            self.register_buffer("embed_weight", _copy(model.embed_tokens.weight, dtype, device), persistent=False)
            self.layers = nn.ModuleList(_Block(layer, dtype, device) for layer in model.layers)
            self.final_norm = _Norm.copy(model.emb_layer_norm_after, dtype, device)
        head_dim = self.embed_dim // self.attention_heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.requires_grad_(False)

    def _apply(self, fn, recurse=True):
        raise RuntimeError(
            "PackedESM2 holds a copy of the weights made for one device and dtype, which .to(), "
            ".cuda() and .half() cannot move; build a new PackedESM2(model, dtype=..., device=...)"
        )

    @property
    def device(self) -> torch.device:
        return self.embed_weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_weight.dtype

    @torch.no_grad()
    def forward(
        self,
        input_ids: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        repr_layers: Sequence[int] | None = None,
    ) -> dict[str, dict[int, Tensor]]:
        """Representations of packed sequences, keyed as fair-esm keys them. Runs without autograd.

        Args:
            input_ids: (T,) int64 on ``self.device``, the token ids (from fair-esm's alphabet,
                BOS and EOS included) of N sequences back to back, no padding.
            cu_seqlens: (N + 1,) int32 on ``self.device``, cu_seqlens[0] == 0, non-decreasing,
                cu_seqlens[-1] == T; sequence i is input_ids[cu_seqlens[i] : cu_seqlens[i + 1]].
            max_seqlen: host int, max(cu_seqlens.diff()); passed in so that nothing syncs. It
                must be exact: attention kernels and the rotary tables are sized by it.
            repr_layers: layers to return, each in 0..num_layers; default (num_layers,).
                0 is the embedding (after the token-dropout rescale), k the output of
                block k, num_layers the last block's output after the final LayerNorm.
                Blocks past the highest requested layer are not run.

        Returns:
            {"representations": {layer: (T, E) tensor in ``self.dtype``}}.
        """
        layers = self._check_layers(repr_layers)
        self._check_inputs(input_ids, cu_seqlens, max_seqlen)
        total = input_ids.numel()
        seq = segment_ids(cu_seqlens, total)  # (T,)

        x = F.embedding(input_ids, self.embed_weight)  # (T,) => (T, E)
        if self.token_dropout:
            x = self._rescale_for_masks(x, input_ids, cu_seqlens, seq)

        # Rotary angles in float32: in half precision, positions above 256 (bf16) or
        # 2048 (fp16) are not exact. Positions restart at 0 in every sequence.
        positions = torch.arange(total, device=x.device) - cu_seqlens.long()[seq]  # (T,)
        angles = torch.arange(max_seqlen, device=x.device, dtype=torch.float32)[:, None] * self.inv_freq
        rotary = (positions.to(torch.int32), angles.cos(), angles.sin())  # tables (max_seqlen, D / 2)

        # The residual stream is carried as (x, delta): the MLP's output is added to x by
        # the next LayerNorm's kernel, or here when a layer's output is asked for.
        representations = {0: x} if 0 in layers else {}
        delta = None
        for i, block in enumerate(self.layers[: max(layers)], start=1):
            x, delta = block(x, delta, rotary, cu_seqlens, max_seqlen, self._attend, self._kernels, self.gelu)
            if i == self.num_layers:
                representations[i] = self._kernels.add_layer_norm(x, delta, *self.final_norm)[1]
            elif i in layers:
                x, delta = x + delta, None
                representations[i] = x
        return {"representations": representations}

    def _rescale_for_masks(self, x: Tensor, input_ids: Tensor, cu_seqlens: Tensor, seq: Tensor) -> Tensor:
        """Zero <mask> embeddings and scale each sequence by 0.88 / (1 - its <mask> fraction)."""
        is_mask = input_ids == self.mask_idx  # (T,)
        x = x.masked_fill(is_mask[:, None], 0.0)
        masks = torch.zeros(cu_seqlens.numel() - 1, dtype=torch.float32, device=x.device)
        masks.index_add_(0, seq, is_mask.float())  # (N,) <mask> count per sequence
        scale = (1 - MASK_RATIO_TRAIN) / (1 - masks / cu_seqlens.diff())  # (N,) float32
        return (x * scale[seq, None]).to(x.dtype)

    def _check_layers(self, repr_layers: Sequence[int] | None) -> tuple[int, ...]:
        layers = (self.num_layers,) if repr_layers is None else tuple(repr_layers)
        invalid = [layer for layer in layers if not isinstance(layer, int) or not 0 <= layer <= self.num_layers]
        if not layers or invalid:
            raise ValueError(
                f"repr_layers {list(layers)} has invalid layer(s) {invalid}: this model has layers "
                f"0..{self.num_layers} (0 = embedding, {self.num_layers} = last, after the final LayerNorm)"
            )
        return layers

    def _check_inputs(self, input_ids: Tensor, cu_seqlens: Tensor, max_seqlen: int) -> None:
        if input_ids.ndim != 1 or input_ids.dtype != torch.int64:
            raise ValueError(
                f"input_ids must be (T,) int64 packed token ids, got shape {tuple(input_ids.shape)} {input_ids.dtype}"
            )
        if cu_seqlens.ndim != 1 or cu_seqlens.dtype != torch.int32 or cu_seqlens.numel() < 2:
            raise ValueError(
                f"cu_seqlens must be (N + 1,) int32 with N >= 1, got shape {tuple(cu_seqlens.shape)} {cu_seqlens.dtype}"
            )
        if input_ids.device != self.device or cu_seqlens.device != self.device:
            raise ValueError(
                f"input_ids ({input_ids.device}) and cu_seqlens ({cu_seqlens.device}) must be on "
                f"the model's device {self.device}; move them with .to({str(self.device)!r})"
            )
        if not isinstance(max_seqlen, int):
            raise TypeError(
                f"max_seqlen must be a host int, got {type(max_seqlen).__name__}; "
                "compute it from the sequence lengths before moving them to the device"
            )


def resolve_options(
    device: torch.device | str, dtype: torch.dtype, attention: str = "auto", kernels: str = "auto", gelu: str = "auto"
) -> tuple[str, str, str]:
    """The (attention backend, kernels, gelu) a PackedESM2 on ``device`` in ``dtype`` picks for these arguments."""
    device = torch.device(device)
    return (
        select_attention(attention, device, dtype)[0],
        select_kernels(kernels, device).name,
        _resolve_gelu(gelu, device, dtype),
    )


def _resolve_gelu(gelu: str, device: torch.device, dtype: torch.dtype) -> str:
    if gelu not in GELUS:
        raise ValueError(f"gelu={gelu!r} is unknown; choose one of {GELUS}")
    if gelu == "auto":
        return "tanh" if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16) else "exact"
    return gelu


class _Norm(NamedTuple):
    """A copy of fair-esm's ESM1bLayerNorm (torch's or apex's LayerNorm), eps included."""

    weight: Tensor
    bias: Tensor
    eps: float

    @classmethod
    def copy(cls, norm: nn.Module, dtype: torch.dtype, device: torch.device) -> _Norm:
        return cls(_copy(norm.weight, dtype, device), _copy(norm.bias, dtype, device), norm.eps)


class _Block(nn.Module):
    """One pre-LayerNorm ESM-2 transformer block, with q, k and v fused in one projection."""

    def __init__(self, layer: TransformerLayer, dtype: torch.dtype, device: torch.device):
        super().__init__()
        attn = layer.self_attn
        self.heads = attn.num_heads
        self.attn_norm = _Norm.copy(layer.self_attn_layer_norm, dtype, device)
        # fair-esm scales q by head_dim ** -0.5 before rotary; folded into the weights
        # (in float32, then rounded) here, so attention kernels run with scale 1.0.
        self.qkv_weight = _copy_rows(
            (attn.q_proj.weight * attn.scaling, attn.k_proj.weight, attn.v_proj.weight), dtype, device
        )
        self.qkv_bias = _copy_rows((attn.q_proj.bias * attn.scaling, attn.k_proj.bias, attn.v_proj.bias), dtype, device)
        self.out_weight = _copy(attn.out_proj.weight, dtype, device)
        self.out_bias = _copy(attn.out_proj.bias, dtype, device)
        self.ffn_norm = _Norm.copy(layer.final_layer_norm, dtype, device)
        self.fc1_weight = _copy(layer.fc1.weight, dtype, device)
        self.fc1_bias = _copy(layer.fc1.bias, dtype, device)
        self.fc2_weight = _copy(layer.fc2.weight, dtype, device)
        self.fc2_bias = _copy(layer.fc2.bias, dtype, device)

    def forward(
        self,
        x: Tensor,
        delta: Tensor | None,
        rotary: tuple[Tensor, Tensor, Tensor],
        cu_seqlens: Tensor,
        max_seqlen: int,
        attend: AttentionFn,
        kernels: Kernels,
        gelu: str,
    ) -> tuple[Tensor, Tensor]:
        """(x, delta) => (x', delta'): the block's input is x + delta (delta None: x), its output x' + delta'.

        x, delta: (T, E). rotary: positions (T,) int32 and the cos and sin tables.
        """
        x, h = kernels.add_layer_norm(x, delta, *self.attn_norm)
        q, k, v = kernels.rotary(F.linear(h, self.qkv_weight, self.qkv_bias), *rotary, self.heads)  # 3 × (T, H, D)
        attended = attend(q, k, v, cu_seqlens, max_seqlen)  # (T, H, D)
        x, h = kernels.add_layer_norm(x, F.linear(attended.flatten(1), self.out_weight, self.out_bias), *self.ffn_norm)
        return x, F.linear(_fc1_gelu(h, self.fc1_weight, self.fc1_bias, gelu), self.fc2_weight, self.fc2_bias)


def _fc1_gelu(h: Tensor, weight: Tensor, bias: Tensor, gelu: str) -> Tensor:
    if gelu == "exact":
        return F.gelu(F.linear(h, weight, bias))  # erf, as fair-esm
    if h.is_cuda:  # cuBLASLt's GELU epilogue computes the tanh approximation
        return torch._addmm_activation(bias, h, weight.t(), use_gelu=True)
    return F.gelu(F.linear(h, weight, bias), approximate="tanh")


def _copy(source: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A new tensor holding ``source`` in ``dtype`` on ``device``; never a view of it."""
    return torch.empty(source.shape, dtype=dtype, device=device).copy_(source)


def _copy_rows(sources: Sequence[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.cat(sources)`` in ``dtype`` on ``device``, each source rounded once, without a float32 concatenation."""
    out = torch.empty((sum(t.shape[0] for t in sources), *sources[0].shape[1:]), dtype=dtype, device=device)
    start = 0
    for source in sources:
        out[start : start + source.shape[0]].copy_(source)
        start += source.shape[0]
    return out
