"""Small random models for the ``virnucpro predict`` tests, saved as users have them, and the same
models in memory for VirNucPro's own flow (``tests/reference/virnucpro_flow.py``).

* ESM-2: fair-esm's ``ESM2`` with 36 layers (VirNucPro's ``extract_esm`` reads layer 36), width 32,
  saved as a fair-esm checkpoint;
* DNABERT-S: DNABERT-S's own ``BertModel`` (``tests/reference/dnabert_s``), 2 layers, width 64,
  saved as a Hugging Face folder with ``random:dnabert-s``'s byte-pair tokenizer.json; VirNucPro's
  side reads that file with transformers' ``PreTrainedTokenizerFast``, as ``AutoTokenizer`` does;
* the classifier: VirNucPro's ``MLPClassifier`` (64 + 32 -> 32 -> 2) trained a few steps and saved
  whole by ``tests/models/classifier/make_virnucpro_classifier.py``, as train.py saves it, named
  ``<chunk size>_model.pth`` as VirNucPro names its files.

Also the test inputs: pieces of the bundled contigs and made-up edge cases.
"""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import esm
from conftest import EXAMPLES, tiny_esm2
from dnabert_reference import REAL, SHAPES, reference_model, save_folder
from transformers import PreTrainedTokenizerFast

from virnucpro.data.dna import chunk_bounds
from virnucpro.models import load_model, save_checkpoint
from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer

TESTS = Path(__file__).resolve().parents[2]
MAKER = TESTS / "models" / "classifier" / "make_virnucpro_classifier.py"
#: (layers, width, heads): 36 layers because VirNucPro's extract_esm reads representation 36.
ESM_SHAPE = (36, 32, 4)
DNABERT_SHAPE = SHAPES["2-layers-4-heads"]


@dataclass(frozen=True)
class Models:
    """The files a user passes, and the same models in memory for VirNucPro's flow."""

    esm_file: Path
    dnabert_folder: Path
    classifier: Path
    esm: esm.model.esm2.ESM2
    alphabet: esm.data.Alphabet
    dnabert: object
    tokenizer: PreTrainedTokenizerFast

    def args(self) -> list[str]:
        """``virnucpro predict``'s model options for these files."""
        return [
            "--model",
            str(self.esm_file),
            "--dnabert",
            str(self.dnabert_folder),
            "--classifier",
            str(self.classifier),
        ]

    def flow(self) -> dict[str, tuple]:
        """``run_virnucpro``'s model arguments."""
        return {"dnabert": (self.tokenizer, self.dnabert), "esm": (self.esm, self.alphabet)}


#: Smaller still, for the job tests, which compare runs of ours with each other.
FAST = {"esm": (2, 32, 4), "dnabert": SHAPES["2-layers-4-heads"]}


def make_models(
    folder: Path, chunk_size: int, seed: int = 0, *, esm_shape: tuple = ESM_SHAPE, dnabert_shape: tuple = DNABERT_SHAPE
) -> Models:
    """Seeded random models in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    protein = tiny_esm2(*esm_shape, seed=seed + 5)
    save_checkpoint(protein, folder / "esm2.pt")
    dna = reference_model(*dnabert_shape, seed=seed + 7)
    dna_folder = save_folder(dna, folder / "dnabert", dnabert_tokenizer("random:dnabert-s").to_str())
    classifier = folder / f"{chunk_size}_model.pth"
    width = str(dnabert_shape[1] + esm_shape[1])
    maker = [sys.executable, str(MAKER), str(classifier), "--input", width, "--hidden", "32", "--seed", str(seed)]
    subprocess.run(maker, check=True, capture_output=True)
    tokens = PreTrainedTokenizerFast(tokenizer_file=str(dna_folder / "tokenizer.json"))
    return Models(folder / "esm2.pt", dna_folder, classifier, protein, esm.data.Alphabet.from_architecture("ESM-1b"),
                  dna, tokens)  # fmt: skip


def real_models(folder: Path, chunk_size: int, device: str = "cuda", seed: int = 0) -> Models:
    """VirNucPro's models at their real sizes with random weights, in ``folder`` (created): ESM-2 3B
    (fair-esm's shape, built on ``device``, saved in fp16 as fair-esm's files are; the in-memory copy
    holds the same rounded values in fp32), DNABERT-S's shape (its own code), a 3328 -> 512 -> 2
    classifier. Both sides of a comparison get the same weights."""
    folder.mkdir(parents=True, exist_ok=True)
    protein, alphabet = load_model("random:esm2_t36_3B_UR50D", seed=seed, device=device)
    protein = protein.half()
    save_checkpoint(protein, folder / "esm2_t36_3B_random.pt")
    protein = protein.float()
    dna = real_dnabert(seed + 1)
    dna_folder = save_folder(dna, folder / "dnabert-s", dnabert_tokenizer("random:dnabert-s").to_str())
    classifier = folder / f"{chunk_size}_model.pth"
    maker = [sys.executable, str(MAKER), str(classifier), "--input", "3328", "--hidden", "512", "--seed", str(seed)]
    subprocess.run(maker, check=True, capture_output=True)
    tokens = PreTrainedTokenizerFast(tokenizer_file=str(dna_folder / "tokenizer.json"))
    return Models(folder / "esm2_t36_3B_random.pt", dna_folder, classifier, protein, alphabet, dna.to(device), tokens)


#: The spread of the random DNABERT-S at its real shape: BERT's initialiser's 0.02, as trained weights
#: are. At ``reference_model``'s default N(0, 0.1) (right for the small test shapes) a 12-layer,
#: 768-wide DNABERT is chaotic: a rounding error grows layer by layer, and its own code in bf16 keeps a
#: cosine of 0.08 to its fp32 output (0.9997 at 0.02), so no bf16 forward could agree with its fp32 one
#: (``benchmarks/classifier_sensitivity.py``).
REAL_DNABERT_NOISE = 0.02


def real_dnabert(seed: int, device: str = "cpu") -> object:
    """DNABERT-S's own model at its real shape, random weights of a trained model's spread, in fp32."""
    return reference_model(*REAL, seed=seed, noise=REAL_DNABERT_NOISE, device=device)


_STOPS = ("TAA", "TAG", "TGA")
_SENSE = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in _STOPS]


def coding_dna(chunks: int, chunk_size: int, seed: int = 0) -> list[tuple[str, str]]:
    """Made-up records of random sense codons (half of them reverse-complemented), ``chunks`` chunks in all:
    every chunk holds a stop-free frame, where random DNA of 500 bp almost never does."""
    rng = random.Random(seed)
    complement = str.maketrans("ACGT", "TGCA")
    records, total = [], 0
    while total < chunks:
        length = rng.randint(1, 12) * chunk_size + rng.randint(-chunk_size // 3, chunk_size // 3)
        sequence = "".join(rng.choices(_SENSE, k=length // 3 + 1))[:length]
        if rng.random() < 0.5:
            sequence = sequence.translate(complement)[::-1]
        records.append((f"synthetic_{len(records)}", sequence))
        total += len(chunk_bounds(length, chunk_size))
    return records


def contig(name: str) -> str:
    """The bases of a bundled example contig, upper case."""
    with gzip.open(EXAMPLES / name, "rt") as handle:
        return "".join(line.strip() for line in handle if not line.startswith(">")).upper()


def edge_cases(seed: int = 0) -> list[tuple[str, str]]:
    """Records VirNucPro can read that exercise its rules: lengths around the chunk sizes, lower case,
    N runs, IUPAC ambiguity codes, a record too short for a codon, one without a stop-free frame and
    an id holding "_chunk_"."""
    rng = random.Random(seed)
    coding = contig("MIIJ01000039.fna.gz")
    piece = lambda start, n: coding[start : start + n]  # noqa: E731
    spiked = list(piece(40_000, 900))
    for i in range(0, 900, 37):
        spiked[i] = rng.choice("RYKMSWBDHV")
    with_n = piece(50_000, 700)
    no_frame = "".join(rng.choices("ACGT", k=300))
    return [
        ("len_299", piece(30_000, 299)),
        ("len_300", piece(31_000, 300)),
        ("len_301", piece(32_000, 301)),
        ("len_601", piece(33_000, 601)),
        ("len_1000", piece(34_000, 1000)),
        ("lower", piece(35_000, 700).lower()),
        ("mixed", "".join(c.lower() if rng.random() < 0.5 else c for c in piece(36_000, 650))),
        ("n_runs", with_n[:200] + "N" * 60 + with_n[260:400] + "N" + with_n[401:]),
        ("iupac", "".join(spiked)),
        ("two_bases", "AC"),
        ("no_stop_free_frame", no_frame),
        ("x_chunk_7", piece(61_000, 620)),
    ]


def duplicated(ids: tuple[str, str]) -> list[tuple[str, str]]:
    """Two records under ``ids``: a coding piece and a copy with one base made N, which has the same
    stop-free frames (an N codon is no residue, never a stop), so the same frame ids when the ids are
    one, from other proteins and DNA slices."""
    dup = contig("MIIJ01000039.fna.gz")[39_000:39_900]  # 7 stop-free frames in 300 bp chunks
    return [(ids[0], dup), (ids[1], dup[:451] + "N" + dup[452:])]


def write_fasta(path: Path, records: list[tuple[str, str]], width: int = 70) -> Path:
    """``records`` as FASTA, sequences wrapped at ``width``, each header with a description."""
    lines = []
    for record_id, sequence in records:
        lines.append(f">{record_id} made for the predict tests\n")
        lines.extend(sequence[i : i + width] + "\n" for i in range(0, len(sequence), width))
    path.write_text("".join(lines))
    return path


def parity_input(path: Path) -> Path:
    """The bundled contigs, cut to 20 kb each for time, then the edge cases."""
    pieces = [(name.split(".")[0], contig(name)[:20_000]) for name in ("KK037166.fna.gz", "SRR492066.fna.gz")]
    pieces.append(("MIIJ01000039", contig("MIIJ01000039.fna.gz")[:20_000]))
    return write_fasta(path, pieces + edge_cases())
