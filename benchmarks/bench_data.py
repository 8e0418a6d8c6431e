"""Benchmark protein sets built from the real sequences in ``examples/data``.

Each builder returns a list of ``(id, sequence)`` pairs; ``repeat`` multiplies a
set with distinct ids and ``write_fasta`` puts a set on disk for the pipeline.

- ``proteome``: the 404 Prodigal proteins of ``MIIJ01000039.single.faa.gz``.
- ``vnp500``: VirNucPro-style input. The three ``*.fna.gz`` contigs are cut into
  500 bp chunks and each chunk is translated in all six frames; frames without a
  stop codon are kept, so every protein has 166 residues.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path

from Bio import SeqIO
from Bio.Seq import Seq

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def _read_fasta(path: Path) -> list[tuple[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return [(record.id, str(record.seq).upper()) for record in SeqIO.parse(handle, "fasta")]


def proteome(path: Path = EXAMPLES / "MIIJ01000039.single.faa.gz") -> list[tuple[str, str]]:
    """Prodigal proteins with the trailing stop ``*`` removed.

    The ``*`` is Prodigal's stop marker, not a residue: fair-esm would encode it
    as ``<unk>``, so it is dropped to give every system the same residues.
    """
    return [(name, seq.removesuffix("*")) for name, seq in _read_fasta(path)]


def six_frame_proteins(contigs: Iterable[Path], chunk_bp: int) -> list[tuple[str, str]]:
    """Stop-free six-frame translations of the full ``chunk_bp`` chunks of each contig.

    The short last chunk of a contig is dropped, so all proteins have the same
    length. Chunks holding an ``N`` are skipped: they lie in assembly gaps
    (half of MIIJ01000039 is ``N``), and their all-``X`` "proteins" have no
    stop codon, so they would otherwise swamp the set.
    """
    proteins = []
    for path in contigs:
        for contig_id, dna in _read_fasta(path):
            for start in range(0, len(dna) - chunk_bp + 1, chunk_bp):
                chunk = dna[start : start + chunk_bp]
                if "N" in chunk:
                    continue
                forward = Seq(chunk)
                # Frames 1-3 read the chunk forward, frames 4-6 its reverse complement.
                for first_frame, strand in ((1, forward), (4, forward.reverse_complement())):
                    for offset in range(3):
                        codons = strand[offset:]
                        protein = str(codons[: len(codons) // 3 * 3].translate())
                        if "*" not in protein:
                            proteins.append((f"{contig_id}_{start}_f{first_frame + offset}", protein))
    return proteins


def vnp500(contigs: Iterable[Path] = tuple(sorted(EXAMPLES.glob("*.fna.gz")))) -> list[tuple[str, str]]:
    """VirNucPro-style proteins: 500 bp chunks, six frames, stop-free frames only."""
    return six_frame_proteins(contigs, chunk_bp=500)


DATASETS: dict[str, Callable[[], list[tuple[str, str]]]] = {"proteome": proteome, "vnp500": vnp500}


def repeat(records: list[tuple[str, str]], times: int) -> list[tuple[str, str]]:
    """``records`` concatenated ``times`` times; copy k gets ids suffixed ``_r{k}``."""
    return [(f"{name}_r{k}", seq) for k in range(times) for name, seq in records]


def write_fasta(records: Iterable[tuple[str, str]], path: Path, width: int = 60) -> None:
    """Write ``(id, sequence)`` pairs as FASTA, sequence lines wrapped at ``width``."""
    with open(path, "w") as handle:
        for name, seq in records:
            handle.write(f">{name}\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i : i + width] + "\n")
