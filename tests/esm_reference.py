"""Test inputs and fair-esm reference outputs shared by the tests of virnucpro.models.

Packing is done here by hand (concatenating each sequence's batch_converter tokens) so
that these tests depend on fair-esm only, not on virnucpro's data layer.
"""

from __future__ import annotations

import gzip
import random

import torch
from Bio import SeqIO
from conftest import PROTEOME


def read_proteome() -> list[str]:
    """The sequences of PROTEOME, in file order, the stop '*' stripped."""
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


def padded_forward(model, batch_converter, sequences: list[str], layers: list[int]) -> dict[int, list[torch.Tensor]]:
    """fair-esm's own padded forward: {layer: [per sequence (its token count, E), BOS and EOS included]}."""
    _, _, tokens = batch_converter([(str(i), s) for i, s in enumerate(sequences)])
    lengths = (tokens != model.padding_idx).sum(1).tolist()
    with torch.no_grad():
        reps = model(tokens.to(model.embed_tokens.weight.device), repr_layers=layers)["representations"]
    return {layer: [t[i, :n] for i, n in enumerate(lengths)] for layer, t in reps.items()}


def diff(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max, mean) absolute difference, in float64."""
    d = (actual.double() - expected.double()).abs()
    return d.max().item(), d.mean().item()
