"""The data layer's ``Tokenizer``s against their references, and the data layer's independence of model families.

ESM's: ``AlphabetTokenizer`` (the data layer's default, ESM-2's instance, and the one over a
user's ``batch_converter``) against ESM's own ``batch_converter``. DNABERT-S's byte pairs are
checked in ``test_bpe_dataset.py``.
"""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from test_collators import random_sequences

from virnucpro.data import AlphabetTokenizer, Tokenizer, UnknownCharacterError, default_tokenizer
from virnucpro.models.esm2 import TOKENIZER as ESM2_TOKENIZER


@pytest.mark.parametrize("tokenizer", [default_tokenizer(), ESM2_TOKENIZER], ids=["default", "esm2"])
def test_encode_equals_batch_converter_and_count_equals_encode(alphabet, batch_converter, tokenizer):
    rng = random.Random(5)
    for _ in range(60):
        seqs = random_sequences(alphabet, rng, rng.randint(1, 10))
        ids, lengths = tokenizer.encode(seqs)
        _, _, padded = batch_converter([(str(i), s) for i, s in enumerate(seqs)])
        want = [padded[i, : len(alphabet.encode(s)) + 2].tolist() for i, s in enumerate(seqs)]
        got = [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])]
        assert got == want, (
            f"first difference at sequence {next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)}"
        )
        assert ids.dtype == lengths.dtype == np.int64
        np.testing.assert_array_equal(tokenizer.count(seqs), lengths)


def test_esm2_and_the_data_layer_default_share_alphabet_layout_and_length():
    default = default_tokenizer()
    assert isinstance(default, Tokenizer) and isinstance(ESM2_TOKENIZER, Tokenizer)
    assert ESM2_TOKENIZER.alphabet == default.alphabet == "LAGVSERTIDPKQNFYMHWCXBUZO.-"
    assert ESM2_TOKENIZER.special_tokens_per_sequence == default.special_tokens_per_sequence == 2
    assert ESM2_TOKENIZER.max_length == default.max_length == 1022
    assert ESM2_TOKENIZER.per_character and ESM2_TOKENIZER.name == "ESM-2"


@pytest.mark.parametrize(
    ("seqs", "sequence", "char", "position"),
    [(["MKV", "KLJQ"], 1, "J", 3), (["<mask>MK", "QJ"], 1, "J", 2), (["M\u00e9"], 0, "\u00e9", 2)],
)
def test_an_unknown_character_says_which_sequence_and_where(seqs, sequence, char, position):
    with pytest.raises(UnknownCharacterError) as info:
        ESM2_TOKENIZER.encode(seqs)
    assert (info.value.sequence, info.value.character, info.value.position) == (sequence, char, position)
    assert "ESM-2's alphabet" in str(info.value)


def test_a_tokenizer_over_an_alphabet_without_eos_adds_only_bos(batch_converter):
    import esm

    alphabet = esm.data.Alphabet.from_architecture("ESM-1")
    tokenizer = AlphabetTokenizer(alphabet)
    ids, lengths = tokenizer.encode(["MKV", "Q"])
    _, _, padded = alphabet.get_batch_converter()([("a", "MKV"), ("b", "Q")])
    assert tokenizer.special_tokens_per_sequence == 1 and lengths.tolist() == [4, 2]
    assert ids.tolist() == padded[0, :4].tolist() + padded[1, :2].tolist()


# --- the data layer knows no model family ----------------------------------------------------------


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            names.add(".".join(filter(None, (base, node.module or ""))))
    return names


def test_no_module_of_the_data_layer_imports_models():
    offenders = {
        str(path.relative_to(REPO)): sorted(n for n in _imported_modules(path) if n.startswith("virnucpro.models"))
        for path in sorted((REPO / "virnucpro" / "data").glob("*.py"))
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, f"data/ must not import models/: {offenders}"


def test_importing_the_data_layer_loads_no_model_code():
    code = (
        "import sys, pkgutil, importlib, virnucpro.data as d\n"
        "for m in pkgutil.iter_modules(d.__path__): importlib.import_module('virnucpro.data.' + m.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('virnucpro.models')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing virnucpro.data loaded {result.stdout.strip()}"
