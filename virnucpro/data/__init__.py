"""FASTA to packed batches: CPU-only, exact-once, sharded across workers and ranks."""

from virnucpro.data.collators import VarlenCollator
from virnucpro.data.fasta import RESIDUES, read_fasta
from virnucpro.data.sequence_dataset import SPECIAL_TOKENS_PER_SEQUENCE, Record, SequenceDataset

__all__ = ["SequenceDataset", "VarlenCollator", "Record", "RESIDUES", "SPECIAL_TOKENS_PER_SEQUENCE", "read_fasta"]
