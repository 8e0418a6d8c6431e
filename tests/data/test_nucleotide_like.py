"""Nucleotide FASTA given as protein is refused; real proteins never are.

The references are real data: the example proteome (Prodigal proteins, none
may be refused), six-frame translations of the example contigs (proteins as
VirNucPro makes them, none may be refused), and the contigs themselves read as
protein (every one must be refused).
"""

from __future__ import annotations

import gzip
import random
import re
import warnings
from pathlib import Path

import pytest
from Bio import SeqIO
from Bio.Seq import Seq
from conftest import CONTIGS, PROTEOME
from torch.utils.data import DataLoader

from virnucpro.data import Normaliser, SequenceDataset

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

#: UniProtKB/Swiss-Prot residue composition (%), for random proteins.
COMPOSITION = dict(
    A=8.25, R=5.53, N=4.06, D=5.45, C=1.37, Q=3.93, E=6.75, G=7.07, H=2.27, I=5.96,
    L=9.66, K=5.84, M=2.42, F=3.86, P=4.70, S=6.56, T=5.34, W=1.08, Y=2.92, V=6.87,
)  # fmt: skip


def write(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records))
    return path


def read(*paths: Path, **kwargs) -> list[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation of long proteins is not what is tested
        return [(r.id, r.sequence) for r in SequenceDataset(list(paths), **kwargs).records()]


def contig_records(path: Path) -> list[tuple[str, str]]:
    with gzip.open(path, "rt") as handle:
        return [(r.id, str(r.seq)) for r in SeqIO.parse(handle, "fasta")]


def test_the_real_proteome_is_never_refused():
    assert len(read(PROTEOME)) == 404


def test_six_frame_translations_of_the_contigs_are_never_refused(tmp_path):
    # Each frame of (the first 200 kb of) each contig translated once, cut into 100-residue
    # proteins: coding and non-coding frames alike, as VirNucPro translates every frame.
    proteins = []
    for path in CONTIGS:
        for contig_id, dna in contig_records(path):
            forward = Seq(dna[:200_000])
            for frame, strand in enumerate((forward, forward.reverse_complement())):
                for offset in range(3):
                    codons = strand[offset:]
                    protein = str(codons[: len(codons) // 3 * 3].translate()).replace("*", "X")
                    chunks = range(0, len(protein) - 100, 100)
                    proteins += [(f"{contig_id}_{frame}{offset}_{k}", protein[k : k + 100]) for k in chunks]
    assert len(proteins) > 5_000
    assert len(read(write(tmp_path / "six_frame.faa", proteins))) == len(proteins)


def test_random_proteins_and_low_complexity_ones_are_never_refused(tmp_path):
    rng = random.Random(0)
    residues, weights = zip(*COMPOSITION.items())
    proteins = [(f"p{i}", "".join(rng.choices(residues, weights, k=rng.randint(50, 400)))) for i in range(5_000)]
    # Linkers, tags and repeats built mostly of nucleotide letters, below 90 % A/C/G/T/N.
    proteins += [("linker", "GGGGS" * 20), ("gs", "GS" * 40), ("collagen_like", "GAT" * 15 + "GPS" * 5)]
    proteins += [("his_tag", "M" + "H" * 6 + "GSGAGTGNGAGCGTG" * 4)]
    assert len(read(write(tmp_path / "random.faa", proteins))) == len(proteins)


@pytest.mark.parametrize("path", CONTIGS, ids=[p.name for p in CONTIGS])
def test_each_contig_read_as_protein_is_refused(path):
    with pytest.raises(ValueError) as info:
        read(path)
    message = str(info.value)
    record_id = contig_records(path)[0][0]
    assert message.startswith(f"{path}: record 1 ({record_id!r}) looks like a nucleotide sequence"), message
    for needed in ("--dna", "allow_nucleotide_like=True", "(CLI: --allow-nucleotide-like)"):
        assert needed in message, f"{needed!r} missing: {message}"
    assert "\n" not in message


def reads_of(path: Path, length: int, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` random substrings of the contig, ``length`` nt long, as a sequencer would give reads."""
    rng = random.Random(seed)
    dna = contig_records(path)[0][1]
    starts = [rng.randrange(len(dna) - length) for _ in range(count)]
    return [(f"read_{i}", dna[s : s + length]) for i, s in enumerate(starts)]


@pytest.mark.parametrize("form", ["dna", "lower", "rna", "iupac", "soft-masked"])
def test_reads_are_refused_in_any_form_and_accepted_when_allowed(tmp_path, form):
    records = reads_of(CONTIGS[0], 150, 50, seed=1)
    rng = random.Random(2)
    change = {
        "dna": lambda s: s,
        "lower": str.lower,
        "rna": lambda s: s.replace("T", "U"),
        "iupac": lambda s: "".join(c if rng.random() > 0.03 else rng.choice("RYKMSWBDHV") for c in s),
        "soft-masked": lambda s: s[:50].lower() + s[50:],
    }[form]
    records = [(name, change(seq)) for name, seq in records]
    path = write(tmp_path / "reads.faa", records)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: record 1 \('read_0'\) looks like a nucleotide"):
        read(path)
    assert read(path, allow_nucleotide_like=True) == [(name, seq.upper()) for name, seq in records]


def test_the_length_threshold(tmp_path):
    short = write(tmp_path / "short.faa", [("primer", "ACGT" * 12 + "A")])  # 49 nt: too short to tell
    assert read(short) == [("primer", "ACGT" * 12 + "A")]
    long = write(tmp_path / "long.faa", [("probe", "ACGT" * 12 + "AC")])  # 50 nt
    with pytest.raises(ValueError, match=r"its 50 letters are all nucleotide codes, 100\.0% of them"):
        read(long)


def test_a_nucleotide_file_in_a_worker_raises_in_the_main_process(tmp_path):
    proteins = write(tmp_path / "proteins.faa", [(f"p{i}", "MKVLAAQQRRST" * 10) for i in range(100)])
    reads = write(tmp_path / "reads.faa", reads_of(CONTIGS[0], 100, 10, seed=3))
    loader = DataLoader(SequenceDataset([proteins, reads], report=False), batch_size=None, num_workers=2, timeout=60)
    with pytest.raises(ValueError, match=rf"{re.escape(str(reads))}: record 1 \('read_0'\) looks like a nucleotide"):
        list(loader)


def test_the_option_is_checked():
    with pytest.raises(ValueError, match="allow_nucleotide_like must be True or False"):
        Normaliser(allow_nucleotide_like="no")
