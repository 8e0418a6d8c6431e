"""load_model and save_checkpoint: fair-esm's checkpoint format, both ways, and every failure."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import esm
import pytest
import torch
from checkpoint_files import contents, refused, tiny_checkpoint, written
from conftest import REPO, tiny_esm2
from esm_reference import pack
from mapped import in_mapping, mapped_ranges
from payloads import MkdirPayload

from virnucpro.models import ARCHITECTURES, PackedESM2, load_model, save_checkpoint
from virnucpro.models.esm2 import loading

TOKENS = torch.tensor([[0, 20, 15, 5, 4, 32, 23, 2]])  # <cls> M K A L <mask> X <eos>
SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQ", "M", "GAVL<mask>IPFYWX", "MSTNPKPQRKTKRNTNRRPQDVKFPGG<mask><mask>"]


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS, repr_layers=[model.num_layers])["logits"]


@pytest.fixture
def checkpoint(tmp_path):
    """(a tiny random ESM-2, the path it was saved to)."""
    return tiny_checkpoint(tmp_path)


def test_round_trip_gives_identical_weights_and_outputs(checkpoint):
    model, path = checkpoint
    loaded, alphabet = load_model(path)
    assert not loaded.training and alphabet.padding_idx == 1 and alphabet.cls_idx == 0
    original = model.state_dict()
    assert all(torch.equal(tensor, original[key]) for key, tensor in loaded.state_dict().items())
    assert all(tensor.device.type == "cpu" for tensor in [*loaded.parameters(), *loaded.buffers()])
    assert torch.equal(logits(loaded), logits(model))


def test_half_precision_checkpoint_loads_as_float32(tmp_path):
    model = tiny_esm2(2, 64, 4, seed=6).half()
    save_checkpoint(model, tmp_path / "half.pt")
    loaded, _ = load_model(tmp_path / "half.pt")
    original = model.state_dict()
    for key, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, original[key].float()), key


def test_checkpoint_without_contact_regression_loads(checkpoint, tmp_path):
    model, path = checkpoint
    data = torch.load(path, weights_only=False)
    data["model"] = {key: tensor for key, tensor in data["model"].items() if "contact_head" not in key}
    torch.save(data, tmp_path / "no_contacts.pt")
    loaded, _ = load_model(tmp_path / "no_contacts.pt")
    assert torch.equal(logits(loaded), logits(model))


def test_fair_esms_own_loader_reads_our_checkpoint(checkpoint):
    model, path = checkpoint
    # fair-esm's loader unpickles the whole file; this is fair-esm's behaviour under test, not ours.
    data = torch.load(path, map_location="cpu", weights_only=False)
    loaded, _ = esm.pretrained.load_model_and_alphabet_core("esm2_t6_8M_UR50D", data)
    assert torch.equal(logits(loaded.eval()), logits(model))


def test_pretrained_name_loads_from_the_hub_cache_without_network(checkpoint, tmp_path, monkeypatch):
    model, path = checkpoint
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(loading, "MODEL_URL", "http://127.0.0.1:9/{name}.pt")  # unreachable: must not be used
    cached = pathlib.Path(torch.hub.get_dir()) / "checkpoints" / "esm2_t6_8M_UR50D.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    loaded, _ = load_model("esm2_t6_8M_UR50D")
    assert torch.equal(logits(loaded), logits(model))


def test_pretrained_name_offline_and_uncached_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(loading, "MODEL_URL", "http://127.0.0.1:9/{name}.pt")  # closed port: fails at once
    with pytest.raises(RuntimeError, match=r"esm2_t6_8M_UR50D.*not cached at .*checkpoints/esm2_t6_8M_UR50D\.pt"):
        load_model("esm2_t6_8M_UR50D")


@pytest.mark.parametrize("spec", ["random:esm2_t6_8M", "random:esm2_t6_8M_UR50D"])
def test_random_spec_builds_the_architecture_and_warns(spec):
    with pytest.warns(UserWarning, match="RANDOM.*meaningless for biology"):
        first, _ = load_model(spec, seed=7)
    with pytest.warns(UserWarning):
        second, _ = load_model(spec, seed=7)
    assert (first.num_layers, first.embed_dim, first.attention_heads) == ARCHITECTURES["esm2_t6_8M_UR50D"]
    assert not first.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@pytest.mark.parametrize("spec", ["esm2_t99_1T_UR50D", "random:esm3", "esm2"])
def test_unknown_names_list_the_known_ones(spec):
    with pytest.raises(ValueError, match="esm2_t33_650M_UR50D.*random:"):
        load_model(spec)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_model(tmp_path / "absent.pt")


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text(">seq1\nMKV\n")
    with pytest.raises(ValueError, match="notes.pt: not a readable fair-esm checkpoint"):
        load_model(path)


def test_torch_file_of_something_else_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"a": 1}, path)
    with pytest.raises(ValueError, match=r"other.pt: not a fair-esm ESM-2 checkpoint.*\['a'\]"):
        load_model(path)


def test_pickled_class_is_refused_naming_it_without_advising_weights_only_false(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "cfg": {"model": pathlib.PurePosixPath("x")}}, path)
    message = refused(path, r"unpickle pathlib\.PurePosixPath, which was refused", "never unpickles code")
    assert "weights_only" not in message


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    path, target = tmp_path / "payload.pt", tmp_path / "pwned"
    torch.save({"model": {}, "cfg": {"model": MkdirPayload(target)}}, path)
    message = refused(path, rf"unpickle \w+\.{os.mkdir.__name__}, which was refused", "never unpickles code")
    assert "weights_only" not in message
    assert not target.exists()


def test_missing_weight_is_an_error_and_an_extra_one_a_warning(checkpoint, tmp_path):
    _, path = checkpoint
    data = torch.load(path, weights_only=False)
    data["model"]["encoder.sentence_encoder.extra.weight"] = torch.zeros(1)
    torch.save(data, tmp_path / "extra.pt")
    with pytest.warns(UserWarning, match="ignoring 1 unexpected weight.*extra.weight"):
        load_model(tmp_path / "extra.pt")

    del data["model"]["encoder.sentence_encoder.layers.1.fc2.bias"]
    torch.save(data, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="missing.pt: checkpoint lacks 1 weight.*layers.1.fc2.bias"):
        load_model(tmp_path / "missing.pt")


def test_broken_files_are_refused(checkpoint, tmp_path):
    (tmp_path / "empty.pt").touch()
    refused(tmp_path / "empty.pt", r"empty file \(0 bytes\)")
    whole = checkpoint[1].read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    refused(tmp_path / "cut.pt", r"not a readable fair-esm checkpoint: torch\.load failed .*truncated or corrupt")
    torch.save(contents(checkpoint[1]), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    legacy = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "legacy_cut.pt").write_bytes(legacy[: len(legacy) // 2])
    refused(tmp_path / "legacy_cut.pt", r"not a readable fair-esm checkpoint")
    (tmp_path / "models.pt").mkdir()
    refused(tmp_path / "models.pt", r"is a directory, not a checkpoint")


# Fast start: zip files are memory-mapped; with dtype=None the model's tensors are the mapped ones.


@pytest.fixture
def half_checkpoint(tmp_path):
    """(a tiny random ESM-2 in float16, the path it was saved to)."""
    return tiny_checkpoint(tmp_path, torch.float16)


def test_dtype_none_keeps_the_stored_dtype_and_copies_nothing(half_checkpoint):
    model, path = half_checkpoint
    loaded, _ = load_model(path, dtype=None)
    ranges = mapped_ranges(path)
    original = model.state_dict()
    for key, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float16 and torch.equal(tensor, original[key]), key
        assert in_mapping(tensor, ranges), f"{key} was copied out of the mapped file"
    assert torch.equal(logits(loaded), logits(model))


def test_a_dtype_gives_a_model_owning_its_memory(checkpoint):
    model, path = checkpoint
    loaded, _ = load_model(path, dtype=torch.float32)
    ranges, original = mapped_ranges(path), model.state_dict()
    for key, tensor in loaded.state_dict().items():
        assert tensor.device.type == "cpu" and torch.equal(tensor, original[key]), key
        assert not in_mapping(tensor, ranges), key


def test_legacy_format_files_load_without_mmap(half_checkpoint, tmp_path):
    model, path = half_checkpoint
    torch.save(contents(path), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for dtype in (None, torch.float32):
        loaded, _ = load_model(tmp_path / "legacy.pt", dtype=dtype)
        assert {tensor.dtype for tensor in loaded.state_dict().values()} == {dtype or torch.float16}
        # fair-esm caches rotary tables in the dtype of their first forward: compare fresh models
        assert torch.equal(logits(loaded), logits(load_model(path, dtype=dtype)[0]))


def test_contact_regression_fallback_in_the_stored_dtype(half_checkpoint, tmp_path):
    model, path = half_checkpoint
    data = contents(path)
    data["model"] = {key: tensor for key, tensor in data["model"].items() if "contact_head" not in key}
    loaded, _ = load_model(written(tmp_path, data, "no_contacts.pt"), dtype=None)
    regression = loaded.contact_head.regression.weight
    assert regression.dtype == torch.float16 and regression.device.type == "cpu" and regression.isfinite().all()
    assert not any(tensor.is_meta for tensor in loaded.state_dict().values())
    assert torch.equal(logits(loaded), logits(model))


def packed_forward(model: torch.nn.Module, batch_converter) -> dict[int, torch.Tensor]:
    """Every layer of a float32 PackedESM2 copy of ``model`` over real proteins."""
    input_ids, cu_seqlens, max_seqlen = pack(batch_converter, SEQUENCES)
    packed = PackedESM2(model, dtype=torch.float32)
    return packed(input_ids, cu_seqlens, max_seqlen, repr_layers=[0, 1, 2])["representations"]


def test_packed_copy_of_a_mapped_model_equals_that_of_an_in_memory_one_and_changes_nothing(
    half_checkpoint, batch_converter
):
    _, path = half_checkpoint
    mapped, _ = load_model(path, dtype=None)
    in_memory, _ = load_model(path, dtype=torch.float16)
    before = {key: tensor.clone() for key, tensor in mapped.state_dict().items()}
    actual, expected = packed_forward(mapped, batch_converter), packed_forward(in_memory, batch_converter)
    assert all(torch.equal(actual[layer], expected[layer]) for layer in expected)
    ranges = mapped_ranges(path)
    for key, tensor in mapped.state_dict().items():
        assert tensor.dtype == torch.float16 and torch.equal(tensor, before[key]) and in_mapping(tensor, ranges), key


def test_float32_packed_copy_of_a_half_model_equals_that_of_its_float32_load(half_checkpoint, batch_converter):
    _, path = half_checkpoint
    actual = packed_forward(load_model(path, dtype=None)[0], batch_converter)
    expected = packed_forward(load_model(path)[0], batch_converter)
    assert all(torch.equal(actual[layer], expected[layer]) for layer in expected)


def test_random_models_are_built_in_float32_then_converted():
    with pytest.warns(UserWarning, match="RANDOM"):
        built, _ = load_model("random:esm2_t6_8M", seed=3, dtype=None)
    with pytest.warns(UserWarning, match="RANDOM"):
        half, _ = load_model("random:esm2_t6_8M", seed=3, dtype=torch.float16)
    assert {tensor.dtype for tensor in built.state_dict().values()} == {torch.float32}
    assert all(torch.equal(a.half(), b) for a, b in zip(built.state_dict().values(), half.state_dict().values()))


def test_building_the_model_does_not_import_torch_dynamo(checkpoint):
    """On the meta device, initialisers would import torch._dynamo (~2 s of start-up) for values thrown away."""
    code = (
        "import sys\nfrom virnucpro.models import load_model\n"
        f"load_model({str(checkpoint[1])!r})\nprint('torch._dynamo' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "False"
