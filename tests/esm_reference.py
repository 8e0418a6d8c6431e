"""Test inputs and fair-esm reference outputs, shared by the tests of virnucpro.models and the benchmarks.

Packing is done here by hand (concatenating each sequence's batch_converter tokens) so
that these tests depend on fair-esm only, not on virnucpro's data layer.

``fair_esm_batches`` is the one fair-esm reference loop, esm-extract's (fair-esm's
``scripts/extract.py``): a ``FastaBatchedDataset`` through a ``batch_converter`` in a
DataLoader, batched by ``esm_extract_batches``. The tests compare with it and the
benchmarks (through ``benchmarks/_paths.py``) compare with it and time it. Nothing here
imports pytest at import time, so that the benchmarks can import this module.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from Bio import SeqIO
from esm.data import FastaBatchedDataset
from torch.utils.data import DataLoader

__all__ = [
    "FairEsmBatch",
    "diff",
    "esm_extract_batches",
    "esm_extract_means",
    "fair_esm_batches",
    "in_input_order",
    "pack",
    "padded_forward",
    "read_proteome",
    "sample_sequences",
]


def read_proteome() -> list[str]:
    """The sequences of PROTEOME, in file order, the stop '*' stripped."""
    from conftest import PROTEOME  # here: conftest imports pytest, which the benchmarks do not need

    with gzip.open(PROTEOME, "rt") as handle:
        return [str(record.seq).rstrip("*") for record in SeqIO.parse(handle, "fasta")]


def sample_sequences(count: int, *, seed: int, max_len: int = 300, long: bool = False) -> list[str]:
    """Real proteins of varied lengths, plus the edge cases a packed forward must handle.

    ``count`` proteins of at most ``max_len`` residues, then: a 1-residue sequence;
    proteins with 1, 4 and 15 <mask> tokens (so the token-dropout rescale differs per
    sequence); one with 'X' residues; with ``long``, a protein cut to 1022 residues.
    """
    rng = random.Random(seed)
    proteome = read_proteome()
    short = [s for s in proteome if len(s) <= max_len]
    picked = rng.sample(short, count)
    extra = [picked[0][:1]]
    for masks, protein in zip((1, 4, 15), rng.sample(short, 3)):
        residues = list(protein)
        for i in rng.sample(range(len(residues)), min(masks, len(residues))):
            residues[i] = "<mask>"
        extra.append("".join(residues))
    residues = list(rng.choice(short))
    for i in rng.sample(range(len(residues)), min(5, len(residues))):
        residues[i] = "X"
    extra.append("".join(residues))
    if long:
        extra.append(next(s for s in proteome if len(s) > 1022)[:1022])
    return picked + extra


def pack(batch_converter, sequences: list[str]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(input_ids (T,) int64, cu_seqlens (N + 1,) int32, max_seqlen) of the unpadded tokens."""
    tokens = [batch_converter([(str(i), s)])[2][0] for i, s in enumerate(sequences)]
    lengths = torch.tensor([len(t) for t in tokens])
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    return torch.cat(tokens), cu_seqlens, int(lengths.max())


class FairEsmBatch(NamedTuple):
    """One padded batch of fair-esm's forward."""

    indices: list[int]  # the batch's sequences, as positions in the dataset
    strs: list[str]  # their sequences as given, before the converter's truncation
    tokens: torch.Tensor  # (B, L) int64 on the host: the converter's padded tokens, BOS and EOS included
    representations: dict[int, torch.Tensor]  # layer => (B, L, E) on the model's device

    def rows(self, layer: int, padding_idx: int) -> list[torch.Tensor]:
        """Per sequence, its rows of ``layer``: (its token count, E), BOS and EOS included."""
        lengths = (self.tokens != padding_idx).sum(1).tolist()
        return [self.representations[layer][i, :n] for i, n in enumerate(lengths)]


def esm_extract_batches(dataset: FastaBatchedDataset, toks_per_batch: int) -> list[list[int]]:
    """esm-extract's batches: sequences by increasing length, ``count x (longest + 1) <= toks_per_batch``."""
    return dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)


def fair_esm_batches(
    model, batch_converter, dataset: FastaBatchedDataset, batches: list[list[int]], layers: Sequence[int]
) -> Iterator[FairEsmBatch]:
    """esm-extract's loop: ``batches`` of ``dataset`` through ``batch_converter`` in a DataLoader,
    the tokens copied to the model's device, fair-esm's padded forward without autograd.

    ``layers`` are fair-esm's (0..num_layers), as its forward takes them.
    """
    device = model.embed_tokens.weight.device
    loader = DataLoader(dataset, collate_fn=batch_converter, batch_sampler=batches)
    for indices, (_, strs, toks) in zip(batches, loader):
        with torch.no_grad():  # not around the yield: the caller's code would run without autograd too
            reps = model(toks.to(device, non_blocking=True), repr_layers=list(layers))["representations"]
        yield FairEsmBatch(indices, strs, toks, reps)


def esm_extract_means(
    model, batch_converter, dataset: FastaBatchedDataset, batches: list[list[int]], layer: int
) -> list[torch.Tensor]:
    """esm-extract's mean embeddings of ``layer``, a (B, E) tensor on the host per batch.

    As esm-extract, sequence i's mean is over rows 1 .. min(len(strs[i]), truncation) of its
    padded output: one row per character, so the sequences must be plain residues (no
    ``<mask>``). ``truncation`` is the converter's ``truncation_seq_length``.
    """
    truncation = batch_converter.truncation_seq_length or max(map(len, dataset.sequence_strs))
    means = []
    for batch in fair_esm_batches(model, batch_converter, dataset, batches, [layer]):
        rep = batch.representations[layer]  # (B, L, E)
        means.append(
            torch.stack([rep[i, 1 : min(len(s), truncation) + 1].mean(0) for i, s in enumerate(batch.strs)]).cpu()
        )
    return means


def in_input_order(per_batch: list[torch.Tensor], batches: list[list[int]]) -> torch.Tensor:
    """Rows computed batch by batch (batch j's rows for sequences ``batches[j]``), in dataset order."""
    ordered = torch.empty(sum(map(len, batches)), *per_batch[0].shape[1:], dtype=per_batch[0].dtype)
    ordered[torch.tensor([i for batch in batches for i in batch])] = torch.cat(per_batch)
    return ordered


def padded_forward(model, batch_converter, sequences: list[str], layers: list[int]) -> dict[int, list[torch.Tensor]]:
    """fair-esm's own padded forward, all ``sequences`` in one batch: {layer: [per sequence
    (its token count, E), BOS and EOS included]}."""
    dataset = FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    (batch,) = fair_esm_batches(model, batch_converter, dataset, [list(range(len(sequences)))], layers)
    return {layer: batch.rows(layer, model.padding_idx) for layer in batch.representations}


def diff(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max, mean) absolute difference, in float64."""
    d = (actual.double() - expected.double()).abs()
    return d.max().item(), d.mean().item()
