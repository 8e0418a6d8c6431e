"""Which family a model spec belongs to, and the architecture's promise: a family is one folder plus a registry line."""

from __future__ import annotations

import ast

import pytest
import torch
from conftest import REPO
from dnabert_reference import SHAPES, reference_model, save_folder

from virnucpro.models import FAMILIES, ForwardOptions, ModelFamily, family_for
from virnucpro.models.common.attention import ALIBI_BACKENDS
from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer


@pytest.mark.parametrize(
    ("spec", "family"),
    [
        ("random:dnabert-s", "dnabert"),
        ("random:esm2_t6_8M", "esm2"),
        ("esm2_t33_650M_UR50D", "esm2"),
        ("some/where/model.pt", "esm2"),
        ("random:unknown", "esm2"),  # nobody owns it: ESM-2's loader names what it accepts
    ],
)
def test_each_spec_goes_to_the_family_that_owns_it(spec, family):
    assert family_for(spec).name == family


def test_a_dnabert_folder_is_dnabert_and_its_files_are_the_ones_it_reads(tmp_path):
    folder = save_folder(
        reference_model(*SHAPES["2-layers-4-heads"]), tmp_path / "m", dnabert_tokenizer("random:dnabert-s").to_str()
    )
    family = family_for(str(folder))
    assert family.name == "dnabert" and family.reads == "nucleotide" and family.mean_includes_special_tokens
    files = family.files(str(folder))
    assert {role: path.name for role, path in files.items()} == {
        "config": "config.json", "model": "model.safetensors", "tokenizer": "tokenizer.json"
    }  # fmt: skip
    assert family.files("random:dnabert-s") == {} and FAMILIES["esm2"].files("random:esm2_t6_8M") == {}


def test_families_are_model_families_and_esm2_is_asked_last():
    assert all(isinstance(f, ModelFamily) for f in FAMILIES.values())
    assert list(FAMILIES)[-1] == "esm2"


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add("." * node.level + node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", ["data", "pipeline", "cli"])
def test_no_package_outside_models_names_a_family_folder(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(n for n in _imports(path) if any(f"models.{f}" in n for f in FAMILIES))
        for path in sorted((REPO / "virnucpro" / package).rglob("*.py"))
    }
    assert not {p: n for p, n in offenders.items() if n}, "a family must be reached through the registry only"


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_each_family_resolves_the_options_its_packed_model_runs_with(device):
    """What the pipeline records and checks before a run: DNABERT keeps the exact GELU it was trained
    with and an attention that adds ALiBi where ESM-2, on a GPU in bf16, takes the tanh GELU."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    dna = FAMILIES["dnabert"].resolve_options(ForwardOptions(), device, dtype)
    esm = FAMILIES["esm2"].resolve_options(ForwardOptions(), device, dtype)
    assert dna.gelu == "exact" and dna.attention in ALIBI_BACKENDS
    assert esm.gelu == ("tanh" if device == "cuda" else "exact")
    again = FAMILIES["dnabert"].resolve_options(dna, device, dtype)
    assert again == dna, "resolving resolved options changes nothing"
