"""PackedESM2 against fair-esm's own padded forward, same weights, float32, CPU."""

from __future__ import annotations

import esm.modules
import pytest
import torch
from conftest import tiny_esm2
from esm_reference import diff, pack, padded_forward, sample_sequences

from virnucpro.data import VarlenCollator
from virnucpro.models import ForwardOptions, PackedESM2

# (layers, embed_dim, heads, with a 1022-residue protein): head_dim 16, 16, 12, 8.
CONFIGS = [(1, 32, 2, True), (3, 64, 4, False), (2, 96, 8, False), (4, 128, 16, False)]


@pytest.mark.parametrize("num_layers, embed_dim, heads, long", CONFIGS)
def test_every_layer_matches_fair_esm(batch_converter, num_layers, embed_dim, heads, long):
    model = tiny_esm2(num_layers, embed_dim, heads, seed=embed_dim)
    sequences = sample_sequences(16, seed=embed_dim, long=long)
    layers = list(range(num_layers + 1))
    expected = padded_forward(model, batch_converter, sequences, layers)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)

    packed = PackedESM2(model, options=ForwardOptions(attention="reference"))
    actual = packed(input_ids, cu_seqlens, max_seqlen, repr_layers=layers)["representations"]

    assert sorted(actual) == layers
    diffs = {layer: diff(actual[layer], torch.cat(expected[layer])) for layer in layers}
    report = ", ".join(f"layer {layer}: max {mx:.1e} mean {mean:.1e}" for layer, (mx, mean) in diffs.items())
    print(f"\n({num_layers}, {embed_dim}, {heads}) vs fair-esm, {len(sequences)} sequences: {report}")
    assert all(mx <= 1e-4 for mx, _ in diffs.values()), report


def test_tanh_gelu_matches_fair_esm_with_its_gelu_swapped_for_tanh(batch_converter, monkeypatch):
    """gelu="tanh" computes ESM-2 with the tanh approximation, and only that: against fair-esm whose
    GELU is replaced by torch's tanh GELU it agrees to float32 rounding; against the exact model it does not."""
    model = tiny_esm2(3, 64, 4, seed=5)
    sequences = sample_sequences(12, seed=5)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    packed = PackedESM2(model, options=ForwardOptions(attention="reference", gelu="tanh"))
    assert packed.options.gelu == "tanh"
    actual = packed(input_ids, cu_seqlens, max_seqlen)["representations"][3]

    exact = torch.cat(padded_forward(model, batch_converter, sequences, [3])[3])
    monkeypatch.setattr(esm.modules, "gelu", lambda x: torch.nn.functional.gelu(x, approximate="tanh"))
    tanh = torch.cat(padded_forward(model, batch_converter, sequences, [3])[3])

    assert diff(actual, tanh)[0] <= 1e-5, f"vs fair-esm with tanh GELU: max abs diff {diff(actual, tanh)[0]:.1e}"
    assert diff(actual, exact)[0] > 1e-4, "the tanh approximation should be visible in float32"


def test_gelu_auto_is_exact_outside_half_precision_on_cuda():
    assert PackedESM2(tiny_esm2(1, 32, 2)).options.gelu == "exact"
    assert PackedESM2(tiny_esm2(1, 32, 2), dtype=torch.bfloat16).options.gelu == "exact"  # on the CPU
    with pytest.raises(ValueError, match=r"gelu \(CLI: --gelu\) must be one of .*, got 'fast'"):
        ForwardOptions(gelu="fast")
    with pytest.raises(ValueError, match=r"kernels='triton' \(CLI: --kernels triton\) needs CUDA"):
        PackedESM2(tiny_esm2(1, 32, 2), options=ForwardOptions(kernels="triton"))


def test_one_sequence_alone_equals_it_packed_with_others(batch_converter):
    model = tiny_esm2(3, 64, 4)
    sequences = sample_sequences(8, seed=1)
    packed = PackedESM2(model)
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, sequences)
    together = packed(input_ids, cu_seqlens, max_seqlen)["representations"][3]
    for i in (0, 5, len(sequences) - 1):
        alone = packed(*pack(batch_converter, [sequences[i]]))["representations"][3]
        mx, mean = diff(alone, together[cu_seqlens[i] : cu_seqlens[i + 1]])
        assert mx <= 1e-5, f"sequence {i}: alone vs packed, max abs diff {mx:.1e}, mean {mean:.1e}"


def test_callers_model_is_left_unchanged(batch_converter):
    model = tiny_esm2(2, 64, 4).train()
    before = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    sequences = sample_sequences(4, seed=2)

    packed = PackedESM2(model, dtype=torch.float64)
    actual = packed(*pack(batch_converter, sequences))["representations"][2]

    after = model.state_dict()
    changed = [key for key, old in before.items() if after[key].dtype != old.dtype or not torch.equal(after[key], old)]
    assert not changed, f"PackedESM2 modified the caller's model: {changed}"
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert actual.dtype == torch.float64
    expected = padded_forward(model.eval(), batch_converter, sequences, [2])[2]
    mx, mean = diff(actual, torch.cat(expected))
    assert mx <= 1e-4, f"float64 copy vs fair-esm float32: max abs diff {mx:.1e}, mean {mean:.1e}"


def test_copy_shares_nothing_with_the_model_and_refuses_to_be_moved(batch_converter):
    model = tiny_esm2(2, 64, 4)
    inputs = pack(batch_converter, sample_sequences(4, seed=5))
    packed = PackedESM2(model)  # same dtype and device as the model: still a copy
    before = packed(*inputs)["representations"][2]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    assert torch.equal(packed(*inputs)["representations"][2], before)
    for move in (lambda: packed.to(torch.float64), packed.double, packed.cpu):
        with pytest.raises(RuntimeError, match="build a new PackedESM2"):
            move()


def test_layers_beyond_the_model_are_rejected(batch_converter):
    packed = PackedESM2(tiny_esm2(2, 32, 2))
    inputs = pack(batch_converter, ["MKV"])
    for layers in ([3], [-4], []):
        with pytest.raises(ValueError, match=r"0\.\.2"):
            packed(*inputs, repr_layers=layers)


def test_negative_layers_count_from_the_end_as_in_esm_extract(batch_converter):
    model = tiny_esm2(2, 32, 2)
    sequences = ["MKVLA", "QQ"]
    # fair-esm's scripts/extract.py: repr_layers = [(i + model.num_layers + 1) % (model.num_layers + 1) for i in ...]
    extract_layers = [(i + model.num_layers + 1) % (model.num_layers + 1) for i in (-1, -3)]
    expected = padded_forward(model, batch_converter, sequences, extract_layers)
    got = PackedESM2(model)(*pack(batch_converter, sequences), repr_layers=[-1, -3])["representations"]
    assert sorted(got) == sorted(expected) == [0, 2]
    for layer in (0, 2):
        mx, mean = diff(got[layer], torch.cat(expected[layer]))
        assert mx <= 1e-5, f"layer {layer}: max abs diff {mx:.1e}, mean {mean:.1e}"


def test_a_packed_batch_runs_as_its_three_tensors(batch_converter):
    packed = PackedESM2(tiny_esm2(2, 32, 2))
    batch = VarlenCollator(batch_converter)([{"id": "a", "sequence": "MKVLA"}, {"id": "b", "sequence": "QQ"}])
    whole = packed(batch)["representations"][2]
    apart = packed(batch.input_ids, batch.cu_seqlens, batch.max_seqlen)["representations"][2]
    assert torch.equal(whole, apart)


def test_malformed_inputs_are_rejected(batch_converter):
    packed = PackedESM2(tiny_esm2(2, 32, 2))
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, ["MKV", "LL"])
    with pytest.raises(ValueError, match="cu_seqlens must be"):
        packed(input_ids, cu_seqlens.long(), max_seqlen)
    with pytest.raises(ValueError, match="input_ids must be"):
        packed(input_ids[None], cu_seqlens, max_seqlen)
    with pytest.raises(TypeError, match="max_seqlen must be a host int"):
        packed(input_ids, cu_seqlens, torch.tensor(max_seqlen))
