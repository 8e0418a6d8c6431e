"""DNABERT-2 / DNABERT-S: config and checkpoint checks, offline loading, the model's own tokenizer,
the packed ALiBi forward and its memory model."""

from ..family import ModelFamily, Vocabulary
from .architecture import ALPHABET, DNABERT_S, MAX_LENGTH, SPECIAL_TOKENS_PER_SEQUENCE, Config, resolve_layers
from .loading import RANDOM_NAMES, checkpoint_files, load, owns, tokenizer
from .memory import auto_max_tokens
from .packed import PackedDNABERT
from .tokenizer import DNATokenizer
from .weights import DNABERTWeights

# TODO(coordinator, at the merge with `datalayer`): this branch's ModelFamily predates the
# fields of CONTRACTS.md. With them, FAMILY is:
#     ModelFamily(name="dnabert", owns=owns, tokenizer=tokenizer, load=load, resolve_layers=resolve_layers,
#                 packed=PackedDNABERT, max_tokens=auto_max_tokens, reads="nucleotide",
#                 mean_includes_special_tokens=True)
# (``checkpoint_files`` lists what a spec reads, for the fingerprint), and ``vocabulary`` and
# ``batch_converter`` go: the data layer takes ``tokenizer(spec)`` (a ``DNATokenizer``).
FAMILY = ModelFamily(
    name="dnabert",
    vocabulary=Vocabulary(ALPHABET, SPECIAL_TOKENS_PER_SEQUENCE, MAX_LENGTH),
    load=load,
    batch_converter=tokenizer,
    resolve_layers=resolve_layers,
    packed=PackedDNABERT,
    max_tokens=auto_max_tokens,
)

__all__ = [
    "ALPHABET",
    "DNABERT_S",
    "FAMILY",
    "MAX_LENGTH",
    "RANDOM_NAMES",
    "Config",
    "DNABERTWeights",
    "DNATokenizer",
    "PackedDNABERT",
    "auto_max_tokens",
    "checkpoint_files",
    "load",
    "owns",
    "resolve_layers",
    "tokenizer",
]
