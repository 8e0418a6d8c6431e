"""``DNATokenizer``: a DNABERT model's own tokenizer.json, run by the ``tokenizers`` library, for the data layer.

The byte-pair encoding is the Rust code transformers' ``AutoTokenizer`` runs for DNABERT-S,
from the model's own file: nothing of it is re-implemented. What the data layer relies on is
checked when the file is read, each failure one ``ValueError`` line naming the file:

* every sequence comes out as [one special token] + body + [one special token] ([CLS] and
  [SEP] in DNABERT's file; the ids are read from what its post-processor adds);
* every character of ``ALPHABET`` gives at least one token (a byte-pair model without an
  unknown token would drop unseen characters silently);
* the file's own truncation and padding are switched off: each sequence is encoded whole and
  alone, as ``tokenizer(seq)`` does in VirNucPro (the pipeline truncates or windows).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as RustTokenizer

from .architecture import ALPHABET, MAX_LENGTH, NAME, SPECIAL_TOKENS_PER_SEQUENCE

__all__ = ["MAX_TOKENIZER_BYTES", "TOKENIZER", "DNATokenizer"]

TOKENIZER = "tokenizer.json"
#: DNABERT-S's tokenizer.json is ~0.2 MB; the largest published tokenizers are ~20 MB.
MAX_TOKENIZER_BYTES = 64 << 20
_PROBE = "ACGTACGTAC"


class DNATokenizer:
    """The data layer's ``Tokenizer`` for a DNABERT model (``virnucpro.data.tokenizer.Tokenizer``).

    Picklable (it travels as its JSON text), CPU only; ``encode`` runs one batched call.

    Args:
        text: the tokenizer.json content.
        source: where it came from, for messages (a path, or "random:dnabert-s").

    Attributes:
        cls_id, sep_id: the ids the file's post-processor puts before and after every sequence.
        vocab_size: ids the file can produce, added tokens included: every id is below it.
    """

    name = NAME
    alphabet = ALPHABET
    special_tokens_per_sequence = SPECIAL_TOKENS_PER_SEQUENCE
    max_length = MAX_LENGTH

    def __init__(self, text: str, source: str) -> None:
        self._text, self.source = text, source
        try:
            tokenizer = RustTokenizer.from_str(text)
        except Exception as err:  # the Rust parser's errors are plain Exceptions
            detail = (str(err).splitlines() or [type(err).__name__])[0]
            raise ValueError(f"{source}: not a readable tokenizers file ({detail[:200]})") from err
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.cls_id, self.sep_id = self._check_layout()
        self._check_alphabet()

    @classmethod
    def from_file(cls, path: Path) -> DNATokenizer:
        """The tokenizer in ``path`` (a tokenizer.json of at most ``MAX_TOKENIZER_BYTES``)."""
        with path.open("rb") as handle:  # an unreadable file raises OSError, which says so itself
            data = handle.read(MAX_TOKENIZER_BYTES + 1)
        if len(data) > MAX_TOKENIZER_BYTES:
            raise ValueError(f"{path}: larger than {MAX_TOKENIZER_BYTES} bytes; a tokenizer.json is a few MB at most")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path}: not UTF-8 text ({err.reason} at byte {err.start}), not a tokenizer.json"
            ) from err
        return cls(text, os.fspath(path))

    def __getstate__(self) -> dict[str, str]:
        return {"text": self._text, "source": self.source}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["text"], state["source"])

    def __eq__(self, other: object) -> bool:
        """Tokenizers read from the same text are equal (a pickled copy equals its original)."""
        return isinstance(other, DNATokenizer) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def to_str(self) -> str:
        """The tokenizer.json text this tokenizer was read from."""
        return self._text

    def encode(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of ``sequences``, [CLS] and [SEP] included, in one batched call.

        Returns:
            ids: (T,) int64, every sequence's tokens back to back.
            lengths: (N,) int64, tokens per sequence (special tokens included), sum T.
        """
        # The fast variant skips the character offsets, which nothing here reads: a fifth less time
        # in the DataLoader workers, where encoding is most of a DNA batch's cost.
        encodings = self._tokenizer.encode_batch_fast(list(sequences), add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter(
            itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=int(lengths.sum())
        )
        return ids, lengths

    def count(self, sequences: Sequence[str]) -> np.ndarray:
        """(N,) int64 tokens per sequence, special tokens included: ``encode(sequences)[1]``."""
        return self.encode(sequences)[1]

    def _check_layout(self) -> tuple[int, int]:
        """(cls_id, sep_id): what the post-processor adds around a sequence, one token on each side."""
        wrapped = self._tokenizer.encode(_PROBE, add_special_tokens=True)
        body = self._tokenizer.encode(_PROBE, add_special_tokens=False).ids
        ids, mask = wrapped.ids, wrapped.special_tokens_mask
        if len(ids) != len(body) + 2 or ids[1:-1] != body or mask != [1] + [0] * len(body) + [1]:
            raise ValueError(
                f"{self.source}: its post-processor does not wrap a sequence as [CLS] sequence [SEP] "
                f"(one special token on each side): {_PROBE!r} gives {ids[:12]} from body {body[:10]}; "
                "a DNABERT tokenizer.json has a TemplateProcessing post-processor '[CLS] $A [SEP]'"
            )
        return ids[0], ids[-1]

    def _check_alphabet(self) -> None:
        """Every character of ``ALPHABET`` gives a token: none is dropped silently."""
        encodings = self._tokenizer.encode_batch(list(ALPHABET), add_special_tokens=False)
        dropped = [char for char, e in zip(ALPHABET, encodings) if not e.ids]
        if dropped:
            raise ValueError(
                f"{self.source}: gives no token for {''.join(dropped)!r} (it has no unknown token), so such bases "
                f"would vanish from the input; a DNABERT tokenizer.json maps unseen characters to [UNK]"
            )
