"""DNABERT-2 / DNABERT-S's forward over packed sequences: no padding, varlen attention with ALiBi.

Same weights and the same numbers as ``BertModel`` of DNABERT's own code: token plus
token-type-0 embedding and its LayerNorm; then post-LayerNorm blocks: fused QKV, attention
with the ALiBi bias -slope_h * |i - j| within each sequence, output projection, add and
LayerNorm; gated MLP (E -> 2I without bias, GELU(gate) * value, I -> E), add and LayerNorm.
No final LayerNorm: the last block's output is ``model(input_ids)[0]``.

Per block on CUDA: three matmuls through the matmul seam (``common.matmul``, cuBLAS with the
bias in the epilogue), one varlen attention kernel given the ALiBi slopes (``common.attention``),
the gated MLP's first matmul with GELU(gate) * value in its epilogue, and two one-pass residual
add + LayerNorm kernels (all three in ``common.kernels``, Triton).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..common.alibi import alibi_slopes
from ..common.attention import AttentionFn, select_attention
from ..common.kernels import Kernels, select_kernels
from ..common.matmul import Linear, NativeMatmul, Norm, copy_norm, copy_tensor
from ..common.packed_model import PackedModel, build_blocks_warming, packed_inputs, warm_in_thread
from ..common.upload import staged_uploads
from ..options import ForwardOptions
from .architecture import resolve_layers
from .weights import DNABERTWeights

if TYPE_CHECKING:
    from virnucpro.data import PackedBatch

__all__ = ["PackedDNABERT"]

#: ``ForwardOptions.gelu`` => ``F.gelu``'s ``approximate``.
_APPROXIMATE = {"exact": "none", "tanh": "tanh"}


class PackedDNABERT(PackedModel):
    """Inference-only DNABERT over packed batches, with its own copy of the weights.

    Args:
        model: ``DNABERTWeights`` (``dnabert.load``). Read, never modified.
        dtype: dtype of the copied weights and of the computation; default the weights'.
            ALiBi slopes and biases, LayerNorm statistics and the gated GELU are float32 always;
            so are the LayerNorms' weight and bias and the embedding table (whose rows are
            normalised in float32 before being rounded): bf16's 8 bits would round a LayerNorm
            weight near 1.0 by up to 0.4 %, an error shared by every token, which averaging
            over a sequence does not remove (it doubled the error of mean embeddings).
        device: where the copy lives; default the weights'. To move to another device or
            dtype, build a new PackedDNABERT: the attention backend is chosen for these.
        options: how to compute (``ForwardOptions``: attention backend, kernels, GELU);
            default all "auto". ``matmul`` must be "native". "auto" GELU is the exact erf
            form, as DNABERT's own code: the gate's GELU is its own pass over memory either
            way, where erf costs nothing more than tanh. ``self.options`` holds the resolved choice.
    """

    def __init__(
        self,
        model: DNABERTWeights,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        options: ForwardOptions | None = None,
    ):
        super().__init__()
        if not isinstance(model, DNABERTWeights):
            raise TypeError(
                f"model must be a DNABERTWeights (virnucpro.models.dnabert.load), got {type(model).__name__}"
            )
        word = model.weight("embeddings.word_embeddings.weight")
        dtype = word.dtype if dtype is None else dtype
        device = word.device if device is None else torch.device(device)
        self.options, self._attend = _resolve(options or ForwardOptions(), device, dtype)
        self._kernels: Kernels = select_kernels(self.options.kernels, device)
        self._matmul = NativeMatmul(dtype, device, self._kernels, self.options.gelu)
        self._approximate = _APPROXIMATE[self.options.gelu]
        self.num_layers = model.num_layers
        self.embed_dim = model.embed_dim
        self.heads = model.attention_heads
        self.register_buffer("slopes", alibi_slopes(self.heads).to(device), persistent=False)
        with torch.no_grad(), staged_uploads(device):
            # Every token has type 0: its type embedding is folded into the token table, kept in
            # float32 (a 4096-row table: 12 MB, and one gather per forward).
            table = word.float() + model.weight("embeddings.token_type_embeddings.weight")[0].float()
            self.register_buffer("embed_weight", copy_tensor(table, torch.float32, device), persistent=False)
            self.embed_norm = copy_norm(_norm(model, "embeddings.LayerNorm"), torch.float32, device)
            self._dtype = dtype
            self.layers = nn.ModuleList(
                build_blocks_warming(
                    [0] * self.num_layers,  # every block computes alike: one warms the kernels up
                    lambda i: _Block(model, i, self._matmul, self.heads),
                    self._warm_blocks,
                )
            )

    def _warm_blocks(self, blocks: list[_Block]) -> None:
        """The warm-up batches through ``blocks`` alone."""

        def run(input_ids: Tensor, cu_seqlens: Tensor, max_seqlen: int) -> None:
            x = self._embed(input_ids)
            for block in blocks:
                x = block(x, cu_seqlens, max_seqlen, self.slopes, self._attend, self._kernels, self._approximate)

        warm_in_thread(self.device, run)

    @torch.no_grad()
    def forward(
        self,
        input_ids: Tensor | PackedBatch,
        cu_seqlens: Tensor | None = None,
        max_seqlen: int | None = None,
        repr_layers: Sequence[int] | None = None,
    ) -> dict[str, dict[int, Tensor]]:
        """Representations of packed sequences. Runs without autograd.

        Args:
            input_ids: (T,) int64 on ``self.device``, the token ids ([CLS] and [SEP] included,
                from the model's own tokenizer) of N sequences back to back, no padding; or a
                ``PackedBatch`` on ``self.device``, which carries all three tensors.
            cu_seqlens: (N + 1,) int32 on ``self.device``, cu_seqlens[0] == 0, non-decreasing,
                cu_seqlens[-1] == T; sequence i is input_ids[cu_seqlens[i] : cu_seqlens[i + 1]].
                ALiBi positions restart at 0 in every sequence.
            max_seqlen: host int, max(cu_seqlens.diff()); passed in so that nothing syncs.
            repr_layers: layers to return, each in -(num_layers + 1)..num_layers (negative ones
                count from the end); default (num_layers,). 0 is the embedding after its
                LayerNorm, k the output of block k; num_layers is ``model(input_ids)[0]`` of
                DNABERT's own code. Blocks past the highest requested layer are not run.

        Returns:
            {"representations": {layer: (T, E) tensor in ``self.dtype``}}, keyed by the
            non-negative layer numbers.
        """
        input_ids, cu_seqlens, max_seqlen = packed_inputs(input_ids, cu_seqlens, max_seqlen, self.device)
        layers = resolve_layers(repr_layers, self.num_layers, argument="repr_layers")
        x = self._embed(input_ids)
        representations = {0: x} if 0 in layers else {}
        for i, block in enumerate(self.layers[: max(layers)], start=1):
            x = block(x, cu_seqlens, max_seqlen, self.slopes, self._attend, self._kernels, self._approximate)
            if i in layers:
                representations[i] = x
        return {"representations": representations}

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (the float32 embedding table is not)."""
        return self._dtype

    def _embed(self, input_ids: Tensor) -> Tensor:
        """LayerNorm(token + type-0 embedding), normalised in float32: (T,) int64 => (T, E) in ``self.dtype``."""
        rows = F.embedding(input_ids, self.embed_weight)  # (T, E) float32
        return self._kernels.add_layer_norm(rows, None, *self.embed_norm)[1].to(self._dtype)


def resolve_options(options: ForwardOptions, device: torch.device | str, dtype: torch.dtype) -> ForwardOptions:
    """The options ``PackedDNABERT`` runs with on ``device`` in ``dtype``: an ALiBi attention backend
    and, for ``gelu="auto"``, the exact GELU DNABERT was trained with (``ModelFamily.resolve_options``)."""
    return _resolve(options, torch.device(device), dtype)[0]


def _resolve(options: ForwardOptions, device: torch.device, dtype: torch.dtype) -> tuple[ForwardOptions, AttentionFn]:
    """The concrete options for DNABERT on ``device`` in ``dtype``, and the ALiBi attention backend they name."""
    if options.matmul != "native":
        raise ValueError(
            f"matmul={options.matmul!r} (CLI: --dtype {options.matmul}) is not available for DNABERT, whose "
            "post-LayerNorm blocks keep the normalised rows as the residual stream; use matmul='native' "
            "(CLI: --dtype bf16)"
        )
    if options.residual == "float32":
        raise ValueError(
            "residual='float32' (CLI: --residual float32) is ESM-2's option: DNABERT's post-LayerNorm blocks "
            "carry the normalised rows, which its matmuls read, as the residual stream; use residual='auto' "
            "(CLI: --residual auto), and dtype=torch.float16 (CLI: --dtype fp16) for a closer match to float32"
        )
    attention, attend = select_attention(options.attention, device, dtype, alibi=True)
    resolved = options.resolve(device, dtype)
    gelu = "exact" if options.gelu == "auto" else resolved.gelu
    return dataclasses.replace(resolved, attention=attention, gelu=gelu), attend


def _norm(model: DNABERTWeights, name: str) -> Norm:
    """The LayerNorm ``name``'s own parameters (not copied: the matmul copies what it keeps)."""
    return Norm(model.weight(f"{name}.weight"), model.weight(f"{name}.bias"), model.config.layer_norm_eps)


class _Block(nn.Module):
    """One post-LayerNorm DNABERT block: ALiBi attention, then the gated MLP, each closed by add + LayerNorm."""

    def __init__(self, model: DNABERTWeights, index: int, matmul: NativeMatmul, heads: int):
        super().__init__()
        prefix = f"encoder.layer.{index}"
        self.heads, self.matmul = heads, matmul
        qkv_weight, qkv_bias = (model.weight(f"{prefix}.attention.self.Wqkv.{p}") for p in ("weight", "bias"))
        embed_dim = qkv_weight.shape[1]
        # DNABERT divides the scores by sqrt(head_dim); folded into q's rows (in float32, then
        # rounded) here, so attention kernels run with scale 1.0 and add the ALiBi bias unscaled.
        scale = (embed_dim // heads) ** -0.5
        q_weight, k_weight, v_weight = qkv_weight.split(embed_dim)
        q_bias, k_bias, v_bias = qkv_bias.split(embed_dim)
        self.qkv = matmul.prepare_weight(
            (q_weight.float() * scale, k_weight, v_weight), (q_bias.float() * scale, k_bias, v_bias)
        )
        self.out = _linear(model, matmul, f"{prefix}.attention.output.dense")
        # LayerNorm parameters in float32 (see PackedDNABERT): both kernel sets read them so.
        self.attn_norm = copy_norm(_norm(model, f"{prefix}.attention.output.LayerNorm"), torch.float32, matmul.device)
        self.gated = matmul.prepare_weight((model.weight(f"{prefix}.mlp.gated_layers.weight"),), None)
        self.wo = _linear(model, matmul, f"{prefix}.mlp.wo")
        self.mlp_norm = copy_norm(_norm(model, f"{prefix}.mlp.layernorm"), torch.float32, matmul.device)

    def forward(
        self,
        x: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        slopes: Tensor,
        attend: AttentionFn,
        kernels: Kernels,
        approximate: str,
    ) -> Tensor:
        """(T, E) => (T, E): the block's output, the next block's input."""
        m = self.matmul
        a = m.add_layer_norm(x, self._attention(x, cu_seqlens, max_seqlen, slopes, attend), self.attn_norm)[1]
        gated = kernels.gated_linear(a, self.gated.weight, approximate)  # (T, E) => GELU(gate) * value, (T, I)
        return m.add_layer_norm(a, m.linear(gated, self.wo), self.mlp_norm)[1]

    def _attention(self, x: Tensor, cu_seqlens: Tensor, max_seqlen: int, slopes: Tensor, attend: AttentionFn) -> Tensor:
        """(T, E) => (T, E), the attention's output projection; the (T, 3E) QKV is freed on return, before the MLP."""
        q, k, v = self.matmul.linear(x, self.qkv).unflatten(1, (3, self.heads, -1)).unbind(1)  # 3 x (T, H, D)
        attended = attend(q, k, v, cu_seqlens, max_seqlen, alibi_slopes=slopes)  # (T, H, D)
        return self.matmul.linear(attended.flatten(1), self.out)


def _linear(model: DNABERTWeights, matmul: NativeMatmul, name: str) -> Linear:
    return matmul.prepare_weight((model.weight(f"{name}.weight"),), (model.weight(f"{name}.bias"),))
