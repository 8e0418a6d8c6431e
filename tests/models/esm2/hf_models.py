"""transformers' ESM-2 as the reference for the Hugging Face layout: models, copies and forwards.

Nothing here uses virnucpro's name mapping (``hf_layout``): the copy from fair-esm to transformers
goes module by module, so a wrong mapping in virnucpro disagrees with it. Nor does anything need
Biopython: proteins are drawn at random from ESM-2's residues.
"""

from __future__ import annotations

import random

import torch
from esm.model.esm2 import ESM2
from transformers import EsmConfig, EsmForMaskedLM, EsmModel

#: The config.json of facebook/esm2_t33_650M_UR50D on the Hugging Face Hub (transformers 4.25).
PUBLISHED_650M = {
    "architectures": ["EsmForMaskedLM"],
    "attention_probs_dropout_prob": 0.0,
    "classifier_dropout": None,
    "emb_layer_norm_before": False,
    "esmfold_config": None,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 1280,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "is_folding_model": False,
    "layer_norm_eps": 1e-05,
    "mask_token_id": 32,
    "max_position_embeddings": 1026,
    "model_type": "esm",
    "num_attention_heads": 20,
    "num_hidden_layers": 33,
    "pad_token_id": 1,
    "position_embedding_type": "rotary",
    "token_dropout": True,
    "torch_dtype": "float32",
    "transformers_version": "4.25.0.dev0",
    "use_cache": True,
    "vocab_list": None,
    "vocab_size": 33,
}
# ESM-2's residue tokens (fair-esm's alphabet indices 4..28 hold the residues and X, B, U, Z, O).
STANDARD = "LAGVSERTIDPKQNFYMHWC"


def esm_config(layers: int, embed_dim: int, heads: int, *, eps: float = 1e-5) -> EsmConfig:
    """transformers' config of an ESM-2 of these sizes, as the published configs set it."""
    return EsmConfig(
        vocab_size=33,
        mask_token_id=32,
        pad_token_id=1,
        hidden_size=embed_dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * embed_dim,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        layer_norm_eps=eps,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def random_transformers_model(
    config: EsmConfig, *, seed: int, masked_lm: bool = False, unit_scale: bool = True
) -> EsmModel:
    """A transformers ESM-2 in eval mode built from ``config`` directly, every parameter drawn (seeded).

    ``unit_scale``: at the scales of fair-esm's own random ESM-2: embeddings N(0, 1) (torch's ``nn.Embedding``),
    matrices N(0, 0.25 / fan_in), so activations stay of order 1 through 33 blocks; LayerNorm
    weights 1 + N(0, 0.04) and biases N(0, 0.0004), which transformers sets to ones and zeros, so
    that a swapped or dropped one shows. (At transformers' own std of 0.02 for the embedding,
    every LayerNorm divides float32 rounding by that std: at the 650M shape block 9 then differs
    from transformers by 1.1e-5, measured, against 5.6e-6 at the worst block here.) Without it,
    matrices and embeddings keep transformers' initialisation: LayerNorm inputs are small, and
    its epsilon weighs.
    """
    torch.manual_seed(seed)
    model = (EsmForMaskedLM if masked_lm else EsmModel)(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.02)
            elif "LayerNorm" in name or "layer_norm" in name:
                parameter.normal_(1.0, 0.2)
            elif not unit_scale:
                continue
            elif "word_embeddings" in name:
                parameter.normal_(0.0, 1.0)
            else:
                parameter.normal_(0.0, 0.5 / parameter.shape[1] ** 0.5)
    return model


def copy_into_transformers(model: ESM2, eps: float = 1e-5) -> EsmForMaskedLM:
    """transformers' EsmForMaskedLM holding ``model``'s weights, copied module by module."""
    config = esm_config(model.num_layers, model.embed_dim, model.attention_heads, eps=eps)
    hf = EsmForMaskedLM(config).eval()
    pairs = [
        (hf.esm.embeddings.word_embeddings, model.embed_tokens),
        (hf.esm.encoder.emb_layer_norm_after, model.emb_layer_norm_after),
        (hf.esm.contact_head.regression, model.contact_head.regression),
        (hf.lm_head.dense, model.lm_head.dense),
        (hf.lm_head.layer_norm, model.lm_head.layer_norm),
    ]
    for theirs, ours in zip(hf.esm.encoder.layer, model.layers):
        pairs += [
            (theirs.attention.self.query, ours.self_attn.q_proj),
            (theirs.attention.self.key, ours.self_attn.k_proj),
            (theirs.attention.self.value, ours.self_attn.v_proj),
            (theirs.attention.output.dense, ours.self_attn.out_proj),
            (theirs.attention.LayerNorm, ours.self_attn_layer_norm),
            (theirs.intermediate.dense, ours.fc1),
            (theirs.output.dense, ours.fc2),
            (theirs.LayerNorm, ours.final_layer_norm),
        ]
    with torch.no_grad():
        for theirs, ours in pairs:
            theirs.load_state_dict(ours.state_dict())
        hf.lm_head.bias.copy_(model.lm_head.bias)
    return hf


def random_proteins(lengths: list[int], *, seed: int, masks: int = 0) -> list[str]:
    """Proteins of ``lengths`` residues drawn from ESM-2's standard residues, the longest with
    ``masks`` residues replaced by <mask> (so the token-dropout rescale is exercised)."""
    rng = random.Random(seed)
    proteins = [[rng.choice(STANDARD) for _ in range(length)] for length in lengths]
    longest = max(range(len(proteins)), key=lambda i: lengths[i])
    for i in rng.sample(range(lengths[longest]), masks):
        proteins[longest][i] = "<mask>"
    return ["".join(protein) for protein in proteins]


def hidden_states(model: EsmModel, tokens: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """transformers' hidden states of each protein, run alone (no padding): per protein, (L + 1)
    tensors (n + 2, E), entry k the output of block k, the last one after the final LayerNorm."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for ids in tokens:
            states = model(ids.unsqueeze(0).to(device), output_hidden_states=True).hidden_states
            out.append(tuple(state[0] for state in states))
    return out
