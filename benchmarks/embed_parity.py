"""A full ``virnucpro embed`` run on the GPU, checked against fair-esm's fp32 forward.

Runs the CLI (bf16 by default) on the real proteome with ``random:<arch>`` weights,
then rebuilds the same random model (same seed), runs fair-esm's padded fp32
forward on the GPU with esm-extract's mean pooling, and reports the per-sequence
cosine of the two embeddings. Writes ``--out`` (JSON) with the summary line.

    python benchmarks/embed_parity.py --arch esm2_t33_650M_UR50D --out results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

from virnucpro.data import SequenceDataset
from virnucpro.models import load_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def fair_esm_means(arch: str, records: list[tuple[str, str]], toks_per_batch: int = 8192) -> np.ndarray:
    """esm-extract's mean embeddings from fair-esm's padded forward in fp32 on the GPU."""
    model, alphabet = load_model(f"random:{arch}")
    model = model.cuda().eval()
    convert = alphabet.get_batch_converter()
    order = sorted(range(len(records)), key=lambda i: len(records[i][1]))
    batches, batch = [], []
    for i in order:  # ascending lengths: the padded size is (count) x (this record's length + 2)
        if batch and (len(batch) + 1) * (len(records[i][1]) + 2) > toks_per_batch:
            batches.append(batch)
            batch = []
        batch.append(i)
    batches.append(batch)
    ordered = torch.empty(len(records), model.embed_dim)
    with torch.no_grad():
        for batch in batches:
            _, strs, tokens = convert([records[i] for i in batch])
            reps = model(tokens.cuda(), repr_layers=[model.num_layers])["representations"][model.num_layers]
            for row, (i, seq) in enumerate(zip(batch, strs)):
                ordered[i] = reps[row, 1 : len(seq) + 1].mean(0).cpu()
    return ordered.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="esm2_t33_650M_UR50D")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--fasta", type=Path, default=EXAMPLES / "MIIJ01000039.single.faa.gz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--h5", type=Path, help="keep the embeddings file here (default: a temporary file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        h5 = args.h5 or Path(tmp) / "emb.h5"
        cmd = [sys.executable, "-m", "virnucpro", "embed", str(args.fasta), "-o", str(h5),
               "--model", f"random:{args.arch}", "--dtype", args.dtype, "--no-progress"]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True)
        print(run.stderr[-2000:], file=sys.stderr)
        if run.returncode != 0:
            raise SystemExit(f"embed failed: {run.returncode}")
        summary = run.stdout.strip().splitlines()[-1]
        print(summary)
        with h5py.File(h5) as f:
            ids = f["ids"].asstr()[:].tolist()
            ours = f["embeddings"][:]

    records = [(r["id"], r["sequence"]) for r in SequenceDataset([args.fasta], report=False).records()]
    assert ids == [rid for rid, _ in records], "ids differ from the input order"
    reference = fair_esm_means(args.arch, records)
    cos = np.sum(ours * reference, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    result = {
        "arch": args.arch,
        "dtype": args.dtype,
        "records": len(ids),
        "summary": summary,
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=1))
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
