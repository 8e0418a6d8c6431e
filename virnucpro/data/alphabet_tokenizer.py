"""``AlphabetTokenizer``: a per-character ``Tokenizer`` over a fair-esm ``Alphabet``, equal to its ``batch_converter``.

Tokens are exactly those ESM's ``batch_converter`` gives each sequence (BOS, residues,
EOS, no padding), produced with one vectorised lookup over the whole batch instead of a
Python loop per residue. The alphabet is read duck-typed (``tok_to_idx``, ``all_toks``,
``standard_toks``, ``prepend_bos``, ``append_eos``, ``cls_idx``, ``eos_idx``), so the data
layer builds this from any fair-esm alphabet, or from the one a ``batch_converter`` holds,
without knowing which model family it belongs to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import esm
import numpy as np

from .tokenizer import UnknownCharacterError

__all__ = ["DEFAULT_MAX_LENGTH", "AlphabetTokenizer", "default_tokenizer"]

#: Residues per sequence by default: ESM-2's trained length (1024-token crops, BOS and EOS included),
#: to which esm-extract truncates.
DEFAULT_MAX_LENGTH = 1022


class AlphabetTokenizer:
    """One token per character of a fair-esm alphabet (a ``Tokenizer``, ``per_character``).

    Args:
        alphabet: a fair-esm ``esm.data.Alphabet`` (or an object with its attributes).
        name: for messages.
        max_length: the default residues per sequence.

    Sequences may also spell the alphabet's multi-character tokens (``<mask>``): those are
    split out as ESM's tokenizer does, on a slower path. ``encode`` raises
    ``UnknownCharacterError`` for a character outside the alphabet (where ``batch_converter``
    raises a bare ``KeyError``).
    """

    per_character = True

    def __init__(self, alphabet: Any, *, name: str = "ESM", max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.name = name
        self.max_length = max_length
        self.alphabet = "".join(tok for tok in alphabet.standard_toks if len(tok) == 1)
        self.bos = alphabet.cls_idx if alphabet.prepend_bos else None
        self.eos = alphabet.eos_idx if alphabet.append_eos else None
        self.special_tokens_per_sequence = (self.bos is not None) + (self.eos is not None)
        self._lut = np.full(256, -1, dtype=np.int64)
        for tok, idx in alphabet.tok_to_idx.items():
            if len(tok) == 1 and ord(tok) < 256:
                self._lut[ord(tok)] = idx
        self._tok_to_idx = dict(alphabet.tok_to_idx)
        specials = sorted((t for t in alphabet.all_toks if len(t) > 1), key=len, reverse=True)
        self._special = re.compile("(" + "|".join(map(re.escape, specials)) + ")")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AlphabetTokenizer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.name, self.max_length, self.bos, self.eos, tuple(sorted(self._tok_to_idx.items())))

    def count(self, sequences: Sequence[str]) -> np.ndarray:
        """(N,) int64 tokens per sequence, special tokens included: each length + 2 for ESM-2."""
        if any("<" in seq for seq in sequences):  # a spelled-out <mask> is one token
            return self.encode(sequences)[1]
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        return lengths + self.special_tokens_per_sequence

    def encode(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """ids: (T,) int64, every sequence's tokens (BOS, residues, EOS) back to back;
        lengths: (N,) int64, tokens per sequence."""
        body, residues = self.encode_residues(sequences)
        return self.add_special_tokens(body, residues), residues + self.special_tokens_per_sequence

    def encode_residues(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Residue tokens only (no BOS, no EOS): (R,) int64 back to back, and (N,) int64 per sequence."""
        joined = "".join(sequences)
        if "<" in joined:
            return self._encode_with_specials(sequences)
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        raw = joined.encode("utf-32-le")  # 4 bytes per character keeps positions aligned for any input
        codes = np.frombuffer(raw, dtype=np.uint32)
        residues = self._lut[np.minimum(codes, 255)]
        bad = (residues < 0) | (codes > 255)
        if bad.any():
            flat = int(np.argmax(bad))
            seq = int(np.searchsorted(np.cumsum(lengths), flat, side="right"))
            position = flat - int(lengths[:seq].sum()) + 1
            raise UnknownCharacterError(self.name, seq, position, chr(int(codes[flat])))
        return residues, lengths

    def add_special_tokens(self, residues: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(T,) int64: each sequence's ``lengths[i]`` residue tokens between its BOS and EOS."""
        cu_seqlens = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths + self.special_tokens_per_sequence, out=cu_seqlens[1:])
        ids = np.empty(int(cu_seqlens[-1]), dtype=np.int64)
        is_residue = np.ones(ids.size, dtype=bool)
        if self.bos is not None:
            ids[cu_seqlens[:-1]] = self.bos
            is_residue[cu_seqlens[:-1]] = False
        if self.eos is not None:
            ids[cu_seqlens[1:] - 1] = self.eos
            is_residue[cu_seqlens[1:] - 1] = False
        ids[is_residue] = residues
        return ids

    def _encode_with_specials(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Slow path for sequences that spell special tokens such as ``<mask>``, split as ESM's tokenizer does."""
        encoded: list[int] = []
        lengths = np.zeros(len(sequences), dtype=np.int64)
        for i, seq in enumerate(sequences):
            start = len(encoded)
            for j, part in enumerate(self._special.split(seq)):
                if j % 2:
                    encoded.append(self._tok_to_idx[part])
                    continue
                for char in part:
                    if char not in self._tok_to_idx:
                        raise UnknownCharacterError(self.name, i, len(encoded) - start + 1, char)
                    encoded.append(self._tok_to_idx[char])
            lengths[i] = len(encoded) - start
        return np.asarray(encoded, dtype=np.int64), lengths


@functools.cache
def default_tokenizer() -> AlphabetTokenizer:
    """fair-esm's ESM-1b alphabet (ESM-2's) with ``DEFAULT_MAX_LENGTH``: what the data layer uses
    when no tokenizer is given (built once; treat it as read-only)."""
    return AlphabetTokenizer(esm.data.Alphabet.from_architecture("ESM-1b"))
