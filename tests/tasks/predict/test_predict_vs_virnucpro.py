"""``virnucpro predict`` against VirNucPro's own prediction flow, on the CPU in fp32.

The reference is ``make_predictdata`` run with VirNucPro's own vendored functions
(``tests/reference/virnucpro_flow.py``: chunking, translation, 10,000-record files, DNABERT-S one
sequence at a time, ESM-2 in its length-sorted padded batches, ``merge_data``, ``predict``, the
result writing and pandas' ``groupby``) on the same random models as ours (``predict_models.py``).
Input: 20 kb of each bundled contig and made-up edge cases. Required: the same frame ids in the
same order; the same labels except where the two scores tie within 1e-6; scores within 1e-5;
features within 1e-5 of VirNucPro's merged features; and ``prediction_results_highestscore.csv``
byte for byte what VirNucPro's pandas code writes from our ``prediction_results.txt``.

Where VirNucPro and we differ on purpose, the tests show it: with a frame id repeated (records
sharing an id) in one of its 10,000-frame files, VirNucPro stops (fair-esm's ``FastaBatchedDataset``
refuses repeated labels; were it to go on, ``merge_data``'s join by id would give every copy the
last copy's features); we score each frame from its own features.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from feature_parity import feature_figures
from predict_models import duplicated, edge_cases, make_models, parity_input, write_fasta

from virnucpro import read_embeddings
from virnucpro.cli import main
from virnucpro.data.dna import read_dna
from virnucpro.tasks.predict import HIGHEST_FILE, RESULTS_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
from virnucpro_flow import run_virnucpro  # noqa: E402
from virnucpro_prediction import write_results  # noqa: E402

pytestmark = pytest.mark.slow

CHUNK = 300
SCORES = 1e-5  # fp32 on the CPU, packed against padded and one-at-a-time forwards
TIE = 1e-6  # labels may differ only where the two scores are this close


def read_results(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, labels, (N, 2) float32 scores) of a prediction_results.txt."""
    ids, labels, scores = [], [], []
    lines = path.read_text().splitlines()
    assert lines[0] == "Sequence_ID\tPrediction\tscore1\tscore2", lines[0]
    for line in lines[1:]:
        frame, label, score1, score2 = line.split("\t")
        ids.append(frame)
        labels.append(label)
        scores.append((np.float32(score1), np.float32(score2)))
    return ids, labels, np.array(scores, dtype=np.float32).reshape(-1, 2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("models"), CHUNK)


def predict(fasta: Path, out: Path, models, *extra: str) -> Path:
    """``virnucpro predict`` through its CLI entry point, on the CPU in fp32."""
    argv = [
        "predict", str(fasta), "-o", str(out), *models.args(), "--chunk-size", str(CHUNK), "--dtype", "fp32",
        "--device", "cpu", "--no-progress", "--max-tokens", "1500", *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def virnucpro(fasta: Path, work: Path, models) -> Path:
    """VirNucPro's own flow on the same models."""
    work.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' and transformers' notes are not ours to fix
        return run_virnucpro(fasta, CHUNK, models.classifier, work, **models.flow(), device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, models) -> dict:
    """Both predictions of one input with the same models: ours through the CLI, VirNucPro's flow."""
    root = tmp_path_factory.mktemp("parity")
    fasta = parity_input(root / "contigs.fasta")
    ours = predict(fasta, root / "ours", models, "--save-features", "features.h5")
    theirs = virnucpro(fasta, root / "virnucpro_work", models)
    width = models.dnabert.config.hidden_size
    return {"fasta": fasta, "ours": ours, "theirs": theirs, "classifier": models.classifier, "dna_width": width}


def test_the_same_frames_labels_and_scores_as_virnucpro(runs):
    ids, labels, scores = read_results(runs["ours"] / RESULTS_FILE)
    their_ids, their_labels, their_scores = read_results(runs["theirs"] / RESULTS_FILE)
    assert ids == their_ids, f"{len(ids)} frames vs VirNucPro's {len(their_ids)}; first differing: " + str(
        next(((a, b) for a, b in zip(ids, their_ids) if a != b), None)
    )
    assert len(ids) > 200 and len(set(ids)) == len(ids), f"{len(ids)} frames: too few, or ids repeat"
    diff = np.abs(scores - their_scores)
    assert diff.max() <= SCORES, f"scores: max abs diff {diff.max():.3g}, mean {diff.mean():.3g} over {len(ids)} frames"
    tied = np.abs(their_scores[:, 1] - their_scores[:, 0]) < TIE
    differing = [i for i in range(len(ids)) if labels[i] != their_labels[i] and not tied[i]]
    assert not differing, f"labels differ at frames {[ids[i] for i in differing[:5]]}"


def test_repeated_frame_ids_each_get_their_own_features_where_virnucpro_stops(models, tmp_path):
    same = predict(write_fasta(tmp_path / "same.fasta", duplicated(("dup", "dup"))), tmp_path / "same", models)
    apart = predict(write_fasta(tmp_path / "apart.fasta", duplicated(("dupA", "dupB"))), tmp_path / "apart", models)
    ids, _, scores = read_results(same / RESULTS_FILE)
    apart_ids, _, apart_scores = read_results(apart / RESULTS_FILE)
    assert len(ids) == 14 and len(set(ids)) == 7, ids
    assert [i.replace("dupA", "dup").replace("dupB", "dup") for i in apart_ids] == ids
    assert np.array_equal(scores, apart_scores), "a repeated id changes no frame's scores"
    changed = ["_chunk_2" in frame for frame in ids[:7]]  # the chunk holding the base made N
    assert ((scores[:7] != scores[7:]).any(axis=1) == changed).all(), "each copy is scored from its own features"
    with pytest.raises(AssertionError, match="Found duplicate sequence labels"):
        virnucpro(tmp_path / "same.fasta", tmp_path / "virnucpro_work", models)


def test_highest_score_csv_is_what_virnucpros_pandas_writes_from_our_results(runs, tmp_path):
    ids, labels, scores = read_results(runs["ours"] / RESULTS_FILE)
    folder = tmp_path / "pandas"
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_results(f"{folder}/", ids, labels, list(scores))
    assert (folder / RESULTS_FILE).read_bytes() == (runs["ours"] / RESULTS_FILE).read_bytes()
    assert (folder / HIGHEST_FILE).read_bytes() == (runs["ours"] / HIGHEST_FILE).read_bytes()


def test_saved_features_are_virnucpros_merged_features_dnabert_s_first(runs):
    features = read_embeddings(runs["ours"] / "features.h5", in_memory=True)
    merged = [torch.load(path) for path in sorted(Path(runs["theirs"]).glob("*_merged.pt"))]
    assert len(merged) == 1, "under 10,000 frames VirNucPro writes one merged file"
    their_ids, their_data = merged[0]["ids"], merged[0]["data"].numpy()
    assert list(features.ids) == their_ids
    assert features.embeddings.shape == their_data.shape == (len(their_ids), 96)
    diff = np.abs(features.embeddings - their_data)
    assert diff.max() <= SCORES, f"features: max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"
    # the side-by-side figures the GPU test prints: in fp32 each side is VirNucPro's, and moves no score
    dna_width = runs["dna_width"]
    figures = feature_figures(runs["ours"] / "features.h5", Path(runs["theirs"]), runs["classifier"], dna_width)
    assert figures["frames"] == len(their_ids) and 0 < dna_width < their_data.shape[1]
    assert min(figures["dnabert_cosine_min"], figures["esm2_cosine_min"]) > 1 - 1e-6, figures
    assert max(v for k, v in figures.items() if k.startswith("score2_shift")) <= SCORES, figures
    assert figures["reference_margin_median"] > 0, figures
    frames = list(read_dna(runs["fasta"], CHUNK))
    assert [p.id for p in frames] == list(features.ids)
    assert (features.columns["source_index"] == [p.source for p in frames]).all()


def test_the_edge_cases_are_what_they_say():
    """Guards the input: the record made to have no stop-free frame has none, the short one no codon."""
    records = dict(edge_cases()[:11])
    translated = {name: [p.id for p in read_dna_text(name, seq)] for name, seq in records.items()}
    assert translated["no_stop_free_frame"] == [] and translated["two_bases"] == []
    assert all(translated[name] for name in ("len_301", "lower", "n_runs", "iupac")), translated


def read_dna_text(record_id: str, sequence: str) -> list:
    from virnucpro.data.dna import Translator
    from virnucpro.data.fasta import FastaRecord

    return list(Translator(CHUNK)(FastaRecord("edge", 1, record_id, sequence), 0))
