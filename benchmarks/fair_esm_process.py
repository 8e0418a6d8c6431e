"""fair-esm's per-sample process, as its users run it, timed stage by stage: ``process_start.py`` runs it.

    python benchmarks/fair_esm_process.py CKPT FASTA --toks-per-batch 16384 --out means.pt [--device cpu]

Its stages are esm-extract's (fair-esm's ``scripts/extract.py``) with the model in fp16, as in
``tests/esm_reference.py``'s ``esm_extract_means``: fair-esm's loader
(``esm.pretrained.load_model_and_alphabet_local``, which also reads the
``<name>-contact-regression.pt`` beside the checkpoint), ``.half().cuda().eval()``,
``FastaBatchedDataset.from_file``, ``get_batch_indices(toks_per_batch, extra_toks_per_seq=1)``,
a DataLoader with ``get_batch_converter(1022)``, the padded forward of the last layer, the mean
over rows ``1 .. min(len, 1022)`` of each sequence copied to the CPU, and ``torch.save`` of the means.

The loop is written out here rather than imported from ``tests/esm_reference.py``: that module
imports Biopython, which a fair-esm process does not, and it could not time the first batch.

On torch >= 2.6, fair-esm's ``torch.load`` needs ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the
environment (its checkpoints hold an ``argparse.Namespace``); the caller sets it.

Prints one JSON line: the seconds of each stage, measured from this script's first line
(``import_s`` covers ``import torch`` and ``import esm``), and the records and tokens embedded.
"""

import time

STARTED = time.perf_counter()  # before any other import: they are part of the process's cost

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import esm  # noqa: E402  (after torch, as a fair-esm script imports them)

IMPORTED = time.perf_counter()
TRUNCATION = 1022  # residues per sequence, esm-extract's default truncation_seq_length


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="fair-esm ESM-2 .pt; its -contact-regression.pt beside it")
    parser.add_argument("fasta", type=Path)
    parser.add_argument("--toks-per-batch", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="torch.save of the per-batch means")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: smoke test, no .cuda()")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    times = {"import_s": IMPORTED - STARTED}
    mark = IMPORTED

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[name] = now - mark
        mark = now

    model, alphabet = esm.pretrained.load_model_and_alphabet_local(args.checkpoint)
    lap("load_s")
    model = model.half()
    model = (model.cuda() if args.device == "cuda" else model).eval()
    if args.device == "cuda":
        torch.cuda.synchronize()
    lap("to_device_s")
    dataset = esm.data.FastaBatchedDataset.from_file(args.fasta)
    batches = dataset.get_batch_indices(args.toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(
        dataset, collate_fn=alphabet.get_batch_converter(TRUNCATION), batch_sampler=batches
    )
    lap("dataset_s")
    means, first_batch_s = extract_means(model, loader)
    lap("loop_s")
    torch.save({"batches": batches, "means": means}, args.out)
    lap("save_s")
    tokens = sum(min(len(s), TRUNCATION) + 2 for s in dataset.sequence_strs)
    records = sum(m.shape[0] for m in means)
    in_process = time.perf_counter() - STARTED
    result = {**times, "first_batch_s": first_batch_s, "in_process_s": in_process, "records": records}
    print(json.dumps({**result, "tokens": tokens, "batches": len(batches), "toks_per_batch": args.toks_per_batch}))


def extract_means(model, loader) -> tuple[list, float]:
    """esm-extract's loop: the per-batch (B, E) means on the host, and the seconds until the first batch was in hand."""
    device = model.embed_tokens.weight.device
    last = model.num_layers
    means, first_batch_s = [], None
    start = time.perf_counter()
    with torch.no_grad():
        for _, strs, toks in loader:
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - start
            toks = toks.to(device, non_blocking=True)
            rep = model(toks, repr_layers=[last])["representations"][last]
            rows = [rep[i, 1 : min(len(s), TRUNCATION) + 1].mean(0) for i, s in enumerate(strs)]
            means.append(torch.stack(rows).cpu())
    return means, first_batch_s or 0.0


if __name__ == "__main__":
    main()
