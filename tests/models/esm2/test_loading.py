"""load_model and save_checkpoint: fair-esm's checkpoint format, both ways, and every failure."""

from __future__ import annotations

import pathlib

import esm
import pytest
import torch
from conftest import tiny_esm2

from virnucpro.models import ARCHITECTURES, load_model, save_checkpoint
from virnucpro.models.esm2 import loading

TOKENS = torch.tensor([[0, 20, 15, 5, 4, 32, 23, 2]])  # <cls> M K A L <mask> X <eos>


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS, repr_layers=[model.num_layers])["logits"]


@pytest.fixture
def checkpoint(tmp_path):
    """(a tiny random ESM-2, the path it was saved to)."""
    model = tiny_esm2(2, 64, 4, seed=5)
    path = tmp_path / "tiny.pt"
    save_checkpoint(model, path)
    return model, path


def test_round_trip_gives_identical_weights_and_outputs(checkpoint):
    model, path = checkpoint
    loaded, alphabet = load_model(path)
    assert not loaded.training and alphabet.padding_idx == 1 and alphabet.cls_idx == 0
    original = model.state_dict()
    assert all(torch.equal(tensor, original[key]) for key, tensor in loaded.state_dict().items())
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


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "cfg": {"model": pathlib.PurePosixPath("x")}}, path)
    with pytest.raises(ValueError, match="(?s)unsafe.pt.*PurePosixPath"):
        load_model(path)


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
