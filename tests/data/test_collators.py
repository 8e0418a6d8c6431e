"""``VarlenCollator`` against the reference, ESM's own ``batch_converter``.

Each packed sequence ``input_ids[cu[i]:cu[i+1]]`` must equal the converter's
row for it with the padding cut off. The unpadded length comes from the
converter's own encoding (``alphabet.encode``), never from looking for pad ids,
because ``<pad>`` may be spelled inside a sequence.
"""

from __future__ import annotations

import gzip
import pickle
import random
import re
import warnings

import esm
import pytest
import torch
from Bio import SeqIO
from conftest import PROTEOME

from virnucpro.data import SequenceDataset, VarlenCollator

SPECIALS = ["<mask>", "<unk>", "<cls>", "<eos>", "<pad>"]


def random_sequences(alphabet, rng: random.Random, count: int) -> list[str]:
    """Sequences over every single-character token plus the special tokens spelled inline.

    About a fifth are empty or one token long.
    """
    singles = [t for t in alphabet.all_toks if len(t) == 1]
    specials = [t for t in SPECIALS if t in alphabet.all_toks]
    specials += [t for t in alphabet.all_toks if len(t) > 1 and t not in SPECIALS]
    seqs = []
    for _ in range(count):
        kind = rng.random()
        n = 0 if kind < 0.1 else 1 if kind < 0.2 else rng.randint(2, 80)
        with_specials = rng.random() < 0.5
        pick = [rng.choice(specials) if with_specials and rng.random() < 0.1 else rng.choice(singles) for _ in range(n)]
        seqs.append("".join(pick))
    return seqs


def compare_with_batch_converter(
    collator: VarlenCollator, converter, seqs: list[str], ids: list[str] | None = None
) -> dict:
    """Collate ``seqs``, check every packed sequence against the converter's row, return the batch."""
    ids = ids or [f"s{i}" for i in range(len(seqs))]
    batch = collator([{"id": i, "sequence": s} for i, s in zip(ids, seqs)])
    _, _, tokens = converter(list(zip(ids, seqs)))
    limit = converter.truncation_seq_length
    lengths = [min(len(converter.alphabet.encode(s)), limit or 10**9) for s in seqs]

    input_ids, cu = batch["input_ids"], batch["cu_seqlens"]
    assert input_ids.dtype == torch.int64 and input_ids.dim() == 1
    assert cu.dtype == torch.int32 and cu.shape == (len(seqs) + 1,)
    assert int(cu[0]) == 0 and int(cu[-1]) == input_ids.numel()
    wrong = []
    for i, n in enumerate(lengths):
        got, expected = input_ids[cu[i] : cu[i + 1]], tokens[i, : n + 2]
        if not torch.equal(got, expected):
            wrong.append((i, seqs[i], got.tolist(), expected.tolist()))
    assert not wrong, (
        f"{len(wrong)} of {len(seqs)} sequences differ from batch_converter; first {wrong[0][1]!r:.80}: "
        f"got {wrong[0][2]!s:.200}, expected {wrong[0][3]!s:.200}"
    )
    assert batch["max_seqlen"] == max(lengths) + 2
    assert batch["num_sequences"] == len(seqs) and batch["sequence_ids"] == ids
    return batch


def test_tokens_equal_batch_converter_on_random_sequences(alphabet, batch_converter):
    rng = random.Random(0)
    collator = VarlenCollator(batch_converter)
    for _ in range(300):
        compare_with_batch_converter(collator, batch_converter, random_sequences(alphabet, rng, rng.randint(1, 12)))


def test_tokens_equal_batch_converter_on_the_proteome(batch_converter):
    with gzip.open(PROTEOME, "rt") as handle:
        records = [(rec.id, str(rec.seq).removesuffix("*")) for rec in SeqIO.parse(handle, "fasta")]
    collator = VarlenCollator(batch_converter)
    assert len(records) == 404
    for start in range(0, len(records), 32):
        chunk = records[start : start + 32]
        compare_with_batch_converter(collator, batch_converter, [s for _, s in chunk], [i for i, _ in chunk])


@pytest.mark.parametrize("architecture", ["ESM-1", "invariant_gvp"])
def test_tokens_equal_batch_converter_for_alphabets_without_eos(architecture):
    alphabet = esm.data.Alphabet.from_architecture(architecture)
    converter = alphabet.get_batch_converter()
    collator = VarlenCollator(converter)
    rng = random.Random(1)
    for _ in range(50):
        seqs = random_sequences(alphabet, rng, rng.randint(1, 8))
        ids = [f"s{i}" for i in range(len(seqs))]
        batch = collator([{"id": i, "sequence": s} for i, s in zip(ids, seqs)])
        _, _, tokens = converter(list(zip(ids, seqs)))
        cu = batch["cu_seqlens"]
        for i, s in enumerate(seqs):
            n = len(alphabet.encode(s)) + alphabet.prepend_bos + alphabet.append_eos
            assert torch.equal(batch["input_ids"][cu[i] : cu[i + 1]], tokens[i, :n]), f"{architecture}: {s!r}"


def test_one_record_as_a_dict(batch_converter):
    batch = VarlenCollator(batch_converter)({"id": "only", "sequence": "MKVL", "index": 41})
    _, _, tokens = batch_converter([("only", "MKVL")])
    assert torch.equal(batch["input_ids"], tokens[0])
    assert batch["cu_seqlens"].tolist() == [0, 6] and batch["max_seqlen"] == 6
    assert batch["sequence_ids"] == ["only"] and batch["num_sequences"] == 1 and batch["indices"].tolist() == [41]


def test_indices_come_from_the_records(batch_converter):
    batch = VarlenCollator(batch_converter)([{"id": "a", "sequence": "MK", "index": 7}, {"id": "b", "sequence": "Q"}])
    assert batch["indices"].dtype == torch.int64 and batch["indices"].tolist() == [7, -1]


@pytest.mark.parametrize("limit", [1, 50])
def test_truncation_follows_the_converter_and_is_counted(alphabet, limit):
    converter = alphabet.get_batch_converter(truncation_seq_length=limit)
    collator = VarlenCollator(converter)
    rng = random.Random(2)
    for _ in range(100):
        seqs = random_sequences(alphabet, rng, rng.randint(1, 10))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = compare_with_batch_converter(collator, converter, seqs)
        expected = sum(len(alphabet.encode(s)) > limit for s in seqs)
        assert batch["num_truncated"] == expected, f"num_truncated {batch['num_truncated']}, expected {expected}"


def test_truncation_seq_length_zero_means_no_truncation_as_in_batch_converter(alphabet):
    # batch_converter tests `if self.truncation_seq_length:`, so 0 truncates nothing.
    converter = alphabet.get_batch_converter(truncation_seq_length=0)
    batch = compare_with_batch_converter(VarlenCollator(converter), converter, ["MKVL", "Q", "ACDEFGHIK"])
    assert batch["num_truncated"] == 0


def test_records_truncated_by_the_dataset_are_counted(tmp_path, batch_converter):
    path = tmp_path / "long.faa"
    path.write_text(">a\nMKVLAAQQRRST\n>b\nMKV\n>c\nMKVLAAQQRRS\n>d\nMKVLAAQQRR\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = list(SequenceDataset(path, max_length=10).records())
    batch = VarlenCollator(batch_converter)(records)
    assert batch["num_truncated"] == 2


@pytest.mark.parametrize(
    ("seqs", "bad_id", "char", "position"),
    [
        (["MKV", "", "KLJQ", "MM"], "s2", "J", 3),
        (["1"], "s0", "1", 1),
        (["MKV", "acd"], "s1", "a", 1),
        (["MKVL", "QQ\u00e9"], "s1", "\u00e9", 3),
        (["MKVL", "QQQ\u20ac"], "s1", "\u20ac", 4),
        (["<mask>MK", "QJ"], "s1", "J", 2),
        (["M K"], "s0", " ", 2),
    ],
)
def test_unknown_character_names_the_record_and_position(batch_converter, seqs, bad_id, char, position):
    records = [{"id": f"s{i}", "sequence": s} for i, s in enumerate(seqs)]
    with pytest.raises(ValueError) as info:
        VarlenCollator(batch_converter)(records)
    message = str(info.value)
    assert repr(bad_id) in message and repr(char) in message and re.search(rf"position {position}\b", message), message
    if char != " ":  # ESM's tokenizer silently drops whitespace next to a token
        with pytest.raises(KeyError):
            batch_converter([(r["id"], r["sequence"]) for r in records])


def test_over_max_tokens_packs_everything_with_one_warning(batch_converter):
    rng = random.Random(3)
    seqs = ["".join(rng.choices("ACDEFGHIKLMNPQRSTVWY", k=rng.randint(1, 100))) for _ in range(40)]
    collator = VarlenCollator(batch_converter, max_tokens=500)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = compare_with_batch_converter(collator, batch_converter, seqs)
    assert batch["sequence_ids"] == [f"s{i}" for i in range(40)]
    assert int(batch["cu_seqlens"][-1]) == sum(len(s) + 2 for s in seqs) > 500
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "SequenceDataset(max_tokens" in messages[0], messages


def test_pickled_collator_gives_identical_output(alphabet, batch_converter):
    collator = VarlenCollator(batch_converter, max_tokens=10**6)
    clone = pickle.loads(pickle.dumps(collator))
    rng = random.Random(4)
    for _ in range(30):
        seqs = random_sequences(alphabet, rng, rng.randint(1, 8))
        records = [{"id": f"s{i}", "sequence": s, "index": i} for i, s in enumerate(seqs)]
        a, b = collator(records), clone(records)
        assert a.keys() == b.keys()
        for key in a:
            same = torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key]
            assert same, f"{key}: {a[key]} != {b[key]}"
