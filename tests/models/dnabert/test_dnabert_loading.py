"""dnabert.load: folders saved from DNABERT-S's own code, the HF cache, random:dnabert-s, and every refusal."""

from __future__ import annotations

import json
import resource
import socket

import pytest
import torch
import torch.nn.functional as F
from conftest import one_line_error
from dnabert_reference import SHAPES, reference_layers, reference_model, save_folder
from hf_cache import cache_model
from mapped import in_mapping, mapped_ranges
from payloads import MkdirPayload
from safetensors.torch import load_file, save_file

from virnucpro.models.dnabert import PackedDNABERT, files, load, owns, tokenizer

SHAPE = SHAPES["2-layers-4-heads"]
SEQUENCES = ["ACGTTGCAAGGCTTAACN" * 9, "GATTACA", "NNNNACGTRYACGT"]


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return tokenizer("random:dnabert-s").to_str()


@pytest.fixture(scope="module")
def reference():
    return reference_model(*SHAPE, seed=21)


@pytest.fixture
def folder(tmp_path, reference, tokenizer_json):
    return save_folder(reference, tmp_path / "DNABERT-S", tokenizer_json)


@pytest.fixture
def offline(monkeypatch):
    """Any connection attempt fails the test."""
    for owner, name in ((socket.socket, "connect"), (socket, "create_connection")):
        monkeypatch.setattr(owner, name, lambda *a, **k: pytest.fail(f"network access attempted: {a}"))


def assert_runs_as(spec, reference, **kwargs) -> None:
    """``load(spec)``'s tokens through PackedDNABERT give the reference's last layer, per sequence, within 1e-5."""
    model, tokens = load(spec, **kwargs)
    ids, lengths = tokens.encode(SEQUENCES)
    cu_seqlens = F.pad(torch.from_numpy(lengths).cumsum(0), (1, 0)).to(torch.int32)
    packed = PackedDNABERT(model, dtype=torch.float32)
    out = packed(torch.from_numpy(ids), cu_seqlens, int(lengths.max()))["representations"][model.num_layers]
    for i, sequence_ids in enumerate(torch.from_numpy(ids).split(lengths.tolist())):
        expected = reference_layers(reference, sequence_ids)[-1]
        error = (out[cu_seqlens[i] : cu_seqlens[i + 1]] - expected).abs()
        assert error.max() <= 1e-5, f"{spec}: sequence {i}: max abs error {error.max():.3g}, mean {error.mean():.3g}"


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_a_folder_saved_from_dnabert_s_own_code_loads_and_runs_the_same(tmp_path, reference, tokenizer_json, weights):
    folder = save_folder(reference, tmp_path / "m", tokenizer_json, weights)
    model, tokens = load(folder)
    original = reference.state_dict()
    loaded = model.state_dict()
    assert set(loaded) == {key for key in original if not key.startswith("pooler.")}
    assert all(torch.equal(tensor, original[key]) for key, tensor in loaded.items())
    assert tokens.to_str() == tokenizer_json
    assert_runs_as(folder, reference)


def test_a_dnabert_2_masked_lm_checkpoint_loads_without_its_head(tmp_path, tokenizer_json, recwarn):
    mlm = reference_model(*SHAPE, seed=22, mlm=True)
    folder = save_folder(mlm, tmp_path / "mlm", tokenizer_json)
    keys = mlm.state_dict()
    assert any(key.startswith("bert.") for key in keys) and any(key.startswith("cls.") for key in keys)
    assert_runs_as(folder, mlm.bert)
    assert not [w for w in recwarn if "unexpected" in str(w.message)]


def test_dtype_none_keeps_the_mapped_file_and_a_dtype_converts(folder):
    ranges = mapped_ranges(folder / "model.safetensors")
    assert ranges == []
    model, _ = load(folder, dtype=None)
    ranges = mapped_ranges(folder / "model.safetensors")
    assert all(in_mapping(tensor, ranges) for tensor in model.parameters())
    half, _ = load(folder, dtype=torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 and not in_mapping(t, ranges) for t in half.parameters())


def test_a_hub_id_is_read_from_the_local_cache_and_never_downloaded(hf_cache, offline, folder, reference):  # noqa: F811
    snapshot = cache_model(hf_cache, "zhihan1996/DNABERT-S", folder)
    assert owns("zhihan1996/DNABERT-S")
    assert_runs_as("zhihan1996/DNABERT-S", reference)
    assert files("zhihan1996/DNABERT-S") == {
        "config": snapshot / "config.json",
        "tokenizer": snapshot / "tokenizer.json",
        "model": snapshot / "model.safetensors",
    }
    with pytest.raises(ValueError, match=r"'zhihan1996/DNABERT-2-117M' is not in the local Hugging Face cache"):
        load("zhihan1996/DNABERT-2-117M")


def test_a_sharded_checkpoint_loads_and_lists_its_shards(tmp_path, reference, tokenizer_json):
    folder = save_folder(reference, tmp_path / "sharded", tokenizer_json)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    keys = sorted(state)
    weight_map = {key: f"model-0000{1 + (i % 2)}-of-00002.safetensors" for i, key in enumerate(keys)}
    for shard in sorted(set(weight_map.values())):
        save_file({key: state[key] for key in keys if weight_map[key] == shard}, folder / shard)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert files(folder) == {
        "config": folder / "config.json", "tokenizer": folder / "tokenizer.json",
        "model": folder / "model.safetensors.index.json",
        "model-shard-1": folder / "model-00001-of-00002.safetensors",
        "model-shard-2": folder / "model-00002-of-00002.safetensors",
    }  # fmt: skip
    assert_runs_as(folder, reference)


def test_owns_only_dnabert_specs(tmp_path, folder, hf_cache, offline):  # noqa: F811
    (tmp_path / "esm").mkdir()
    (tmp_path / "esm" / "config.json").write_text(json.dumps({"model_type": "esm"}))
    torch.save({}, tmp_path / "esm2.pt")
    assert owns("random:dnabert-s") and owns(folder) and owns(str(folder))
    assert owns("zhihan1996/DNABERT-S")  # not cached: ours, so that the error says how to download it
    for spec in ("random:esm2_t6_8M", "esm2_t6_8M_UR50D", tmp_path / "esm", tmp_path / "esm2.pt",
                 "facebook/esm2_t6_8M_UR50D", tmp_path / "absent", 5):  # fmt: skip
        assert not owns(spec), spec


def test_random_dnabert_s_warns_and_is_seeded():
    with pytest.warns(UserWarning, match=r"random:dnabert-s: weights are RANDOM \(seed 7\).*meaningless for biology"):
        first, tokens = load("random:dnabert-s", seed=7)
    with pytest.warns(UserWarning):
        second, _ = load("random:dnabert-s", seed=7, dtype=None)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    shapes = {name: tuple(t.shape) for name, t in first.state_dict().items()}
    assert shapes["encoder.layer.11.mlp.gated_layers.weight"] == (6144, 768) and len(shapes) == 4 + 12 * 11
    assert tokens.vocab_size == 4096 and files("random:dnabert-s") == {}
    with pytest.raises(ValueError, match=r"unknown model 'random:dnabert-7'.*'random:dnabert-s'"):
        load("random:dnabert-7")


def refused(folder, *patterns: str) -> str:
    """The one-line ValueError ``load(folder)`` raises, naming the file and ``patterns``."""
    return one_line_error(load, folder, patterns=(str(folder), *patterns))


def with_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"num_hidden_layers": 100000}, "num_hidden_layers = 100000, expected an int in 1..256"),
        ({"hidden_size": 10**30}, "hidden_size = 10"),
        ({"intermediate_size": 10**9}, "intermediate_size = 1000000000, expected an int in 1..262144"),
        ({"vocab_size": 0}, "vocab_size = 0, expected an int in 1..1048576"),
        ({"num_attention_heads": -4}, "num_attention_heads = -4, expected an int in 1..64"),
        ({"num_attention_heads": 7}, "num_attention_heads = 7 does not divide hidden_size = 64"),
        ({"num_hidden_layers": "2"}, "num_hidden_layers = '2', expected an int"),
        ({"num_hidden_layers": True}, "num_hidden_layers = True, expected an int"),
        ({"hidden_size": 64.0}, "hidden_size = 64.0, expected an int"),
        ({"layer_norm_eps": "tiny"}, "layer_norm_eps = 'tiny', expected a number in (0, 1)"),
        ({"layer_norm_eps": 0}, "layer_norm_eps = 0, expected a number in (0, 1)"),
        ({"type_vocab_size": [2]}, "type_vocab_size = [2], expected an int"),
        ({"model_type": "esm"}, "model_type = 'esm', expected 'bert'"),
        ({"num_hidden_layers": None}, "lacks ['num_hidden_layers']"),
    ],
)
def test_a_crafted_config_is_one_line_before_any_weight_is_read(folder, changes, expected):
    message = refused(with_config(folder, **changes), expected)
    assert str(folder / "config.json") in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"num_hidden_layers": 256}, "num_hidden_layers = 256 means blocks 0..255, but the state dict has no weights"),
        (
            {"hidden_size": 65536, "num_attention_heads": 64, "intermediate_size": 262144},
            "but config.json (hidden_size=65536",
        ),
    ],
    ids=["layers", "widths"],
)
def test_a_huge_config_over_small_weights_is_refused_at_once(folder, changes, expected):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    refused(with_config(folder, **changes), expected)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 256 << 10, f"peak memory grew by {grown} KiB: something of the claimed size was built"


def edit_weights(folder, edit) -> None:
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    edit(state)
    torch.save(state, folder / "pytorch_model.bin")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.pop("encoder.layer.1.mlp.wo.bias"), "lacks 1 weight(s) of a DNABERT"),
        (
            lambda s: s.update({"encoder.layer.0.attention.self.Wqkv.weight": torch.zeros(64, 192)}),
            "'encoder.layer.0.attention.self.Wqkv.weight' has shape (64, 192), but config.json",
        ),
        (lambda s: s.update({"encoder.layer.2.mlp.wo.bias": torch.zeros(64)}), "has weights for block(s) 2"),
        (lambda s: s.update({"embeddings.LayerNorm.bias": torch.zeros(64, dtype=torch.int32)}), "torch.int32 tensor"),
        (lambda s: s.update({"bert.embeddings.LayerNorm.bias": torch.zeros(64)}), "both name the weight"),
    ],
    ids=["missing", "transposed", "extra-block", "int", "twice"],
)
def test_a_malformed_weight_is_named(tmp_path, reference, tokenizer_json, edit, expected):
    folder = save_folder(reference, tmp_path / "m", tokenizer_json, "pytorch_model.bin")
    edit_weights(folder, edit)
    refused(folder, str(folder / "pytorch_model.bin"), expected)


def test_an_unexpected_weight_is_left_out_with_a_warning(tmp_path, reference, tokenizer_json):
    folder = save_folder(reference, tmp_path / "m", tokenizer_json, "pytorch_model.bin")
    edit_weights(folder, lambda s: s.update({"embeddings.position_embeddings.weight": torch.zeros(512, 64)}))
    with pytest.warns(UserWarning, match=r"ignoring 1 unexpected weight\(s\): 'embeddings\.position_embeddings"):
        load(folder)


def test_a_pickle_that_would_run_code_and_the_folders_python_files_never_run(tmp_path, reference, tokenizer_json):
    folder = save_folder(reference, tmp_path / "m", tokenizer_json, "pytorch_model.bin")
    target = tmp_path / "pwned"
    for name in ("bert_layers.py", "configuration_bert.py", "__init__.py"):  # what such folders ship
        (folder / name).write_text(f"import os\nos.mkdir({str(tmp_path / ('imported_' + name))!r})\n")
    with_config(folder, auto_map={"AutoModel": "bert_layers.BertModel", "AutoConfig": "configuration_bert.BertConfig"})
    load(folder)  # a clean folder: its .py files are not imported
    edit_weights(folder, lambda s: s.update({"embeddings.LayerNorm.bias": MkdirPayload(target)}))
    message = refused(folder, "pytorch_model.bin")
    assert "weights_only=False" not in message
    assert not target.exists()
    assert not list(tmp_path.glob("imported_*"))


def test_a_folder_without_a_usable_tokenizer_is_refused(folder, tokenizer_json):
    with_config(folder, vocab_size=1000)
    refused(folder, "gives ids up to 4095, but", "vocab_size = 1000; the tokenizer and the model disagree")
    (folder / "tokenizer.json").unlink()
    refused(folder, "no tokenizer.json")
