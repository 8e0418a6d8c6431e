"""Tokenising speed, side by side in one run: ESM's ``batch_converter`` vs ``VarlenCollator``.

Both get the same token-budgeted batches of the proteome repeated ``--repeat``
times (records as ``SequenceDataset`` yields them: normalised, at most 1022
residues). Tokens count n + 2 per sequence. Before timing, every packed
sequence is checked against the converter's unpadded row, so the two are timed
doing the same work. Writes ``--out``, by default ``benchmarks/results/tokenize_speed.json``.

    python benchmarks/tokenize_speed.py [--repeat 10] [--max-tokens 16384] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import warnings
from pathlib import Path

import esm
import torch
from bench_data import proteome, repeat, write_fasta
from timing import best_seconds

from virnucpro.data import SequenceDataset, VarlenCollator

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "tokenize_speed.json", help="default: the committed results"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "proteome.faa"
        write_fasta(repeat(proteome(), args.repeat), path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the proteome's over-long proteins are truncated, as esm-extract does
            batches = list(SequenceDataset(path, max_tokens=args.max_tokens).batches())

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    converter = alphabet.get_batch_converter(truncation_seq_length=1022)
    collator = VarlenCollator(converter)
    pairs = [[(r.id, r.sequence) for r in b] for b in batches]
    tokens = sum(len(r.sequence) + 2 for b in batches for r in b)

    for batch, raw in zip(batches, pairs):
        packed, (_, _, padded) = collator(batch), converter(raw)
        cu = packed.cu_seqlens
        for i, (_, seq) in enumerate(raw):
            if not torch.equal(packed.input_ids[cu[i] : cu[i + 1]], padded[i, : len(seq) + 2]):
                raise SystemExit(f"tokens differ for {raw[i][0]!r}: the comparison would be meaningless")

    converter_s = best_seconds(lambda: [converter(raw) for raw in pairs], args.rounds)[1]
    collator_s = best_seconds(lambda: [collator(batch) for batch in batches], args.rounds)[1]
    result = {
        "data": f"proteome x{args.repeat}",
        "sequences": sum(len(b) for b in batches),
        "batches": len(batches),
        "max_tokens": args.max_tokens,
        "tokens": tokens,
        "rounds": args.rounds,
        "batch_converter_tokens_per_s": tokens / converter_s,
        "varlen_collator_tokens_per_s": tokens / collator_s,
        "speedup": converter_s / collator_s,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    print(
        f"{result['data']}: {result['sequences']} sequences, {tokens:,} tokens in {len(batches)} batches "
        f"of <= {args.max_tokens} tokens (best of {args.rounds})\n"
        f"  batch_converter  {result['batch_converter_tokens_per_s']:>14,.0f} tokens/s\n"
        f"  VarlenCollator   {result['varlen_collator_tokens_per_s']:>14,.0f} tokens/s\n"
        f"  ratio            {result['speedup']:>14.1f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
