"""A full ``virnucpro embed`` run on the GPU, checked against fair-esm's fp32 forward.

Runs the CLI (bf16 by default) on the real proteome with ``random:<arch>`` weights,
then rebuilds the same random model (same seed), runs fair-esm's padded fp32
forward on the GPU batched and pooled as esm-extract does (``tests/esm_reference.py``,
8192 tokens per batch), and reports the per-sequence
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

import _paths  # noqa: F401  (tests/ on sys.path: the fair-esm reference loop)
import h5py
import numpy as np
import torch
from esm.data import FastaBatchedDataset
from esm_reference import esm_extract_batches, esm_extract_means, in_input_order

from virnucpro.data import SequenceDataset
from virnucpro.models import load_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def fair_esm_means(arch: str, records: list[tuple[str, str]], toks_per_batch: int = 8192) -> np.ndarray:
    """esm-extract's mean embeddings from fair-esm's padded forward in fp32 on the GPU, in input order.

    The model is built as the CLI builds ``random:<arch>`` (on the CPU, seeded), then moved.
    """
    model, alphabet = load_model(f"random:{arch}")
    model = model.cuda().eval()
    dataset = FastaBatchedDataset(*zip(*records))
    batches = esm_extract_batches(dataset, toks_per_batch)
    means = esm_extract_means(model, alphabet.get_batch_converter(), dataset, batches, model.num_layers)
    return in_input_order(means, batches).numpy()


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

    records = [(r.id, r.sequence) for r in SequenceDataset([args.fasta], report=False).records()]
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
