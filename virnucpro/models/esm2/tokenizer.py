"""ESM-2's tokenizer for the data layer: one token per residue of fair-esm's ESM-1b alphabet, BOS and EOS around.

The lookup itself is ``virnucpro.data.AlphabetTokenizer`` (built from any fair-esm alphabet,
so that the data layer can also wrap a user's ``batch_converter``); this is ESM-2's instance,
with ESM-2's name and trained length. Its tokens equal ``alphabet.get_batch_converter()``'s.
"""

from __future__ import annotations

from virnucpro.data.alphabet_tokenizer import AlphabetTokenizer

from .architecture import MAX_LENGTH, alphabet

__all__ = ["TOKENIZER", "tokenizer"]

#: ESM-2's tokenizer: residues of the ESM-1b alphabet, BOS and EOS, at most ``MAX_LENGTH`` residues by default.
TOKENIZER = AlphabetTokenizer(alphabet(), name="ESM-2", max_length=MAX_LENGTH)


def tokenizer(spec: str) -> AlphabetTokenizer:
    """ESM-2's tokenizer for the model ``spec`` (every ESM-2 shares one alphabet)."""
    return TOKENIZER
