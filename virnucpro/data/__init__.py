"""FASTA to packed batches: CPU-only, exact-once, sharded across workers and ranks."""

from virnucpro.data.alphabet_tokenizer import AlphabetTokenizer, default_tokenizer
from virnucpro.data.batch import PackedBatch
from virnucpro.data.collators import VarlenCollator
from virnucpro.data.duplicates import DuplicateIds
from virnucpro.data.fasta import FastaRecord, read_fasta, require_fasta_file
from virnucpro.data.inputs import NUCLEOTIDE, PROTEIN, DnaInput, InputKind, NucleotideInput, ProteinInput
from virnucpro.data.normalise import Normaliser
from virnucpro.data.paired import PairedBatch, PairedCollator
from virnucpro.data.records import Record
from virnucpro.data.sequence_dataset import SequenceDataset
from virnucpro.data.tokenizer import NUCLEOTIDE_CODES, Encoded, Tokenizer, UnknownCharacterError
from virnucpro.data.windows import coverage, window_starts

__all__ = [
    "NUCLEOTIDE",
    "NUCLEOTIDE_CODES",
    "PROTEIN",
    "AlphabetTokenizer",
    "Encoded",
    "NucleotideInput",
    "Tokenizer",
    "UnknownCharacterError",
    "default_tokenizer",
    "DnaInput",
    "DuplicateIds",
    "InputKind",
    "ProteinInput",
    "FastaRecord",
    "Normaliser",
    "PairedBatch",
    "PairedCollator",
    "PackedBatch",
    "Record",
    "SequenceDataset",
    "VarlenCollator",
    "coverage",
    "read_fasta",
    "require_fasta_file",
    "window_starts",
]
