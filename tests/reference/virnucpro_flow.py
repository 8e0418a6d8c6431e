"""VirNucPro's whole prediction (``make_predictdata`` in prediction.py) run with its own vendored
functions, on models we hand it instead of downloads.

Ours, not vendored: the body of ``make_predictdata`` (VirNucPro, commit 0f93f27, MIT, Copyright
(c) 2024 Jing Li; see LICENSE beside this file) line by line, with exactly these changes, each
marked ``# (ours)``:

* ``extract_DNABERT_S`` and ``extract_esm`` are called with ``model_loaded=True`` and the models
  passed in (the original downloads zhihan1996/DNABERT-S and esm2_t36_3B_UR50D);
* the classifier is read with ``torch.load(model_path, weights_only=False)`` as the original does,
  with ``MLPClassifier`` put in ``__main__`` for the call (the script defines it there);
* ``device``: the original's functions take CUDA whenever it is available; for ``device="cpu"``
  ``torch.cuda.is_available`` answers False during the call;
* the input is copied into ``workdir`` first, because VirNucPro writes every intermediate file
  beside its input, named by ``split('.fa')`` of the path.

Every other step is VirNucPro's own function, unchanged: ``split_fasta_chunk``, ``process_record``
(``identify_seq``), ``split_fasta_file`` (10,000 records per file), ``extract_DNABERT_S`` (one
sequence at a time, the mean over every token), ``extract_esm`` (its length-sorted batches of
2,048 tokens, layer 36, so the ESM-2 given must have 36 layers), ``merge_data`` (joined by id),
``PredictDataBatchDataset``, ``predict`` (batches of 256, 4 workers), and the result writing
(``write_results``: the text file, then pandas' ``groupby`` with ``determine_virus``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
from Bio import SeqIO
from torch.utils.data import DataLoader
from tqdm import tqdm

import virnucpro_prediction as prediction
from virnucpro_units import extract_esm, split_fasta_chunk, split_fasta_file
from virnucpro_units_features import extract_DNABERT_S, merge_data

__all__ = ["run_virnucpro"]


@contextlib.contextmanager
def _on(device: str) -> Iterator[None]:
    """VirNucPro's functions pick ``cuda`` whenever it is available: hide it for a CPU run."""
    if torch.device(device).type == "cpu" and torch.cuda.is_available():
        with mock.patch.object(torch.cuda, "is_available", lambda: False):
            yield
    else:
        yield


@contextlib.contextmanager
def _class_in_main() -> Iterator[None]:
    """prediction.py runs as a script: the pickled classifier names ``__main__.MLPClassifier``."""
    main = sys.modules["__main__"]
    had = hasattr(main, "MLPClassifier")
    old = getattr(main, "MLPClassifier", None)
    main.MLPClassifier = prediction.MLPClassifier
    try:
        yield
    finally:
        if had:
            main.MLPClassifier = old
        else:
            del main.MLPClassifier


def run_virnucpro(
    fasta: Path,
    chunk_size: int,
    model_path: Path,
    workdir: Path,
    *,
    dnabert: tuple[object, object],
    esm: tuple[object, object],
    device: str = "cpu",
) -> Path:
    """VirNucPro's prediction of ``fasta`` (plain nucleotide FASTA); returns the folder holding its
    ``prediction_results.txt`` and ``prediction_results_highestscore.csv``.

    Args:
        fasta: the input; copied to ``workdir/input.fasta`` first.
        chunk_size: VirNucPro's ``expect_length`` (300 or 500 for its classifiers).
        model_path: a classifier file as VirNucPro's train.py saves it.
        workdir: an empty folder whose path holds neither "nucleotide" nor ".fa" (VirNucPro's
            string replacements would rewrite them).
        dnabert: (tokenizer, model): a transformers tokenizer and DNABERT-S's ``BertModel``.
        esm: (model, alphabet): a fair-esm ESM-2 of 36 layers and its alphabet.
        device: ``cuda`` or ``cpu``.
    """
    if "nucleotide" in str(workdir) or ".fa" in str(workdir):
        raise ValueError(f"{workdir}: VirNucPro's path replacements would rewrite 'nucleotide' or '.fa' in it")
    predict_fasta_file = str(workdir / "input.fasta")  # (ours)
    shutil.copyfile(fasta, predict_fasta_file)  # (ours)
    with _on(device):
        return Path(_make_predictdata(predict_fasta_file, chunk_size, str(model_path), dnabert, esm))


def _make_predictdata(predict_fasta_file, expect_length, model_path, dnabert, esm):
    """make_predictdata's lines, in order (the changes marked ``# (ours)``)."""
    sequences_per_file = 10000
    nucleotide_chunked_output = predict_fasta_file.split('.fa')[0] + f'_chunked{expect_length}.fa'

    nucleotide_fasta_file = predict_fasta_file.split('.fa')[0] + '_identified_nucleotide.fa'
    protein_fasta_file = predict_fasta_file.split('.fa')[0] + '_identified_protein.faa'
    nucleotide_output_floder = predict_fasta_file.split('.fa')[0] + '_nucleotide/'
    protein_output_floder = predict_fasta_file.split('.fa')[0] + '_protein/'
    os.makedirs(nucleotide_output_floder, exist_ok=True)
    os.makedirs(protein_output_floder, exist_ok=True)

    split_fasta_chunk(predict_fasta_file, nucleotide_chunked_output, int(expect_length))

    with open(nucleotide_fasta_file, 'w') as dna_out, open(protein_fasta_file, 'w') as protein_out:
        records = list(SeqIO.parse(nucleotide_chunked_output, 'fasta'))
        for record in tqdm(records, total=len(records)):
            result = prediction.process_record(record)
            if result:
                for item in result:
                    if item.get('protein', '') != '':
                        sequence_name = item['seqid']
                        dna_sequence = item['nucleotide']
                        protein_sequence = item['protein']

                        dna_out.write(f'>{sequence_name}\n')
                        dna_out.write(f'{dna_sequence}\n')

                        protein_out.write(f'>{sequence_name}\n')
                        protein_out.write(f'{protein_sequence}\n')

    split_fasta_file(nucleotide_fasta_file, nucleotide_output_floder, sequences_per_file)
    nucleotide_file_list_feature = []
    nucleotide_file_list = [
        os.path.join(nucleotide_output_floder, f)
        for f in os.listdir(nucleotide_output_floder)
        if os.path.isfile(os.path.join(nucleotide_output_floder, f)) and f.endswith('.fa')
        ]
    tokenizer, dnabert_model = dnabert  # (ours)
    for file in nucleotide_file_list:
        extract_DNABERT_S(input_file=file, out_file=f'{file.split(".fa")[0]}_DNABERT_S.pt',
                          model_loaded=True, tokenizer=tokenizer, model=dnabert_model)  # (ours: injected)
        print ('saved to: ' + f'{file.split(".fa")[0]}_DNABERT_S.pt')
        nucleotide_file_list_feature.append(f'{file.split(".fa")[0]}_DNABERT_S.pt')

    split_fasta_file(protein_fasta_file, protein_output_floder, sequences_per_file)
    protein_feature = []
    protein_file_list = [
            os.path.join(protein_output_floder, f)
            for f in os.listdir(protein_output_floder)
            if os.path.isfile(os.path.join(protein_output_floder, f)) and f.endswith('.fa')
            ]
    esm_model, alphabet = esm  # (ours)
    for file in protein_file_list:
        extract_esm(fasta_file = file, out_file = f'{file.split(".fa")[0]}_ESM.pt',
                    model_loaded=True, model=esm_model, alphabet=alphabet)  # (ours: injected)
        print ('saved to: ' + f'{file.split(".fa")[0]}_ESM.pt')
        protein_feature.append(f'{file.split(".fa")[0]}_ESM.pt')

    merged_list = [
        item.replace('nucleotide', 'merged')
            .replace('.fa', '_merged.pt')
        for item in nucleotide_file_list
    ]

    for DNABERT_S_infile, ESM_infile, merged_file in zip(nucleotide_file_list_feature, protein_feature, merged_list):
        print(DNABERT_S_infile, ESM_infile)
        output_folder = merged_file.split('output_')[0]
        os.makedirs(output_folder, exist_ok=True)
        merge_data(DNABERT_S_infile, ESM_infile, merged_file)

    predict_dataset = prediction.PredictDataBatchDataset(merged_list)
    predict_loader = DataLoader(predict_dataset, batch_size=256, shuffle=False, num_workers=4)
    with _class_in_main():  # (ours)
        mlp_model = torch.load(model_path, weights_only=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mlp_model = mlp_model.to(device)
    seqids, predictions, probabilities = prediction.predict(mlp_model, predict_loader, device)

    prediction.write_results(output_folder, seqids, predictions, probabilities)  # lines 173-191
    return output_folder
