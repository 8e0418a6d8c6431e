"""Malformed checkpoints through load_model: each refused with one ValueError line naming what is wrong."""

from __future__ import annotations

import argparse

import pytest
import torch
from checkpoint_files import contents, refused, tiny_checkpoint, written


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path)


def test_a_cfg_claiming_100000_layers_is_refused_before_anything_is_built(tmp_path):
    cfg = argparse.Namespace(encoder_layers=100000, encoder_embed_dim=64, encoder_attention_heads=4, token_dropout=True)
    path = written(tmp_path, {"model": {}, "cfg": {"model": cfg}})
    assert path.stat().st_size < 2048
    refused(path, r"cfg\['model'\]\.encoder_layers = 100000, expected an int in 1\.\.256")


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("encoder_layers", "2", r"encoder_layers = '2', expected an int in 1\.\.256"),
        ("encoder_layers", True, r"encoder_layers = True, expected an int"),
        ("encoder_layers", 2.0, r"encoder_layers = 2\.0, expected an int"),
        ("encoder_layers", 0, r"encoder_layers = 0, expected an int in 1\.\.256"),
        ("encoder_embed_dim", -64, r"encoder_embed_dim = -64, expected an int in 1\.\.65536"),
        ("encoder_embed_dim", 10**30, r"encoder_embed_dim = 10+, expected an int in 1\.\.65536"),
        ("encoder_attention_heads", None, r"encoder_attention_heads = None, expected an int in 1\.\.64"),
        ("encoder_attention_heads", 3, r"heads = 3 does not split encoder_embed_dim = 64 into an even head dim"),
        ("encoder_attention_heads", 64, r"heads = 64 does not split .* even head dimension"),
        ("token_dropout", 1, r"token_dropout = 1, expected True or False"),
        ("token_dropout", "yes", r"token_dropout = 'yes', expected True or False"),
    ],
)
def test_a_malformed_cfg_field_is_named_with_its_value(checkpoint, tmp_path, field, value, pattern):
    data = contents(checkpoint[1])
    setattr(data["cfg"]["model"], field, value)
    refused(written(tmp_path, data), pattern)


@pytest.mark.parametrize(
    ("corrupt", "pattern"),
    [
        (lambda data: data.update(model=list(data["model"].values())), r"'model' is a list, expected the state dict"),
        (lambda data: data["cfg"].update(model=vars(data["cfg"]["model"])), r"cfg\['model'\] is a dict, expected"),
        (lambda data: data["cfg"].pop("model"), r"cfg\['model'\] is absent, expected"),
        (lambda data: data.update(cfg=[1, 2]), r"'cfg' is a list, expected 'cfg' to be \{'model': argparse"),
        (lambda data: delattr(data["cfg"]["model"], "token_dropout"), r"cfg\['model'\] lacks \['token_dropout'\]"),
        (lambda data: data.pop("cfg"), r"not a fair-esm ESM-2 checkpoint: expected .*got keys \['model'\]"),
    ],
    ids=["model-list", "cfg-dict", "cfg-no-model", "cfg-list", "cfg-lacks-field", "no-cfg"],
)
def test_a_malformed_checkpoint_layout_says_which_part(checkpoint, tmp_path, corrupt, pattern):
    data = contents(checkpoint[1])
    corrupt(data)
    refused(written(tmp_path, data), pattern)


FC1 = "encoder.sentence_encoder.layers.1.fc1.weight"  # (4E, E) = (256, 64) in the tiny model


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        (FC1, torch.zeros(256, 64, dtype=torch.int64), r"fc1\.weight' is a torch\.int64 tensor .*float16, bfloat16"),
        (FC1, torch.zeros(256, 64, dtype=torch.complex64), r"is a torch\.complex64 tensor"),
        (FC1, torch.zeros(256, 64, device="meta"), r"on meta\), expected a dense tensor"),
        (FC1, torch.zeros(256, 64).to_sparse(), r"torch\.sparse_coo, on cpu\), expected a dense tensor"),
        (FC1, torch.zeros(64, 256), r"fc1\.weight' has shape \(64, 256\), but cfg.* implies \(256, 64\)"),
        (FC1, [[0.0] * 64] * 256, r"fc1\.weight' is a list, expected a tensor of shape \(256, 64\)"),
        (FC1, None, r"is a NoneType, expected a tensor"),
        ("encoder.sentence_encoder.embed_tokens.weight", torch.zeros(34, 64), r"\(34, 64\), but .* implies \(33, 64\)"),
        ("encoder.contact_head.regression.weight", torch.zeros(1, 7), r"\(1, 7\), but .* implies \(1, 8\)"),
        ("encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq", torch.zeros(16), r"implies \(8,\)"),
    ],
    ids=["int64", "complex", "meta", "sparse", "transposed", "list", "none", "embed", "contacts", "rotary"],
)
def test_a_malformed_weight_is_named_with_what_was_expected(checkpoint, tmp_path, key, value, pattern):
    data = contents(checkpoint[1])
    assert key in data["model"]
    data["model"][key] = value
    refused(written(tmp_path, data), pattern)


@pytest.mark.parametrize(
    ("layers", "extra", "pattern"),
    [
        (3, None, r"encoder_layers = 3 means blocks 0\.\.2, but the state dict has no weights for block\(s\) 2;"),
        (1, None, r"encoder_layers = 1 means blocks 0\.\.0, but the state dict has weights for block\(s\) 1;"),
        (2, "encoder.sentence_encoder.layers.01.fc1.weight", r"has weights for block\(s\) '01'"),
        (2, "encoder.sentence_encoder.layers.7.anything", r"has weights for block\(s\) 7;"),
    ],
)
def test_block_indices_must_be_exactly_those_the_cfg_declares(checkpoint, tmp_path, layers, extra, pattern):
    data = contents(checkpoint[1])
    data["cfg"]["model"].encoder_layers = layers
    if extra:
        data["model"][extra] = torch.zeros(256, 64)
    refused(written(tmp_path, data), pattern)


def test_keys_must_be_distinct_strings(checkpoint, tmp_path):
    data = contents(checkpoint[1])
    data["model"][5] = torch.zeros(1)
    refused(written(tmp_path, data, "int_key.pt"), r"state dict key 5 is a int, expected a str")
    del data["model"][5]
    data["model"]["encoder.sentence_encoder.lm_head.bias"] = data["model"]["encoder.lm_head.bias"]
    refused(
        written(tmp_path, data, "twice.pt"),
        r"keys 'encoder\.lm_head\.bias' and 'encoder\.sentence_encoder\.lm_head\.bias' both name the weight 'lm_head",
    )


def test_half_a_contact_regression_is_a_missing_weight(checkpoint, tmp_path):
    data = contents(checkpoint[1])
    del data["model"]["encoder.contact_head.regression.bias"]
    refused(written(tmp_path, data), r"lacks 1 weight\(s\) of its ESM-2 architecture: contact_head\.regression\.bias")
