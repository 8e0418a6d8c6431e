"""DNABERT-S's own model code as the reference: random models built from it, run as VirNucPro runs it
(one sequence at a time) or batched with padding, saved as users have them; and VirNucPro's DNA slices.

Models are ``BertModel(BertConfig(...))`` of the vendored ``tests/reference/dnabert_s`` code,
built directly (transformers 5's ``from_pretrained`` builds remote code on the meta device,
which breaks its ALiBi set-up). Every parameter, LayerNorms included, is perturbed from the
initialiser's values so that a mistake in any of them shows. Tests and ``benchmarks/dnabert_speed.py``
share this module.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from reference.dnabert_s.bert_layers import BertForMaskedLM, BertModel
from reference.dnabert_s.configuration_bert import BertConfig
from safetensors.torch import save_file

from virnucpro.data.dna import read_dna
from virnucpro.models.dnabert import Config, DNABERTWeights

#: (layers, hidden, heads, intermediate) of DNABERT-S (zhihan1996/DNABERT-S's config.json).
REAL = (12, 768, 12, 3072)
#: (layers, hidden, heads, intermediate) of the small configurations the CPU tests run. 6 and
#: 12 heads (DNABERT-S's count) are not powers of two: ALiBi's slopes take another branch.
SHAPES = {
    "2-layers-4-heads": (2, 64, 4, 96),
    "3-layers-6-heads": (3, 48, 6, 80),
    "1-layer-12-heads": (1, 96, 12, 128),
    "2-layers-5-heads": (2, 40, 5, 64),
}


def bert_config(layers: int, hidden: int, heads: int, intermediate: int, vocab_size: int = 4096) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
    )


def reference_model(
    layers: int,
    hidden: int,
    heads: int,
    intermediate: int,
    *,
    seed: int = 0,
    vocab_size: int = 4096,
    mlm: bool = False,
    noise: float = 0.1,
    device: str = "cpu",
) -> BertModel | BertForMaskedLM:
    """A seeded random DNABERT of DNABERT-S's own code (a masked-LM one with ``mlm``), in eval mode, float32,
    on ``device``: its initialiser's values plus N(0, ``noise``) on every parameter."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unable to import Triton": its PyTorch attention is the reference
        cls = BertForMaskedLM if mlm else BertModel
        model = cls(bert_config(layers, hidden, heads, intermediate, vocab_size)).eval().to(device)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * noise)
    return model


def reference_in_dtype(model: BertModel, dtype: torch.dtype) -> BertModel:
    """A copy of the reference model cast whole to ``dtype`` (``.to(dtype)``), as a user would run
    DNABERT-S's own code in bfloat16: its error against the float32 model is what bfloat16 costs
    that code, the yardstick for ours.

    The one change: its attention bias (ALiBi plus the padding mask, which its code builds in
    float32 outside any module) is cast to ``dtype`` where its PyTorch attention adds it, since
    ``softmax(bf16 scores + fp32 bias) @ bf16 v`` would raise there. The model is not changed.
    """
    cast = copy.deepcopy(model).to(dtype)

    def bias_in_dtype(module: torch.nn.Module, args: tuple) -> tuple:
        hidden_states, *rest, bias = args  # forward(hidden_states, cu_seqlens, max_s, indices, attn_mask, bias)
        return (hidden_states, *rest, bias.to(hidden_states.dtype))

    for layer in cast.encoder.layer:
        layer.attention.self.register_forward_pre_hook(bias_in_dtype)
    return cast


def our_config(model: BertModel) -> Config:
    """The ``Config`` that the reference model's config.json gives."""
    c = model.config
    return Config(
        c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.vocab_size,
        c.type_vocab_size, c.layer_norm_eps,
    )  # fmt: skip


def our_weights(model: BertModel) -> DNABERTWeights:
    """The reference model's own tensors (not copies) as ``DNABERTWeights``; its pooler left out, as the loader does."""
    state = {key: tensor for key, tensor in model.state_dict().items() if not key.startswith("pooler.")}
    return DNABERTWeights(our_config(model), state)


@torch.no_grad()
def reference_layers(model: BertModel, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every layer of one sequence, as VirNucPro runs the model (one sequence, no mask):
    [embedding output, block 1, ..., block L], each (L_tokens, E); the last is ``model(ids[None])[0][0]``."""
    captured: list[torch.Tensor] = []
    hooks = [model.embeddings.register_forward_hook(lambda m, i, out: captured.append(out[0]))]
    hooks += [layer.register_forward_hook(lambda m, i, out: captured.append(out)) for layer in model.encoder.layer]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Increasing alibi size from 512 to ...": it grows its table
            last = model(ids[None])[0][0]
    finally:
        for hook in hooks:
            hook.remove()
    torch.testing.assert_close(captured[-1], last, rtol=0, atol=0)  # the hooks saw what the model returns
    return captured


def save_folder(model: BertModel, folder: Path, tokenizer_json: str, weights: str = "model.safetensors") -> Path:
    """``folder`` in Hugging Face layout, as a user downloads DNABERT-S: config.json, tokenizer.json and
    the reference model's state dict as ``weights`` (safetensors, or a ``torch.save`` .bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads(model.config.to_json_string())
    config["model_type"] = "bert"
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "tokenizer.json").write_text(tokenizer_json)
    state = {key: tensor.contiguous() for key, tensor in model.state_dict().items()}
    if weights.endswith(".safetensors"):
        # tied weights (a masked-LM decoder is the word embedding) are saved once each, as save_pretrained does
        save_file({key: tensor.clone() for key, tensor in state.items()}, folder / weights)
    else:
        torch.save(state, folder / weights)
    return folder


def padded_batches(
    sequences: Sequence[torch.Tensor], tokens_per_batch: int, pad_id: int = 3
) -> Iterator[tuple[torch.Tensor, torch.Tensor, Sequence[torch.Tensor]]]:
    """Padded batches of consecutive ``sequences``, each of at most ``tokens_per_batch`` padded tokens
    (or one sequence): (input_ids (B, L) int64 padded with ``pad_id``, attention_mask (B, L) int64, the
    batch's sequences), on the host."""
    start = 0
    while start < len(sequences):
        end, longest = start + 1, len(sequences[start])
        while end < len(sequences) and (end + 1 - start) * max(longest, len(sequences[end])) <= tokens_per_batch:
            longest, end = max(longest, len(sequences[end])), end + 1
        batch = sequences[start:end]
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.int64)
        mask = torch.zeros((len(batch), longest), dtype=torch.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
        yield ids, mask, batch
        start = end


@torch.no_grad()
def padded_last_layers(
    model: BertModel, sequences: Sequence[torch.Tensor], tokens_per_batch: int
) -> Iterator[list[torch.Tensor]]:
    """The reference's last layer ``model(input_ids, attention_mask)[0]`` per sequence (its real rows,
    (L_i, E)), over ``padded_batches``: the model's own unpadding path, as batched rewrites run it.
    One list per batch."""
    device = next(model.parameters()).device
    for ids, mask, batch in padded_batches(sequences, tokens_per_batch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Increasing alibi size ..."
            hidden = model(ids.to(device), attention_mask=mask.to(device))[0]  # (B, L, E), zeros past each end
        yield [hidden[row, : len(seq)] for row, seq in enumerate(batch)]


def packed_batches(sequences: Sequence[torch.Tensor], max_tokens: int) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """Consecutive ``sequences`` packed into batches of at most ``max_tokens`` tokens (or one sequence):
    (input_ids (T,) int64, cu_seqlens (N + 1,) int32, max_seqlen) each, on the host."""
    batches, start = [], 0
    while start < len(sequences):
        end, total = start + 1, len(sequences[start])
        while end < len(sequences) and total + len(sequences[end]) <= max_tokens:
            total, end = total + len(sequences[end]), end + 1
        lengths = torch.tensor([len(s) for s in sequences[start:end]])
        cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
        batches.append((torch.cat(list(sequences[start:end])), cu_seqlens, int(lengths.max())))
        start = end
    return batches


def nucleotide_slices(paths: Sequence[Path], chunk_sizes: Sequence[int] = (500, 300)) -> list[str]:
    """VirNucPro's nucleotide FASTA of ``paths`` (``virnucpro translate --nucleotide-out``), the slice of
    every stop-free frame, for each chunk size in turn: what VirNucPro embeds with DNABERT-S."""
    return [protein.nucleotide for size in chunk_sizes for protein in read_dna(paths, chunk_size=size)]
