"""The byte-pair tokenizer of ``random:dnabert-s``: DNABERT-S's layout, learnt deterministically from bundled DNA.

DNABERT-S's own tokenizer.json cannot be downloaded here. This one has its shape: a
byte-pair model over characters with a vocabulary of 4,096, the special tokens [UNK], [CLS],
[SEP], [PAD], [MASK] as ids 0-4, [UNK] for a character never seen, and the post-processor
"[CLS] $A [SEP]". It is trained by the ``tokenizers`` library on the public DNA in
``examples/data/*.fna.gz`` of a source checkout (~970 kb, N runs included, so N has tokens
and the other IUPAC codes are [UNK]); the same files always give the same tokenizer.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from tokenizers import Tokenizer as RustTokenizer
from tokenizers import models, processors, trainers

from .architecture import DNABERT_S
from .tokenizer import DNATokenizer

__all__ = ["EXAMPLES", "SPECIAL_TOKENS", "random_tokenizer"]

#: Where a source checkout keeps the DNA this tokenizer is learnt from.
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "data"
#: DNABERT-2's special tokens, in the order (and so with the ids 0-4) its tokenizer.json has them.
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
#: Training pieces: whole contigs would be single "words" of up to 870 kb; pieces of a
#: VirNucPro-like size learn the same kind of merges in about a second.
_PIECE = 1000


def random_tokenizer(source: str) -> DNATokenizer:
    """The tokenizer of ``random:dnabert-s`` (``source`` names it in messages); learnt once per process."""
    return DNATokenizer(_learnt(), source)


@functools.cache
def _learnt() -> str:
    """tokenizer.json text of a byte-pair tokenizer learnt from ``EXAMPLES/*.fna.gz``."""
    files = sorted(EXAMPLES.glob("*.fna.gz"))
    if not files:
        raise ValueError(
            f"random:dnabert-s learns its tokenizer from the DNA in examples/data/*.fna.gz of a virnucpro source "
            f"checkout, and {EXAMPLES} has none; run from a checkout, or pass a DNABERT model folder, which has "
            "its own tokenizer.json"
        )
    pieces = [seq[i : i + _PIECE] for path in files for seq in _sequences(path) for i in range(0, len(seq), _PIECE)]
    tokenizer = RustTokenizer(models.BPE(unk_token="[UNK]"))
    trainer = trainers.BpeTrainer(
        vocab_size=DNABERT_S.vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(pieces, trainer)
    cls, sep = (SPECIAL_TOKENS.index(token) for token in ("[CLS]", "[SEP]"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tokenizer.to_str()


def _sequences(path: Path) -> list[str]:
    """The records of a gzip FASTA file we ship, upper case (plain parsing: these files are known)."""
    records: list[list[str]] = []
    with gzip.open(path, "rt", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(">"):
                records.append([])
            elif records:
                records[-1].append(line.strip().upper())
    return ["".join(lines) for lines in records]
