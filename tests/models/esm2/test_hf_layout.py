"""ESM-2 in transformers' layout: equal to transformers' own EsmModel, the same model as fair-esm's
format, loaded from folders and the Hugging Face cache, and every malformed folder refused."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest
import torch
from conftest import one_line_error, tiny_esm2
from hf_cache import cache_model
from hf_models import (
    PUBLISHED_650M,
    copy_into_transformers,
    esm_config,
    hidden_states,
    random_proteins,
    random_transformers_model,
)
from mapped import in_mapping, mapped_ranges
from safetensors.torch import load_file, save_file

from virnucpro.models import ARCHITECTURES, PackedESM2, load_model, mean_pool, save_checkpoint
from virnucpro.models.esm2 import FAMILY, checkpoint_path, owns, save_hf_folder
from virnucpro.models.esm2.hf_layout import read_hf_config

LENGTHS = [1, 2, 7, 64, 333, 1022]  # residues; the longest also holds <mask> tokens


def packed_layers(model, batch_converter, proteins: list[str]) -> tuple[dict[int, torch.Tensor], torch.Tensor, list]:
    """(every layer of a float32 PackedESM2 of ``model`` over ``proteins`` packed together, cu_seqlens,
    each protein's tokens)."""
    tokens = [batch_converter([(str(i), p)])[2][0] for i, p in enumerate(proteins)]
    lengths = torch.tensor([len(t) for t in tokens])
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    packed = PackedESM2(model, dtype=torch.float32)
    layers = list(range(model.num_layers + 1))
    with torch.no_grad():
        reps = packed(torch.cat(tokens), cu_seqlens, int(lengths.max()), repr_layers=layers)["representations"]
    return reps, cu_seqlens, tokens


def assert_equals_transformers(folder: pathlib.Path, reference, batch_converter, proteins: list[str]) -> None:
    """Every layer of every protein within 1e-5 of transformers' hidden states, and mean pooling
    within 1e-5 of the mean of last_hidden_state over the residues."""
    model, _ = load_model(folder)
    reps, cu_seqlens, tokens = packed_layers(model, batch_converter, proteins)
    expected = hidden_states(reference, tokens)
    for layer, rows in reps.items():
        for i, states in enumerate(expected):
            actual = rows[cu_seqlens[i] : cu_seqlens[i + 1]]
            error = (actual - states[layer]).abs()
            where = f"layer {layer}, protein {i} ({len(tokens[i])} tokens)"
            assert error.max() <= 1e-5, f"{where}: max {error.max():.3g}, mean {error.mean():.3g}"
    means = mean_pool(reps[model.num_layers], cu_seqlens)
    wanted = torch.stack([states[-1][1:-1].mean(0) for states in expected])
    error = (means - wanted).abs()
    assert error.max() <= 1e-5, f"mean pooling: max {error.max():.3g}, mean {error.mean():.3g}"


@pytest.mark.parametrize(
    ("layers", "embed_dim", "heads", "eps", "masked_lm"),
    [(1, 32, 2, 1e-5, False), (2, 64, 4, 1e-5, True), (3, 96, 6, 1e-12, False), (4, 64, 4, 1e-12, False)],
    ids=["1x32", "2x64-masked-lm", "3x96-eps-1e-12", "4x64-eps-1e-12-transformers-init"],
)
def test_every_layer_equals_transformers_esm_model(tmp_path, batch_converter, layers, embed_dim, heads, eps, masked_lm):
    """Its own save_pretrained folder; eps 1e-12 (transformers' default) is honoured, not replaced by
    fair-esm's 1e-5: at transformers' own initialisation (small LayerNorm inputs) that would show."""
    config = esm_config(layers, embed_dim, heads, eps=eps)
    reference = random_transformers_model(config, seed=layers, masked_lm=masked_lm, unit_scale=layers != 4)
    reference.save_pretrained(tmp_path / "hf")
    base = reference.esm if masked_lm else reference
    proteins = random_proteins(LENGTHS, seed=layers, masks=9)
    assert_equals_transformers(tmp_path / "hf", base, batch_converter, proteins)


@pytest.mark.slow
def test_every_layer_equals_transformers_at_the_650m_shape(tmp_path, batch_converter):
    layers, embed_dim, heads = ARCHITECTURES["esm2_t33_650M_UR50D"]
    reference = random_transformers_model(esm_config(layers, embed_dim, heads), seed=650)
    reference.save_pretrained(tmp_path / "hf")
    proteins = random_proteins([1, 45, 250], seed=6, masks=3)
    assert_equals_transformers(tmp_path / "hf", reference, batch_converter, proteins)


def packed_embeddings(spec, batch_converter) -> dict[int, torch.Tensor]:
    return packed_layers(load_model(spec)[0], batch_converter, random_proteins(LENGTHS, seed=1, masks=5))[0]


@pytest.fixture
def fair_esm_and_copy(tmp_path):
    """(a tiny fair-esm model saved as a fair-esm checkpoint, its path, transformers' copy of it)."""
    model = tiny_esm2(2, 64, 4, seed=11)
    save_checkpoint(model, tmp_path / "fair.pt")
    return model, tmp_path / "fair.pt", copy_into_transformers(model)


def test_fair_esm_checkpoint_converted_by_transformers_gives_bitwise_the_same_model(
    fair_esm_and_copy, tmp_path, batch_converter
):
    """transformers 5 writes a block's LayerNorms as gamma/beta and one "*" rotary key: both read."""
    model, fair_path, hf = fair_esm_and_copy
    hf.save_pretrained(tmp_path / "hf")
    assert any(key.endswith("LayerNorm.gamma") for key in load_file(tmp_path / "hf" / "model.safetensors"))
    expected = packed_embeddings(fair_path, batch_converter)
    actual = packed_embeddings(tmp_path / "hf", batch_converter)
    assert all(torch.equal(actual[layer], expected[layer]) for layer in expected)
    fair, ours = load_model(fair_path)[0].state_dict(), load_model(tmp_path / "hf")[0].state_dict()
    assert fair.keys() == ours.keys() and all(torch.equal(fair[key], ours[key]) for key in fair)


def test_a_pytorch_model_bin_folder_loads_the_same(fair_esm_and_copy, tmp_path, batch_converter):
    model, fair_path, hf = fair_esm_and_copy
    folder = tmp_path / "bin"
    hf.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")  # as transformers 4 wrote it
    assert checkpoint_path(folder) == folder / "pytorch_model.bin"
    expected = packed_embeddings(fair_path, batch_converter)
    actual = packed_embeddings(folder, batch_converter)
    assert all(torch.equal(actual[layer], expected[layer]) for layer in expected)


def test_our_writer_is_read_by_transformers_and_by_us(fair_esm_and_copy, tmp_path):
    from transformers import EsmForMaskedLM

    model, _, hf = fair_esm_and_copy
    folder = save_hf_folder(model, tmp_path / "ours")
    tokens = torch.tensor([[0, 20, 15, 5, 4, 32, 23, 2]])
    with torch.no_grad():
        theirs = EsmForMaskedLM.from_pretrained(folder).eval()(tokens).logits
        assert torch.equal(theirs, hf(tokens).logits)
        assert torch.equal(load_model(folder)[0](tokens)["logits"], model(tokens)["logits"])
    with pytest.raises(FileExistsError):
        save_hf_folder(model, folder)


def test_sharded_safetensors_load_the_same(fair_esm_and_copy, tmp_path, batch_converter):
    model, fair_path, hf = fair_esm_and_copy
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert checkpoint_path(tmp_path / "sharded").name == "model.safetensors.index.json"
    # The resume fingerprint sees the config and every shard, not only the index.
    read = FAMILY.files(str(tmp_path / "sharded"))
    shards = sorted(p.name for p in (tmp_path / "sharded").glob("model-*.safetensors"))
    assert len(shards) > 1 and read["config"].name == "config.json"
    assert sorted(p.name for role, p in read.items() if role.startswith("model-shard-")) == shards
    expected = packed_embeddings(fair_path, batch_converter)
    actual = packed_embeddings(tmp_path / "sharded", batch_converter)
    assert all(torch.equal(actual[layer], expected[layer]) for layer in expected)


def test_an_esm_model_without_lm_head_loads_with_filled_heads(tmp_path, batch_converter):
    from transformers import EsmModel

    reference = random_transformers_model(esm_config(2, 64, 4), seed=4)
    reference.save_pretrained(tmp_path / "hf")
    assert not any(key.startswith("lm_head") for key in load_file(tmp_path / "hf" / "model.safetensors"))
    model, _ = load_model(tmp_path / "hf")
    assert isinstance(reference, EsmModel) and not any(t.is_meta for t in model.state_dict().values())
    assert all(t.isfinite().all() for t in model.state_dict().values())
    assert torch.equal(model.lm_head.weight, model.embed_tokens.weight)


def test_a_mapped_folder_copies_nothing(fair_esm_and_copy, tmp_path):
    model, _, _ = fair_esm_and_copy
    folder = save_hf_folder(model.half(), tmp_path / "hf")
    loaded, _ = load_model(folder, dtype=None)
    ranges = mapped_ranges(folder / "model.safetensors")
    for key, tensor in loaded.state_dict().items():
        if "inv_freq" not in key:  # computed, not read
            assert tensor.dtype == torch.float16 and in_mapping(tensor, ranges), key


# The Hugging Face cache and provenance.


def test_a_hub_id_loads_from_the_cache_and_provenance_names_its_file(fair_esm_and_copy, tmp_path, hf_cache):
    from virnucpro.models.esm2 import FAMILY
    from virnucpro.pipeline.fingerprint import model_identities

    model, fair_path, _ = fair_esm_and_copy
    snapshot = cache_model(hf_cache, "facebook/esm2_tiny", save_hf_folder(model, tmp_path / "hf"))
    weights = snapshot / "model.safetensors"
    assert owns("facebook/esm2_tiny") and checkpoint_path("facebook/esm2_tiny") == weights
    identity = model_identities(FAMILY, "facebook/esm2_tiny")["model"]
    assert identity.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert identity.size == weights.stat().st_size
    fair, ours = load_model(fair_path)[0].state_dict(), load_model("facebook/esm2_tiny")[0].state_dict()
    assert all(torch.equal(fair[key], ours[key]) for key in fair)


def test_an_uncached_hub_id_says_how_to_download_it(hf_cache):
    with pytest.raises(ValueError) as info:
        load_model("facebook/esm2_t36_3B_UR50D")
    message = str(info.value)
    assert "\n" not in message and str(hf_cache) in message
    assert "huggingface-cli download facebook/esm2_t36_3B_UR50D" in message
    assert not owns("facebook/esm2_t36_3B_UR50D")


def test_which_specs_are_esm2s(tmp_path, fair_esm_and_copy):
    model, fair_path, _ = fair_esm_and_copy
    folder = save_hf_folder(model, tmp_path / "hf")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert owns(folder) and owns(str(folder)) and owns(fair_path) and owns("esm2_t33_650M_UR50D")
    assert owns("random:esm2_t6_8M") and owns("random:esm2_t6_8M_UR50D")
    assert not owns(other) and not owns("random:dnabert-s") and not owns(tmp_path / "absent") and not owns(tmp_path)


def test_the_published_650m_config_is_accepted():
    settings = read_hf_config(PUBLISHED_650M, pathlib.Path("config.json"))
    assert tuple(settings.cfg) == (*ARCHITECTURES["esm2_t33_650M_UR50D"], True) and settings.layer_norm_eps == 1e-5


# Every malformed folder: one line, naming the file and what is wrong; nothing built, nothing run.


def refused(spec, *patterns: str) -> str:
    return one_line_error(load_model, spec, patterns=patterns)


@pytest.fixture
def folder(fair_esm_and_copy, tmp_path) -> pathlib.Path:
    return save_hf_folder(fair_esm_and_copy[0], tmp_path / "hf")


def edit_config(folder: pathlib.Path, **changes) -> pathlib.Path:
    config = json.loads((folder / "config.json").read_text())
    for field, value in changes.items():
        if value is ...:
            config.pop(field)
        else:
            config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json"


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"position_embedding_type": "absolute"}, "position_embedding_type = 'absolute', expected 'rotary'"),
        ({"position_embedding_type": ...}, "position_embedding_type = absent (transformers' default 'absolute')"),
        ({"token_dropout": False}, "token_dropout = False, expected true"),
        ({"model_type": "bert"}, "model_type = 'bert', expected 'esm'"),
        ({"emb_layer_norm_before": True}, "emb_layer_norm_before = True, expected false"),
        ({"is_folding_model": True}, "is_folding_model = True"),
        ({"is_decoder": True}, "is_decoder = True"),
        ({"vocab_size": 34}, "vocab_size = 34, expected 33"),
        ({"mask_token_id": 3}, "mask_token_id = 3, expected 32"),
        ({"rope_theta": 500000.0}, "rope_theta = 500000.0, expected 10000.0"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "rope_parameters = {'rope_type': 'linear'"),
        ({"tie_word_embeddings": False}, "tie_word_embeddings = False"),
        ({"intermediate_size": 100}, "intermediate_size = 100, expected 256"),
        ({"head_dim": 8}, "head_dim = 8, expected 16"),
        ({"num_hidden_layers": 100000}, "config.num_hidden_layers = 100000, expected an int in 1..256"),
        ({"num_attention_heads": 3}, "num_attention_heads = 3 does not split hidden_size = 64"),
        ({"hidden_size": "64"}, "config.hidden_size = '64', expected an int"),
        ({"hidden_size": ...}, "lacks ['hidden_size']"),
        ({"layer_norm_eps": "1e-5"}, "layer_norm_eps = '1e-5', expected a number in (0, 0.1]"),
        ({"layer_norm_eps": 0}, "layer_norm_eps = 0, expected a number"),
    ],
)
def test_a_config_that_is_not_esm2_is_refused_naming_the_field(folder, changes, pattern):
    path = edit_config(folder, **changes)
    refused(folder, str(path), pattern)


def rewrite_weights(folder: pathlib.Path, change) -> pathlib.Path:
    path = folder / "model.safetensors"
    state = load_file(path)
    change(state)
    path.unlink()
    save_file(state, path)
    return path


def test_a_missing_key_is_named_as_transformers_names_it(folder):
    path = rewrite_weights(folder, lambda state: state.pop("esm.encoder.layer.1.attention.self.key.weight"))
    refused(folder, str(path), "lacks 1 weight(s) of its ESM-2 architecture: encoder.layer.1.attention.self.key.weight")


def test_a_wrong_shape_is_named_with_what_the_config_implies(folder):
    key = "esm.encoder.layer.0.intermediate.dense.weight"
    path = rewrite_weights(folder, lambda state: state.update({key: torch.zeros(64, 256)}))
    refused(
        folder, str(path),
        f"'{key}' has shape (64, 256), but config (num_hidden_layers=2, hidden_size=64, num_attention_heads=4) "
        "implies (256, 64)",
    )  # fmt: skip


def test_half_a_head_is_a_missing_weight_and_an_unknown_key_a_warning(folder):
    path = rewrite_weights(folder, lambda state: state.pop("lm_head.dense.bias"))
    refused(folder, "lacks 1 weight(s)", "lm_head.dense.bias")
    rewrite_weights(folder, lambda state: state.update({"lm_head.dense.bias": torch.zeros(64), "extra": torch.ones(1)}))
    with pytest.warns(UserWarning, match=rf"{path}: ignoring 1 unexpected weight\(s\): 'extra'"):
        load_model(folder)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(folder, tmp_path):
    from payloads import MkdirPayload

    target = tmp_path / "pwned"
    (folder / "model.safetensors").unlink()
    torch.save({"esm.embeddings.word_embeddings.weight": MkdirPayload(target)}, folder / "pytorch_model.bin")
    refused(folder, str(folder / "pytorch_model.bin"), "which was refused", "never unpickles code")
    assert not target.exists()


def test_folders_without_config_or_weights_say_what_they_lack(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "is a directory, not a checkpoint, and holds no config.json")
    (folder / "model.safetensors").unlink()
    refused(folder, f"{folder}: no weights; expected one of model.safetensors")


def test_both_spellings_embed_the_same_through_the_cli_and_provenance_names_the_file(
    capsys, tmp_path, hf_cache, tiny_checkpoint
):
    """A fair-esm file and its transformers-layout copy in the Hugging Face cache: the same output,
    and each output's provenance names the file read and its SHA-256."""
    import h5py

    from virnucpro.cli import main

    folder = save_hf_folder(load_model(tiny_checkpoint)[0], tmp_path / "hf")
    snapshot = cache_model(hf_cache, "facebook/esm2_tiny", folder)
    fasta = tmp_path / "in.faa"
    fasta.write_text("".join(f">p{i}\n{p}\n" for i, p in enumerate(random_proteins([1, 30, 400], seed=3))))
    outputs = {}
    for spec, name in ((tiny_checkpoint, "fair.h5"), ("facebook/esm2_tiny", "hf.h5")):
        argv = ["embed", str(fasta), "-o", str(tmp_path / name), "--model", str(spec)]
        argv += ["--device", "cpu", "--no-progress"]
        assert main(argv) == 0, capsys.readouterr()
        with h5py.File(tmp_path / name) as f:
            outputs[spec] = (f["embeddings"][:], dict(f.attrs))
    (fair, fair_attrs), (ours, attrs) = outputs[tiny_checkpoint], outputs["facebook/esm2_tiny"]
    assert (fair == ours).all() and fair.shape == (3, 64)
    weights = snapshot / "model.safetensors"
    assert attrs["model"] == "facebook/esm2_tiny" and attrs["model_file"] == str(weights.resolve())
    assert attrs["model_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    digests = json.loads(attrs["model_files_sha256"])
    assert digests["config"] == hashlib.sha256((snapshot / "config.json").read_bytes()).hexdigest()
    assert "model_files_sha256" not in fair_attrs
    assert fair_attrs["model_file"] == str(tiny_checkpoint.resolve())


def test_a_missing_pt_path_with_one_slash_is_a_missing_file_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="model checkpoint 'models/esm2.pt' does not exist"):
        load_model("models/esm2.pt")
