"""``virnucpro.data.dna`` against VirNucPro's own functions, vendored in ``tests/reference``.

The reference is run as VirNucPro's ``make_predictdata`` runs it: ``split_fasta_chunk``
into a file, ``SeqIO.parse`` of that file, ``process_record`` on each chunk, items whose
protein is empty dropped. Ours must give the same ids, proteins and nucleotides in the
same order, and write the same bytes. ``frames="all"`` (our rule, not VirNucPro's) is
checked against the rule written out here, applied to the reference's ``translate_dna``.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from Bio import SeqIO
from Bio.SeqRecord import SeqRecord
from conftest import CONTIGS

from virnucpro.data import dna
from virnucpro.data.dna import FRAMES, Translator, chunk_bounds, read_dna, six_frames
from virnucpro.data.translation_files import write_translation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from virnucpro_prediction import process_record  # noqa: E402
from virnucpro_units import reverse_complement, split_fasta_chunk, translate_dna  # noqa: E402

Item = tuple[str, str, str]  # (id, protein, nucleotide)
IUPAC = "ACGTRYSWKMBDHVN"  # DNA's codes; U (RNA) is refused, not translated as VirNucPro would


def plain_copy(path: Path, tmp_path: Path) -> Path:
    """VirNucPro's SeqIO.parse(path) reads plain FASTA only: decompress a .gz input."""
    if path.suffix != ".gz":
        return path
    out = tmp_path / path.name.removesuffix(".gz")
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def reference_chunks(path: Path, size: int, tmp_path: Path) -> list[SeqRecord]:
    chunked = tmp_path / f"{path.name}_chunked{size}.fa"
    split_fasta_chunk(str(plain_copy(path, tmp_path)), str(chunked), size)
    return list(SeqIO.parse(str(chunked), "fasta"))


def reference_items(path: Path, size: int, tmp_path: Path) -> list[Item]:
    """make_predictdata's proteins: process_record on each chunk, empty proteins dropped."""
    return [
        (item["seqid"], item["protein"], item["nucleotide"])
        for record in reference_chunks(path, size, tmp_path)
        for item in process_record(record) or []
        if item.get("protein", "") != ""
    ]


def reference_all_frames(path: Path, size: int, tmp_path: Path) -> list[Item]:
    """Our frames="all" rule written out on translate_dna's frames: every frame, a final '*'
    dropped, inner ones as 'X', empty ones dropped; the nucleotide side as identify_seq cuts it."""
    items = []
    for record in reference_chunks(path, size, tmp_path):
        sequence = str(record.seq).upper()
        for num, frame in enumerate(translate_dna(sequence), start=1):
            protein = (frame[:-1] if frame.endswith("*") else frame).replace("*", "X")
            if not protein:
                continue
            span = 3 * len(protein)
            if num <= 3:
                items.append((f"{record.id}F{num}", protein, sequence[num - 1 : num + span]))
            else:
                reverse = reverse_complement(sequence)
                items.append((f"{record.id}R{num - 3}", protein, reverse[num - 4 : num - 3 + span]))
    return items


def ours(paths, size: int, frames: str = "stop-free") -> list[Item]:
    return [(p.id, p.sequence, p.nucleotide) for p in read_dna(paths, size, frames)]


def assert_same_items(got: list[Item], want: list[Item]) -> None:
    first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    assert got == want, (
        f"{len(got)} items, reference {len(want)}; first difference at item {first}: "
        f"ours {got[first] if first < len(got) else None}, reference {want[first] if first < len(want) else None}"
    )


def write_fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name} some description\n{seq}\n" for name, seq in records.items()))
    return path


def random_dna(rng: random.Random, length: int, letters: str = "ACGT") -> str:
    return "".join(rng.choice(letters) for _ in range(length))


def generated_records(size: int) -> dict[str, str]:
    rng = random.Random(size)
    records = {
        "shorter": random_dna(rng, max(1, size - 7)),
        "exact": random_dna(rng, size),
        "multiple": random_dna(rng, 3 * size),
        "one_over": random_dna(rng, size + 1),
        "one_over_twice": random_dna(rng, 2 * size + 1),
        "one_under_twice": random_dna(rng, 2 * size - 1),
        "lowercase": random_dna(rng, 2 * size + 50, "acgt"),
        "mixed_case": random_dna(rng, size + 37, "ACGTacgt"),
        "with_N": random_dna(rng, 2 * size, "ACGT" * 5 + "N"),
        "iupac": random_dna(rng, 2 * size + 11, IUPAC + IUPAC.lower()),
        "n_run": "N" * (size + 3) + random_dna(rng, size),
    }
    records |= {f"len{n}": random_dna(rng, n) for n in (1, 2, 3, 4, 5, 6, 7)}
    return records


@pytest.mark.parametrize("size", [300, 500])
@pytest.mark.parametrize("contig", CONTIGS, ids=lambda p: p.name)
def test_contigs_match_virnucpro(contig: Path, size: int, tmp_path: Path) -> None:
    assert_same_items(ours(contig, size), reference_items(contig, size, tmp_path))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 300, 500])
def test_generated_records_match_virnucpro(size: int, tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "generated.fa", generated_records(size))
    assert_same_items(ours(fasta, size), reference_items(fasta, size, tmp_path))


@pytest.mark.parametrize("block", [1, 1000, 1 << 14])
def test_blocks_of_a_long_record_match_virnucpro(block: int, tmp_path: Path, monkeypatch) -> None:
    """Records are translated ~1 Mbp at a time; smaller blocks put many block edges in reach."""
    monkeypatch.setattr(dna, "_BLOCK_BASES", block)
    fasta = write_fasta(tmp_path / "generated.fa", generated_records(300))
    for path in (CONTIGS[0], fasta):
        assert_same_items(ours(path, 300), reference_items(path, 300, tmp_path))


def test_line_layout_matches_virnucpro(tmp_path: Path) -> None:
    rng = random.Random(3)
    seq = random_dna(rng, 1400, "ACGT" * 3 + "N")
    lines = [seq[i : i + 61] for i in range(0, len(seq), 61)]
    text = ">wrapped\r\n" + "\r\n".join(lines) + "\n>spaced and\ttabbed\n" + " \t".join(lines) + " \n\n"
    fasta = tmp_path / "layout.fa"
    fasta.write_bytes(text.encode())
    got = ours(fasta, 300)
    assert_same_items(got, reference_items(fasta, 300, tmp_path))
    assert got[: len(got) // 2] == [(i.replace("spaced", "wrapped"), p, n) for i, p, n in got[len(got) // 2 :]]


def test_protein_fields_follow_the_id(tmp_path: Path) -> None:
    records = generated_records(300)
    fasta = write_fasta(tmp_path / "generated.fa", records)
    names = list(records)
    proteins = list(read_dna([fasta, fasta], 300, "all"))
    sources = [p.source for p in proteins]
    half = len(sources) // 2
    assert sources == sorted(sources) and sources[half:] == [s + len(names) for s in sources[:half]]
    for p in proteins:
        strand = "F" if p.frame <= 3 else "R"
        assert p.id == f"{names[p.source % len(names)]}_chunk_{p.chunk}{strand}{(p.frame - 1) % 3 + 1}", p


def reference_chunk_texts(records: dict[str, str], size: int, tmp_path: Path) -> dict[str, list[str]]:
    chunks: dict[str, list[str]] = {name: [] for name in records}
    for record in reference_chunks(write_fasta(tmp_path / f"sweep{size}.fa", records), size, tmp_path):
        name, number = record.id.rsplit("_chunk_", 1)
        assert int(number) == len(chunks[name]) + 1
        chunks[name].append(str(record.seq))
    return chunks


def assert_chunks_match(records: dict[str, str], size: int, tmp_path: Path) -> None:
    want = reference_chunk_texts(records, size, tmp_path)
    for name, sequence in records.items():
        got = [sequence[start:end] for start, end in chunk_bounds(len(sequence), size)]
        assert got == want[name], (
            f"size {size}, length {len(sequence)}: ours {chunk_bounds(len(sequence), size)}, "
            f"reference chunk lengths {[len(c) for c in want[name]]}"
        )


def test_chunk_bounds_every_length_to_1100_at_500(tmp_path: Path) -> None:
    rng = random.Random(1)
    assert_chunks_match({f"L{n}": random_dna(rng, n) for n in range(1, 1101)}, 500, tmp_path)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 13, 100, 299, 300, 301])
def test_chunk_bounds_random_lengths(size: int, tmp_path: Path) -> None:
    rng = random.Random(size)
    lengths = list(range(1, 3 * size + 2)) if size <= 13 else [rng.randrange(1, 12 * size) for _ in range(150)]
    assert_chunks_match({f"L{i}_{n}": random_dna(rng, n) for i, n in enumerate(lengths)}, size, tmp_path)


def test_chunk_bounds_quirks() -> None:
    assert chunk_bounds(0, 500) == []
    assert chunk_bounds(120, 500) == [(0, 120)]
    # zip() truncates VirNucPro's share list: these last chunks come out short of 500
    assert chunk_bounds(501, 500) == [(0, 500), (250, 501)]
    assert chunk_bounds(997, 500) == [(0, 500), (498, 997)]
    assert chunk_bounds(1001, 500) == [(0, 500), (333, 833), (666, 1001)]
    assert chunk_bounds(1000, 500) == [(0, 500), (500, 1000)]


def test_six_frames_is_translate_dna() -> None:
    rng = random.Random(2)
    for length in list(range(12)) * 20 + [rng.randrange(12, 400) for _ in range(200)]:
        chunk = random_dna(rng, length, "ACGT" * 4 + "acgtNRYU-é")
        assert six_frames(chunk) == translate_dna(chunk), chunk


@pytest.mark.parametrize("size", [300, 500])
def test_all_frames_rule(size: int, tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "generated.fa", generated_records(size))
    for path in [*CONTIGS[:1], fasta]:
        assert_same_items(ours(path, size, "all"), reference_all_frames(path, size, tmp_path))


def test_counts(tmp_path: Path) -> None:
    mixed = "ATG" * 300 + generated_records(500)["with_N"]  # stop-free, stopped and N-only frames
    records = {"empty1": "", "a": mixed, "empty2": "", "b": "N" * 700, "c": "AC"}
    fasta = write_fasta(tmp_path / "counts.fa", records)
    with pytest.raises(ZeroDivisionError):  # VirNucPro's split_fasta_chunk on an empty record
        reference_chunks(fasta, 500, tmp_path)
    non_empty = write_fasta(tmp_path / "non_empty.fa", {name: seq for name, seq in records.items() if seq})
    chunks = reference_chunks(non_empty, 500, tmp_path)
    frames = [frame for record in chunks for frame in translate_dna(str(record.seq).upper())]
    translator = Translator(500)
    proteins = list(translator.read(fasta))
    assert {p.source for p in proteins} == {1}
    counts = translator.counts
    assert (counts.records, counts.empty_records, counts.chunks) == (5, 2, len(chunks))
    assert counts.proteins == len(proteins) == sum(1 for f in frames if f and "*" not in f) > 0
    assert counts.stop_frames == sum(1 for f in frames if "*" in f) > 0
    assert counts.empty_proteins == frames.count("") > 0
    # VirNucPro's frame f of a chunk of n bases reads the codons at f, f + 3, ... < n - 2; a kept
    # protein shorter than that lost a codon to N (its translation gives a codon that is not ACGT nothing)
    codons = [len(range(f, len(record.seq) - 2, 3)) for record in chunks for f in (0, 1, 2, 0, 1, 2)]
    gapped = sum(1 for f, n in zip(frames, codons) if f and "*" not in f and len(f) < n)
    assert counts.gapped_proteins == gapped > 0
    assert gapped < counts.proteins  # the ATG run's frames are whole
    assert counts.proteins + counts.stop_frames + counts.empty_proteins == 6 * counts.chunks


def make_predictdata_outputs(path: Path, size: int, tmp_path: Path) -> tuple[bytes, bytes]:
    """A transcription of make_predictdata's writing loop (prediction.py), on the reference."""
    nucleotide_fasta_file, protein_fasta_file = tmp_path / "ref_nucleotide.fa", tmp_path / "ref_protein.faa"
    with open(nucleotide_fasta_file, "w") as dna_out, open(protein_fasta_file, "w") as protein_out:
        for record in reference_chunks(path, size, tmp_path):
            result = process_record(record)
            if result:
                for item in result:
                    if item.get("protein", "") != "":
                        sequence_name = item["seqid"]
                        dna_sequence = item["nucleotide"]
                        protein_sequence = item["protein"]

                        dna_out.write(f">{sequence_name}\n")
                        dna_out.write(f"{dna_sequence}\n")

                        protein_out.write(f">{sequence_name}\n")
                        protein_out.write(f"{protein_sequence}\n")
    return protein_fasta_file.read_bytes(), nucleotide_fasta_file.read_bytes()


@pytest.mark.parametrize("size", [300, 500])
def test_write_translation_bytes_match_make_predictdata(size: int, tmp_path: Path) -> None:
    generated = write_fasta(tmp_path / "generated.fa", generated_records(size))
    inputs = [CONTIGS[0], generated]
    # make_predictdata takes one file; for several, ours is their outputs one after the other
    want = []
    for i, path in enumerate(inputs):
        (tmp_path / f"ref{i}").mkdir()
        want.append(make_predictdata_outputs(path, size, tmp_path / f"ref{i}"))
    counts = write_translation(inputs, tmp_path / "p.faa", chunk_size=size, nucleotide_out=tmp_path / "n.fa")
    assert (tmp_path / "p.faa").read_bytes() == b"".join(p for p, _ in want)
    assert (tmp_path / "n.fa").read_bytes() == b"".join(n for _, n in want)
    assert counts.proteins == sum(p.count(b">") for p, _ in want)
    assert not list(tmp_path.glob(".*.part"))


def test_gzip_output_equals_plain(tmp_path: Path) -> None:
    contig = CONTIGS[0]
    write_translation(contig, tmp_path / "p.faa", nucleotide_out=tmp_path / "n.fa")
    write_translation(contig, tmp_path / "p.faa.gz", nucleotide_out=tmp_path / "n.fa.gz")
    assert gzip.decompress((tmp_path / "p.faa.gz").read_bytes()) == (tmp_path / "p.faa").read_bytes()
    assert gzip.decompress((tmp_path / "n.fa.gz").read_bytes()) == (tmp_path / "n.fa").read_bytes()
    first = (tmp_path / "p.faa.gz").read_bytes()
    write_translation(contig, tmp_path / "p.faa.gz", overwrite=True)
    assert (tmp_path / "p.faa.gz").read_bytes() == first, "the same input should give the same .gz bytes"


@pytest.mark.parametrize(
    "bad, where",
    [("J", 8), ("1", 1), ("é", 20), ("ſ", 5), ("*", 12), ("-", 3), ("U", 7), ("u", 2)],  # 'ſ'.upper() == 'S'
)
def test_non_iupac_letter_names_file_record_character_position(bad: str, where: int, tmp_path: Path) -> None:
    good = "ACGTNRYacgt" * 3
    fasta = write_fasta(tmp_path / "bad.fa", {"ok": good, "culprit": good[: where - 1] + bad + good[where - 1 :]})
    with pytest.raises(ValueError) as err:
        list(read_dna(fasta, 10))
    message = str(err.value)
    assert "\n" not in message
    hint = "write its U as T" if bad in "Uu" else "fix or remove that record"
    for part in (str(fasta), "record 2", "'culprit'", repr(bad), f"position {where}", hint):
        assert part in message, f"{part!r} not in {message!r}"


def test_an_rna_record_is_refused_where_virnucpro_would_embed_nonsense(tmp_path: Path) -> None:
    """VirNucPro drops each codon holding a U, stops included: an RNA record gives stop-free frames of
    whatever codons had no U. We refuse it, naming the record, as the DNA models do."""
    rna = random_dna(random.Random(5), 600).replace("T", "U")
    fasta = write_fasta(tmp_path / "rna.fa", {"rna": rna})
    kept = [frame for chunk in reference_chunks(fasta, 500, tmp_path) for frame in translate_dna(str(chunk.seq))]
    assert kept and all("*" not in frame for frame in kept)  # what VirNucPro would embed: every frame
    with pytest.raises(ValueError, match=r"record 1 \('rna'\) has 'U' at position \d+.*is it RNA\? write its U as T"):
        list(read_dna(fasta, 500))


def test_long_id_is_cut_in_messages(tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "bad.fa", {"x" * 500: "ACGTJ"})
    with pytest.raises(ValueError, match=r"'x{60}'\.\.\. \(500 characters\)") as err:
        list(read_dna(fasta))
    assert "x" * 61 not in str(err.value)


def test_failed_translation_leaves_no_output(tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "bad.fa", {"ok": "ACGT" * 400, "bad": "ACGTJ"})
    with pytest.raises(ValueError, match="'J'"):
        write_translation(fasta, tmp_path / "p.faa", nucleotide_out=tmp_path / "n.fa.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]
    (tmp_path / "p.faa").write_text("old")
    with pytest.raises(ValueError, match="'J'"):
        write_translation(fasta, tmp_path / "p.faa", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa", "p.faa"]
    assert (tmp_path / "p.faa").read_text() == "old"


def test_output_mode_follows_the_umask(tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "in.fa", {"a": "ATG" * 100})
    umask = os.umask(0o027)
    try:
        write_translation(fasta, tmp_path / "p.faa", nucleotide_out=tmp_path / "n.fa.gz")
    finally:
        os.umask(umask)
    assert [oct((tmp_path / name).stat().st_mode & 0o777) for name in ("p.faa", "n.fa.gz")] == [oct(0o640)] * 2


def test_outputs_that_are_inputs_or_each_other_are_refused(tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "in.fa", {"a": "ACGT" * 100})
    (tmp_path / "link.fa").symlink_to(fasta)
    os.link(fasta, tmp_path / "hard.fa")
    for out in (fasta, tmp_path / "link.fa", tmp_path / "hard.fa", tmp_path / "sub" / ".." / "in.fa"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ValueError, match="is the same file as the input") as err:
            write_translation(fasta, out, overwrite=True)
        assert str(fasta) in str(err.value) and os.fspath(out) in str(err.value)
    with pytest.raises(ValueError, match="nucleotide_out .* is the same file as protein_out"):
        write_translation(fasta, tmp_path / "p.faa", nucleotide_out=tmp_path / "p.faa")
    assert fasta.read_text() == ">a some description\n" + "ACGT" * 100 + "\n"


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    fasta = write_fasta(tmp_path / "in.fa", {"a": "ATG" * 100})
    out = tmp_path / "p.faa"
    out.write_text("old")
    with pytest.raises(FileExistsError, match=r"overwrite=True \(CLI: --overwrite\)"):
        write_translation(fasta, out)
    assert out.read_text() == "old"
    write_translation(fasta, out, overwrite=True)
    assert out.read_text().startswith(">a_chunk_1F1\nMMM")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_translation(fasta, tmp_path / "missing" / "p.faa")


def test_options_are_checked_with_their_cli_flags() -> None:
    for bad in (0, -3, "500", 2.5, True):
        with pytest.raises(ValueError, match=rf"chunk_size \(CLI: --chunk-size\) must be an integer >= 1, got {bad!r}"):
            Translator(bad)
    with pytest.raises(ValueError, match=r"chunk_size \(CLI: --chunk-size\) must be an integer >= 1, got 0"):
        chunk_bounds(10, 0)
    with pytest.raises(ValueError, match=r"frames \(CLI: --frames\) must be one of 'stop-free', 'all', got 'some'"):
        Translator(500, "some")
    assert FRAMES == ("stop-free", "all")
