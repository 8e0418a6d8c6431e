"""fair-esm's ESM-2 forward over packed sequences: no padding, varlen attention.

Same weights, same layers, same representation keys as ``esm.model.esm2.ESM2``:
token embedding with token-dropout rescale, pre-LayerNorm blocks with rotary
attention over the full head dimension and a GELU MLP, final LayerNorm.

Per block on CUDA: four matmuls through the matmul seam (``common.matmul``; natively,
cuBLAS with the bias and, by default in half precision, the GELU in the epilogue; with
``matmul="fp8"``, e4m3 matmuls fed by quantising kernels, ``common.fp8``), one varlen
attention kernel, and three one-pass Triton kernels: residual add + LayerNorm twice,
rotary once. Each half of a block (attention, MLP) has its ``Matmul`` (``fp8.block_matmuls``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2
from esm.modules import TransformerLayer
from torch import Tensor, nn

from ..common.attention import AttentionFn, select_attention
from ..common.kernels import Kernels, select_kernels
from ..common.fp8 import block_matmuls
from ..common.matmul import Matmul, Norm, copy_norm, copy_tensor
from ..common.packed_model import PackedModel, build_blocks_warming, packed_inputs, warm_in_thread
from ..common.segments import segment_ids
from ..common.upload import staged_uploads
from ..options import ForwardOptions
from .architecture import MASK_RATIO_TRAIN, resolve_layers

if TYPE_CHECKING:
    from virnucpro.data import PackedBatch

__all__ = ["PackedESM2"]


class PackedESM2(PackedModel):
    """Inference-only ESM-2 over packed batches, with its own copy of a fair-esm model's weights.

    Args:
        model: a fair-esm ESM-2. It is read, never modified: not its weights, dtype,
            device nor mode.
        dtype: dtype of the copied weights and of the computation; default the model's.
            Rotary angles, token-dropout scales and the rotation itself are float32 always.
        device: where the copy lives; default the model's. To move to another device or
            dtype, build a new PackedESM2: the attention backend is chosen for these.
        options: how to compute (``ForwardOptions``: attention backend, kernels, GELU,
            matmul, residual stream); default all "auto". ``self.options`` holds the resolved
            choice.
    """

    def __init__(
        self,
        model: ESM2,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        options: ForwardOptions | None = None,
    ):
        super().__init__()
        if not isinstance(model, ESM2):
            raise TypeError(f"model must be a fair-esm esm.model.esm2.ESM2, got {type(model).__name__}")
        source = model.embed_tokens.weight
        dtype = source.dtype if dtype is None else dtype
        device = source.device if device is None else torch.device(device)
        self.options = (options or ForwardOptions()).resolve(device, dtype)
        self._attend: AttentionFn = select_attention(self.options.attention, device, dtype)[1]
        self._kernels: Kernels = select_kernels(self.options.kernels, device)
        o = self.options
        self._matmuls: list[tuple[Matmul, Matmul]] = block_matmuls(
            o.matmul, o.fp8, model.num_layers, dtype, device, self._kernels, o.gelu
        )

        # The residual stream's dtype: float32 with options.residual == "float32", else the compute dtype.
        self._residual_dtype = torch.float32 if self.options.residual == "float32" else dtype
        self.num_layers = model.num_layers
        self.embed_dim = model.embed_dim
        self.mask_idx = model.mask_idx
        self.token_dropout = model.token_dropout
        head_dim = self.embed_dim // model.attention_heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # Weights are plain tensors copied one by one, not nn.Linear modules: building a
        # module per layer cost more host time than the copy costs the GPU.
        with torch.no_grad(), staged_uploads(device):
            self.register_buffer("embed_weight", copy_tensor(source, dtype, device), persistent=False)
            self.layers = nn.ModuleList(self._copy_blocks(model.layers))
            self.final_norm = copy_norm(_norm(model.emb_layer_norm_after), dtype, device)

    def _copy_blocks(self, layers: Sequence[TransformerLayer]) -> list[_Block]:
        """Every block's copy; on CUDA the first of each kind (its pair of ``Matmul``) warms up the
        kernels in a thread while the rest are copied (``build_blocks_warming``)."""
        kinds = [(id(attention), id(mlp)) for attention, mlp in self._matmuls]
        return build_blocks_warming(kinds, lambda i: _Block(layers[i], *self._matmuls[i]), self._warm_blocks)

    def _warm_blocks(self, blocks: list[_Block]) -> None:
        """The warm-up batches through ``blocks`` alone."""

        def run(input_ids: Tensor, cu_seqlens: Tensor, max_seqlen: int) -> None:
            x, rotary = self._embed(input_ids, cu_seqlens, max_seqlen)
            delta = None
            for block in blocks:
                x, delta = block(x, delta, rotary, cu_seqlens, max_seqlen, self._attend, self._kernels)

        warm_in_thread(self.device, run)

    @torch.no_grad()
    def forward(
        self,
        input_ids: Tensor | PackedBatch,
        cu_seqlens: Tensor | None = None,
        max_seqlen: int | None = None,
        repr_layers: Sequence[int] | None = None,
    ) -> dict[str, dict[int, Tensor]]:
        """Representations of packed sequences, keyed as fair-esm keys them. Runs without autograd.

        Args:
            input_ids: (T,) int64 on ``self.device``, the token ids (from fair-esm's alphabet,
                BOS and EOS included) of N sequences back to back, no padding; or a
                ``PackedBatch`` on ``self.device``, which carries all three tensors.
            cu_seqlens: (N + 1,) int32 on ``self.device``, cu_seqlens[0] == 0, non-decreasing,
                cu_seqlens[-1] == T; sequence i is input_ids[cu_seqlens[i] : cu_seqlens[i + 1]].
            max_seqlen: host int, max(cu_seqlens.diff()); passed in so that nothing syncs. It
                must be exact: attention kernels and the rotary tables are sized by it.
            repr_layers: layers to return, each in -(num_layers + 1)..num_layers (negative
                ones count from the end, as in fair-esm); default (num_layers,). 0 is the
                embedding (after the token-dropout rescale), k the output of block k,
                num_layers the last block's output after the final LayerNorm. Blocks past
                the highest requested layer are not run.

        Returns:
            {"representations": {layer: (T, E) tensor in ``self.dtype``}}, keyed by the
            non-negative layer numbers (a float32 residual stream is rounded to it on the way out).
        """
        input_ids, cu_seqlens, max_seqlen = packed_inputs(input_ids, cu_seqlens, max_seqlen, self.device)
        layers = resolve_layers(repr_layers, self.num_layers, argument="repr_layers")
        x, rotary = self._embed(input_ids, cu_seqlens, max_seqlen)

        # The residual stream is carried as (x, delta): the MLP's output is added to x by
        # the next LayerNorm's kernel, or here when a layer's output is asked for.
        representations = {0: x.to(self.dtype)} if 0 in layers else {}
        delta = None
        for i, block in enumerate(self.layers[: max(layers)], start=1):
            x, delta = block(x, delta, rotary, cu_seqlens, max_seqlen, self._attend, self._kernels)
            if i == self.num_layers:
                representations[i] = self._kernels.add_layer_norm(x, delta, *self.final_norm, out_dtype=self.dtype)[1]
            elif i in layers:
                x, delta = x + delta, None
                representations[i] = x.to(self.dtype)
        return {"representations": representations}

    def _embed(
        self, input_ids: Tensor, cu_seqlens: Tensor, max_seqlen: int
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """The embedding (T, E) after the token-dropout rescale, and the rotary positions and tables."""
        total = input_ids.numel()
        seq = segment_ids(cu_seqlens, total)  # (T,)
        # The table is in the compute dtype, as fair-esm's; the stream starts in its own dtype.
        x = F.embedding(input_ids, self.embed_weight).to(self._residual_dtype)  # (T,) => (T, E)
        if self.token_dropout:
            x = self._rescale_for_masks(x, input_ids, cu_seqlens, seq)
        # Rotary angles in float32: in half precision, positions above 256 (bf16) or
        # 2048 (fp16) are not exact. Positions restart at 0 in every sequence.
        positions = torch.arange(total, device=x.device) - cu_seqlens.long()[seq]  # (T,)
        angles = torch.arange(max_seqlen, device=x.device, dtype=torch.float32)[:, None] * self.inv_freq
        return x, (positions.to(torch.int32), angles.cos(), angles.sin())  # tables (max_seqlen, D / 2)

    def _rescale_for_masks(self, x: Tensor, input_ids: Tensor, cu_seqlens: Tensor, seq: Tensor) -> Tensor:
        """Zero <mask> embeddings and scale each sequence by 0.88 / (1 - its <mask> fraction)."""
        is_mask = input_ids == self.mask_idx  # (T,)
        x = x.masked_fill(is_mask[:, None], 0.0)
        masks = torch.zeros(cu_seqlens.numel() - 1, dtype=torch.float32, device=x.device)
        masks.index_add_(0, seq, is_mask.float())  # (N,) <mask> count per sequence
        scale = (1 - MASK_RATIO_TRAIN) / (1 - masks / cu_seqlens.diff())  # (N,) float32
        return (x * scale[seq, None]).to(x.dtype)


def _norm(norm: nn.Module) -> Norm:
    """A fair-esm LayerNorm's own parameters (not copied: the matmul copies what it keeps)."""
    return Norm(norm.weight, norm.bias, norm.eps)


class _Block(nn.Module):
    """One pre-LayerNorm ESM-2 transformer block, with q, k and v fused in one projection.

    ``attention`` holds and multiplies the attention half's layers (its LayerNorm, QKV,
    out_proj), ``mlp`` the MLP half's (its LayerNorm, fc1, fc2); the two meet in the
    residual stream, which is the compute dtype (or float32, ``options.RESIDUALS``) whatever
    they are.
    """

    def __init__(self, layer: TransformerLayer, attention: Matmul, mlp: Matmul):
        super().__init__()
        attn = layer.self_attn
        self.heads = attn.num_heads
        self.attention_matmul, self.mlp_matmul = attention, mlp
        # fair-esm scales q by head_dim ** -0.5 before rotary; folded into the weights
        # (in float32, then rounded) here, so attention kernels run with scale 1.0.
        self.attn_norm, self.qkv = attention.prepare_norm_linear(
            _norm(layer.self_attn_layer_norm),
            (attn.q_proj.weight.float() * attn.scaling, attn.k_proj.weight, attn.v_proj.weight),
            (attn.q_proj.bias.float() * attn.scaling, attn.k_proj.bias, attn.v_proj.bias),
            role="qkv",
        )
        self.out = attention.prepare_weight((attn.out_proj.weight,), (attn.out_proj.bias,), role="out")
        self.ffn_norm, self.fc1 = mlp.prepare_norm_linear(
            _norm(layer.final_layer_norm), (layer.fc1.weight,), (layer.fc1.bias,), role="fc1"
        )
        self.fc2 = mlp.prepare_weight((layer.fc2.weight,), (layer.fc2.bias,), role="fc2")

    def forward(
        self,
        x: Tensor,
        delta: Tensor | None,
        rotary: tuple[Tensor, Tensor, Tensor],
        cu_seqlens: Tensor,
        max_seqlen: int,
        attend: AttentionFn,
        kernels: Kernels,
    ) -> tuple[Tensor, Tensor]:
        """(x, delta) => (x', delta'): the block's input is x + delta (delta None: x), its output x' + delta'.

        x, delta: (T, E). rotary: positions (T,) int32 and the cos and sin tables.
        """
        a, m = self.attention_matmul, self.mlp_matmul
        x, h = a.add_layer_norm(x, delta, self.attn_norm)
        q, k, v = kernels.rotary(a.linear(h, self.qkv), *rotary, self.heads)  # 3 x (T, H, D)
        attended = attend(q, k, v, cu_seqlens, max_seqlen)  # (T, H, D)
        x, h = m.add_layer_norm(x, a.linear(attended.flatten(1), self.out), self.ffn_norm)
        return x, m.linear(m.linear_gelu(h, self.fc1), self.fc2)
