"""DNATokenizer against transformers' PreTrainedTokenizerFast on the same tokenizer.json, and every refusal."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import CONTIGS, REPO
from dnabert_reference import nucleotide_slices
from tokenizers import Tokenizer, models, processors, trainers
from transformers import PreTrainedTokenizerFast

from virnucpro.models.dnabert import ALPHABET, MAX_LENGTH, DNATokenizer, tokenizer
from virnucpro.models.dnabert.random_tokenizer import SPECIAL_TOKENS

SYNTHETIC = [
    "A",
    "N",
    "ACGT",
    "NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN",
    "ACGTNACGTNNNNNGATTACA",
    "ACGTRYKMSWBDHVUNACGT",  # every IUPAC code: those the vocabulary never saw become [UNK]
    "RRRRYYYYKKKK",
    "GATTACA" * 80,
]


@pytest.fixture(scope="module")
def random_json() -> str:
    return tokenizer("random:dnabert-s").to_str()


@pytest.fixture(scope="module")
def slices() -> list[str]:
    """VirNucPro's nucleotide slices (`virnucpro translate --nucleotide-out`) of 500- and 300-bp chunks."""
    return nucleotide_slices(CONTIGS)


def transformers_ids(path: os.PathLike, sequences: list[str]) -> list[list[int]]:
    """What transformers' fast tokenizer gives, read from the same file, special tokens added (its default)."""
    return PreTrainedTokenizerFast(tokenizer_file=str(path))(sequences)["input_ids"]


def split(ids: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    return [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])]


def test_tokens_are_transformers_tokens_on_real_slices_and_iupac_codes(random_json, slices, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(random_json)
    ours = DNATokenizer.from_file(path)
    sequences = slices + SYNTHETIC
    ids, lengths = ours.encode(sequences)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64 and lengths.shape == (len(sequences),)
    assert split(ids, lengths) == transformers_ids(path, sequences)
    assert np.array_equal(ours.count(sequences), lengths)
    assert {int(ids[0]), ours.cls_id, ours.sep_id} == {1, 2} and ours.cls_id == 1
    unknown = SPECIAL_TOKENS.index("[UNK]")
    iupac = ours.encode(["ACGTRYKMSWBDHVUNACGT"])[0].tolist()
    assert iupac.count(unknown) == len("RYKMSWBDHVU"), iupac  # 11 codes never seen; N is in the bundled DNA
    assert len(slices) > 2000 and max(map(len, slices)) <= 501


def test_special_ids_are_read_from_the_file(tmp_path):
    """A tokenizer.json whose [CLS] and [SEP] are not ids 1 and 2: the ids come from the file."""
    trained = Tokenizer(models.BPE(unk_token="[UNK]"))
    specials = ["[PAD]", "[MASK]", "[UNK]", "[SEP]", "[CLS]"]
    trainer = trainers.BpeTrainer(vocab_size=40, special_tokens=specials)
    trained.train_from_iterator(["ACGTACGGTTA" * 20, "NNNNACGT"], trainer)
    trained.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 4), ("[SEP]", 3)]
    )
    path = tmp_path / "tokenizer.json"
    trained.save(str(path))
    ours = DNATokenizer.from_file(path)
    assert (ours.cls_id, ours.sep_id) == (4, 3)
    ids, lengths = ours.encode(SYNTHETIC)
    assert split(ids, lengths) == transformers_ids(path, SYNTHETIC)
    assert all(part[0] == 4 and part[-1] == 3 for part in split(ids, lengths))


def test_the_files_truncation_and_padding_are_switched_off(random_json, tmp_path):
    data = json.loads(random_json)
    data["truncation"] = {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0}
    data["padding"] = {"strategy": {"Fixed": 64}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 3, "pad_type_id": 0, "pad_token": "[PAD]"}  # fmt: skip
    ours = DNATokenizer(json.dumps(data), "truncating.json")
    untouched = DNATokenizer(random_json, "random")
    sequences = ["GATTACA" * 80, "ACGT"]
    assert np.array_equal(ours.encode(sequences)[0], untouched.encode(sequences)[0])
    assert ours.encode(sequences)[1].tolist() == untouched.encode(sequences)[1].tolist()
    assert ours.encode(sequences)[1][0] > 4


def test_a_tokenizer_pickles_as_its_file(random_json):
    ours = DNATokenizer(random_json, "random:dnabert-s")
    copy = pickle.loads(pickle.dumps(ours))
    assert copy.to_str() == random_json and copy.source == "random:dnabert-s"
    assert np.array_equal(copy.encode(SYNTHETIC)[0], ours.encode(SYNTHETIC)[0])
    assert (ours.name, ours.alphabet, ours.special_tokens_per_sequence, ours.max_length) == (
        "DNABERT-S",
        ALPHABET,
        2,
        MAX_LENGTH,
    )


def test_the_random_tokenizer_is_the_same_in_every_process(random_json):
    code = "from virnucpro.models.dnabert import tokenizer; print(tokenizer('random:dnabert-s').to_str())"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.rstrip("\n") == random_json
    assert Tokenizer.from_str(random_json).get_vocab_size() == 4096


def without(json_text: str, **changes) -> str:
    data = json.loads(json_text)
    for key, value in changes.items():
        if key == "unk_token":
            data["model"]["unk_token"] = value
        else:
            data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"post_processor": None}, r"does not wrap a sequence as \[CLS\] sequence \[SEP\]"),
        ({"unk_token": None}, r"gives no token for 'RYKMSWBDHV' \(it has no unknown token\)"),
    ],
    ids=["no-template", "no-unknown-token"],
)
def test_a_tokenizer_the_data_layer_cannot_trust_is_refused(random_json, change, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        DNATokenizer(without(random_json, **change), "crafted.json")
    assert str(info.value).startswith("crafted.json: ") and "\n" not in str(info.value)


def test_unreadable_files_are_one_line(tmp_path):
    (tmp_path / "text.json").write_text('{"version": "1.0", "model": 5}')
    with pytest.raises(ValueError, match=r"text\.json: not a readable tokenizers file") as info:
        DNATokenizer.from_file(tmp_path / "text.json")
    assert "\n" not in str(info.value)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"binary\.json: not UTF-8 text"):
        DNATokenizer.from_file(tmp_path / "binary.json")
