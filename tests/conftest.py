"""Shared fixtures: real example proteins and tiny random fair-esm ESM-2 models.

No weights can be downloaded in tests, so every model here is a randomly
initialised ``esm.model.esm2.ESM2``; fair-esm's own forward on the same weights
is the reference our code is compared with.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import esm
import pytest
import torch

#: Fixture modules every test may use by name: the Hugging Face cache tests (``hf_cache``).
pytest_plugins = ("hf_cache",)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "data"
PROTEOME = EXAMPLES / "MIIJ01000039.single.faa.gz"
CONTIGS = sorted(EXAMPLES.glob("*.fna.gz"))

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
#: For the "flash-attn" attention backend's parameter: ``pytest.param("flash-attn", marks=requires_flash_attn)``.
requires_flash_attn = pytest.mark.skipif(
    importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed"
)


def one_line_error(function: Callable, *args, patterns: tuple[str, ...]) -> str:
    """The message of the ValueError ``function(*args)`` raises: asserted one line, holding each of ``patterns``."""
    with pytest.raises(ValueError) as info:
        function(*args)
    message = str(info.value)
    assert "\n" not in message, message
    for pattern in patterns:
        assert pattern in message, (pattern, message)
    return message


def tiny_esm2(num_layers: int = 2, embed_dim: int = 64, attention_heads: int = 4, seed: int = 0) -> esm.model.esm2.ESM2:
    """A randomly initialised fair-esm ESM-2 in eval mode, built deterministically from ``seed``."""
    torch.manual_seed(seed)
    model = esm.model.esm2.ESM2(
        num_layers=num_layers,
        embed_dim=embed_dim,
        attention_heads=attention_heads,
        alphabet=esm.data.Alphabet.from_architecture("ESM-1b"),
        token_dropout=True,
    )
    return model.eval()


@pytest.fixture(scope="session")
def alphabet() -> esm.data.Alphabet:
    return esm.data.Alphabet.from_architecture("ESM-1b")


@pytest.fixture(scope="session")
def batch_converter(alphabet):
    return alphabet.get_batch_converter()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random ESM-2 (2 layers, width 64, seed 3) saved in fair-esm's checkpoint format."""
    from virnucpro.models import save_checkpoint

    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_checkpoint(tiny_esm2(2, 64, 4, seed=3), path)
    return path
