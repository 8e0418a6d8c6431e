"""PackedDNABERT on the CPU in float32 against DNABERT-S's own code, run one sequence at a time as VirNucPro does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from dnabert_reference import SHAPES, our_weights, reference_layers, reference_model

from virnucpro.models import ForwardOptions, mean_pool
from virnucpro.models.dnabert import PackedDNABERT, load

#: 1 to 600 tokens, packed together in this order: a 1-token sequence, lengths on and off the
#: attention kernels' 64-row blocks, the longest beyond the reference's 512-position ALiBi table.
LENGTHS = (7, 1, 600, 64, 65, 2, 129, 300, 513, 33)
TOLERANCE = 1e-5


def packed_ids(lengths: tuple[int, ...], vocab_size: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Random token sequences of ``lengths`` (any id, the special ones included) and their cu_seqlens."""
    generator = torch.Generator().manual_seed(seed)
    sequences = [torch.randint(0, vocab_size, (n,), generator=generator) for n in lengths]
    cu_seqlens = F.pad(torch.tensor(lengths).cumsum(0), (1, 0)).to(torch.int32)
    return sequences, cu_seqlens


def assert_within(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    error = (actual - expected).abs()
    assert error.max() <= TOLERANCE, f"{what}: max abs error {error.max():.3g}, mean {error.mean():.3g}"


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_layer_and_the_mean_match_dnabert_s_own_code(shape):
    reference = reference_model(*SHAPES[shape], seed=11)
    packed = PackedDNABERT(our_weights(reference))
    sequences, cu_seqlens = packed_ids(LENGTHS, reference.config.vocab_size, seed=1)
    layers = range(reference.config.num_hidden_layers + 1)
    out = packed(torch.cat(sequences), cu_seqlens, max(LENGTHS), repr_layers=layers)["representations"]
    last = out[layers[-1]]
    means = mean_pool(last, cu_seqlens, bos=False, eos=False)  # every token, [CLS] and [SEP] included
    for i, ids in enumerate(sequences):
        rows = slice(int(cu_seqlens[i]), int(cu_seqlens[i + 1]))
        expected = reference_layers(reference, ids)
        for layer in layers:
            assert_within(out[layer][rows], expected[layer], f"{shape}, {len(ids)} tokens, layer {layer}")
        with torch.no_grad():
            pooled = reference(ids[None])[0].mean(dim=1)[0]  # VirNucPro: torch.mean(model(ids)[0], dim=1)
        assert_within(means[i], pooled, f"{shape}, {len(ids)} tokens, mean over every token")


def test_a_packed_batch_is_read_whole_and_negative_layers_count_from_the_end():
    reference = reference_model(*SHAPES["2-layers-4-heads"], seed=3)
    packed = PackedDNABERT(our_weights(reference))
    sequences, cu_seqlens = packed_ids((5, 9, 1), reference.config.vocab_size, seed=2)
    input_ids = torch.cat(sequences)
    full = packed(input_ids, cu_seqlens, 9, repr_layers=[0, 1, 2])["representations"]
    by_end = packed(input_ids, cu_seqlens, 9, repr_layers=[-1, -3])["representations"]
    assert sorted(by_end) == [0, 2]
    assert torch.equal(by_end[2], full[2]) and torch.equal(by_end[0], full[0])
    assert sorted(packed(input_ids, cu_seqlens, 9)["representations"]) == [2]  # default: the last layer
    with pytest.raises(ValueError, match=r"repr_layers \[3\] has invalid layer\(s\) \[3\].*layers 0\.\.2"):
        packed(input_ids, cu_seqlens, 9, repr_layers=[3])


def test_the_source_weights_are_never_changed_and_the_copy_cannot_move():
    reference = reference_model(*SHAPES["3-layers-6-heads"], seed=4)
    model = our_weights(reference)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    packed = PackedDNABERT(model, dtype=torch.float64)
    sequences, cu_seqlens = packed_ids((4, 8), reference.config.vocab_size, seed=3)
    assert packed(torch.cat(sequences), cu_seqlens, 8)["representations"][3].dtype == torch.float64
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())
    assert all(tensor.dtype == torch.float32 for tensor in model.state_dict().values())
    with pytest.raises(RuntimeError, match=r"build a new PackedDNABERT\(model, dtype=\.\.\., device=\.\.\.\)"):
        packed.to(torch.float32)


def test_fp8_matmuls_and_attention_without_alibi_are_refused_by_name():
    model = our_weights(reference_model(*SHAPES["2-layers-4-heads"]))
    with pytest.raises(ValueError, match=r"matmul='fp8' \(CLI: --dtype fp8\) is not available for DNABERT"):
        PackedDNABERT(model, options=ForwardOptions(matmul="fp8"))
    with pytest.raises(
        ValueError, match=r"attention='torch-varlen' \(CLI: --attention torch-varlen\) cannot add the ALiBi bias"
    ):
        PackedDNABERT(model, options=ForwardOptions(attention="torch-varlen"))


def test_random_dnabert_s_has_the_real_shape_and_runs(recwarn):
    model, tokenizer = load("random:dnabert-s", seed=5)
    assert (model.num_layers, model.embed_dim, model.attention_heads) == (12, 768, 12)
    packed = PackedDNABERT(model)
    ids, lengths = tokenizer.encode(["ACGTTGCAAN" * 30, "GATTACA"])
    cu_seqlens = F.pad(torch.from_numpy(lengths).cumsum(0), (1, 0)).to(torch.int32)
    out = packed(torch.from_numpy(ids), cu_seqlens, int(lengths.max()))["representations"][12]
    assert out.shape == (int(lengths.sum()), 768) and torch.isfinite(out).all()
