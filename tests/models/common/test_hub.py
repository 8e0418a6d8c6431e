"""Hugging Face folders and cache, offline and safe: ids, folders, config.json and weight files."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import socket

import pytest
import torch
from conftest import one_line_error
from hf_cache import cache_model
from mapped import in_mapping, mapped_ranges
from payloads import MkdirPayload, eval_pickle
from safetensors.torch import save_file

from virnucpro.models.common import hub

WEIGHTS = {"a.weight": torch.arange(12.0).reshape(3, 4), "b.bias": torch.ones(5, dtype=torch.float16)}


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test (HF_HUB_OFFLINE is unset by ``hf_cache``)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def model_folder(path: pathlib.Path, weights: str = "model.safetensors", config: object = None) -> pathlib.Path:
    """A folder in Hugging Face layout: config.json and ``weights`` holding ``WEIGHTS``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "test"} if config is None else config))
    if weights.endswith(".safetensors"):
        save_file(WEIGHTS, path / weights)
    elif weights:
        torch.save(WEIGHTS, path / weights)
    return path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("facebook/esm2_t33_650M_UR50D", True),
        ("zhihan1996/DNABERT-S", True),
        ("esm2_t33_650M_UR50D", False),  # fair-esm's name
        ("random:esm2_t6_8M", False),
        ("a/b/c", False),
        ("/abs/model", False),
        ("./model", False),
        ("foo--bar/model", False),  # the Hub forbids "--" and ".."
        ("owner/a..b", False),
        ("owner/name.", False),
        ("owner/", False),
        ("owner/näme", False),
    ],
)
def test_hub_ids(spec, expected):
    assert hub.is_hub_id(spec) is expected


def test_an_existing_path_is_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.is_hub_id("owner/name")
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").write_text("")
    assert not hub.is_hub_id("owner/name") and not hub.is_hub_id(pathlib.Path("owner/name"))


def test_hub_id_resolves_to_its_cached_snapshot_without_network(hf_cache, tmp_path, no_network):
    snapshot = cache_model(hf_cache, "owner/model", model_folder(tmp_path / "src"))
    folder = hub.local_folder("owner/model")
    assert folder == snapshot
    assert hub.weights_path(folder) == snapshot / "model.safetensors"
    loaded = hub.read_weights(hub.weights_path(folder))
    assert all(torch.equal(loaded[key], WEIGHTS[key]) for key in WEIGHTS) and loaded.keys() == WEIGHTS.keys()


def test_uncached_hub_id_says_where_it_looked_and_how_to_download(hf_cache, tmp_path, no_network):
    cache_model(hf_cache, "owner/other", model_folder(tmp_path / "src"))
    one_line_error(
        hub.local_folder,
        "owner/model",
        patterns=("'owner/model'", str(hf_cache), "huggingface-cli download owner/model", "hf download owner/model"),
    )


def test_cached_repo_without_config_is_not_a_model(hf_cache, tmp_path, no_network):
    source = tmp_path / "src"
    source.mkdir()
    save_file(WEIGHTS, source / "model.safetensors")
    cache_model(hf_cache, "owner/model", source)
    one_line_error(hub.local_folder, "owner/model", patterns=("not in the local Hugging Face cache",))


def test_local_folders(tmp_path):
    folder = model_folder(tmp_path / "m")
    assert hub.local_folder(folder) == folder and hub.local_folder(str(folder)) == folder
    one_line_error(hub.local_folder, tmp_path / "absent", patterns=("absent: does not exist",))
    one_line_error(hub.local_folder, folder / "config.json", patterns=("config.json: is not a folder",))
    (folder / "config.json").unlink()
    one_line_error(hub.local_folder, folder, patterns=(f"{folder}: no config.json",))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[1, 2]", "holds a JSON list, expected an object"),
        ('"esm"', "holds a JSON str"),
        ('{"a": 1', "not valid JSON"),
        ('{"a": 1, "a": 2}', "key 'a' appears twice"),
        ('{"layer_norm_eps": NaN}', "NaN is not JSON"),
        ("[" * 100_000, "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_malformed_configs_are_refused_naming_the_file(tmp_path, text, pattern):
    folder = model_folder(tmp_path / "m")
    path = folder / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    one_line_error(hub.read_config, folder, patterns=(str(path), pattern))


def test_oversized_config_is_refused_unread(tmp_path):
    folder = model_folder(tmp_path / "m")
    (folder / "config.json").write_text(json.dumps({"pad": "x" * hub.MAX_CONFIG_BYTES}))
    one_line_error(hub.read_config, folder, patterns=(str(folder / "config.json"), "larger than 1048576 bytes"))
    (folder / "config.json").write_text(json.dumps({"pad": "x" * (hub.MAX_CONFIG_BYTES - 20)}))
    assert len(hub.read_config(folder)["pad"]) == hub.MAX_CONFIG_BYTES - 20


def test_weights_prefer_safetensors_then_bin(tmp_path):
    folder = model_folder(tmp_path / "m", "pytorch_model.bin")
    assert hub.weights_path(folder) == folder / "pytorch_model.bin"
    save_file(WEIGHTS, folder / "model.safetensors")
    assert hub.weights_path(folder) == folder / "model.safetensors"


def test_missing_weights_name_the_folder_and_what_is_expected(tmp_path):
    folder = model_folder(tmp_path / "m", weights="")
    patterns = (f"{folder}: no weights", "model.safetensors", "pytorch_model.bin")
    one_line_error(hub.weights_path, folder, patterns=patterns)


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_weights_are_views_of_the_mapped_file_not_copies(tmp_path, name):
    """Both formats leave the bytes in the page cache: every tensor lies inside a mapping of the file itself."""
    big = {"big": torch.randn(512, 1024), **WEIGHTS}  # 2 MiB: spans many pages
    folder = model_folder(tmp_path / "m", weights="")
    (save_file if name.endswith(".safetensors") else lambda state, path: torch.save(state, path))(big, folder / name)
    loaded = hub.read_weights(hub.weights_path(folder))
    ranges = mapped_ranges(folder / name)
    for key, tensor in loaded.items():
        assert torch.equal(tensor, big[key]) and tensor.dtype == big[key].dtype, key
        assert in_mapping(tensor, ranges), f"{key} was copied out of {name}"
    loaded["big"].add_(1)  # a private (copy-on-write) mapping: the file never changes
    assert torch.equal(hub.read_weights(folder / name)["big"], big["big"])


def test_legacy_pickle_bin_loads(tmp_path):
    folder = model_folder(tmp_path / "m", weights="")
    torch.save(WEIGHTS, folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    loaded = hub.read_weights(folder / "pytorch_model.bin")
    assert all(torch.equal(loaded[key], WEIGHTS[key]) for key in WEIGHTS)


def test_bin_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    path, target = tmp_path / "pytorch_model.bin", tmp_path / "pwned"
    torch.save({"a.weight": torch.ones(2), "b": MkdirPayload(target)}, path)
    message = one_line_error(hub.read_weights, path, patterns=(str(path), f".{os.mkdir.__name__}, which was refused"))
    assert "never unpickles code" in message and "weights_only" not in message
    assert not target.exists()


def test_raw_pickle_calling_eval_is_refused_and_nothing_runs(tmp_path):
    assert pickle.loads(eval_pickle("6 * 7")) == 42  # the stream is live: plain pickle runs it
    path, target = tmp_path / "pytorch_model.bin", tmp_path / "pwned"
    path.write_bytes(eval_pickle(f"__import__('os').mkdir({str(target)!r})"))
    one_line_error(hub.read_weights, path, patterns=(str(path), "unpickle eval, which was refused", "never unpickles"))
    assert not target.exists()


def test_bin_of_something_else_is_refused(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save([torch.ones(2)], path)
    one_line_error(hub.read_weights, path, patterns=(str(path), "holds a list, expected a state dict"))
    torch.save({1: torch.ones(2)}, path)
    one_line_error(hub.read_weights, path, patterns=(str(path), "entry '1' is a int -> Tensor"))


@pytest.mark.parametrize("data", [b"", b"not a weights file", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_unreadable_files_are_refused(tmp_path, data):
    for name in ("model.safetensors", "pytorch_model.bin"):
        (tmp_path / name).write_bytes(data)
        one_line_error(hub.read_weights, tmp_path / name, patterns=(str(tmp_path / name),))


def sharded(folder: pathlib.Path, weight_map: dict[str, str]) -> pathlib.Path:
    """``WEIGHTS`` in two safetensors shards and the index ``weight_map``."""
    save_file({"a.weight": WEIGHTS["a.weight"]}, folder / FIRST)
    save_file({"b.bias": WEIGHTS["b.bias"]}, folder / SECOND)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 58}, "weight_map": weight_map}))
    return index


def test_sharded_safetensors_load_from_their_index(tmp_path):
    folder = model_folder(tmp_path / "m", weights="")
    index = sharded(folder, {"a.weight": FIRST, "b.bias": SECOND})
    assert hub.weights_path(folder) == index
    assert hub.weight_files(index) == [index, folder / FIRST, folder / SECOND]
    loaded = hub.read_weights(index)
    assert loaded.keys() == WEIGHTS.keys() and all(torch.equal(loaded[key], WEIGHTS[key]) for key in WEIGHTS)


FIRST, SECOND = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


@pytest.mark.parametrize(
    ("weight_map", "pattern"),
    [
        ({"a.weight": f"../{FIRST}", "b.bias": SECOND}, "expected the name of a .safetensors file"),
        ({"a.weight": "pytorch_model.bin", "b.bias": SECOND}, "expected the name of a .safetensors file"),
        ({"a.weight": FIRST, "b.bias": FIRST}, "names 1 weight(s) its shards lack, e.g. 'b.bias'"),
        ({"a.weight": FIRST, "b.bias": FIRST, "c": SECOND}, f"{SECOND}: holds 'b.bias', which model.safetensors"),
        ({}, "no 'weight_map'"),
    ],
)
def test_inconsistent_indices_are_refused(tmp_path, weight_map, pattern):
    index = sharded(model_folder(tmp_path / "m", weights=""), weight_map)
    one_line_error(hub.read_weights, index, patterns=(str(index.parent), pattern))
