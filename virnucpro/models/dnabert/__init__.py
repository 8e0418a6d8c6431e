"""DNABERT-2 / DNABERT-S: config and checkpoint checks, offline loading, the model's own tokenizer,
the packed ALiBi forward and its memory model."""

from ..family import ModelFamily
from .architecture import ALPHABET, DNABERT_S, MAX_LENGTH, Config, resolve_layers
from .loading import RANDOM_NAMES, files, load, owns, tokenizer
from .memory import auto_max_tokens
from .packed import PackedDNABERT, resolve_options
from .tokenizer import DNATokenizer
from .weights import DNABERTWeights

FAMILY = ModelFamily(
    name="dnabert",
    owns=owns,
    tokenizer=tokenizer,
    load=load,
    resolve_layers=resolve_layers,
    packed=PackedDNABERT,
    max_tokens=auto_max_tokens,
    reads="nucleotide",
    mean_includes_special_tokens=True,  # DNABERT-S's (and VirNucPro's) mean: every token, [CLS] and [SEP] too
    files=files,
    resolve_options=resolve_options,
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
    "files",
    "load",
    "owns",
    "resolve_layers",
    "resolve_options",
    "tokenizer",
]
