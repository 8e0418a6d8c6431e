"""What it costs that every DataLoader worker reads and normalises the whole input.

``SequenceDataset`` has each worker of each rank parse every record, then keep
its own share (that is how all workers agree on positions and batch
boundaries without talking). This times ``SequenceDataset(files).records()``,
the whole parse and normalisation, in one process, and sets it against how
fast one H200 consumes tokens (ANCHORS.md): the share of one CPU core that the
re-reading costs each worker while the GPU runs at that rate. With ``w``
workers on each of ``r`` ranks, the machine spends ``w * r`` times that.

It also times the validation pass (``virnucpro.pipeline.validation.InputCheck``):
the same parse once more in each rank's main process, in a thread, ahead of the
GPU, so that a bad record stops the run before the GPU reaches the records
before it. Its share of a core, at the same GPU rates, is what validation costs.

    python benchmarks/parse_cost.py [--repeat 10] [--rounds 3]

Writes ``--out``, by default ``benchmarks/results/parse_cost.json``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import platform
import shutil
import tempfile
import warnings
from pathlib import Path

from bench_data import proteome, repeat, vnp500, write_fasta
from timing import best_seconds

from virnucpro.data import SequenceDataset, default_tokenizer
from virnucpro.pipeline.validation import InputCheck

RESULTS = Path(__file__).resolve().parent / "results"

#: Tokens per second one H200 consumes (ANCHORS.md): our end-to-end targets and the bf16 matmul limits.
GPU_RATES = {
    "ESM-2 3B target": 100_000,
    "ESM-2 3B bf16 matmul limit": 121_000,
    "ESM-2 650M target": 350_000,
    "ESM-2 650M bf16 matmul limit": 525_000,
}


def parse_once(path: Path) -> tuple[int, int, int]:
    """One full pass of ``records()``: the records, raw residues and GPU tokens it gave."""
    n = residues = tokens = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # over-long proteins are truncated and reported; not what is timed
        for record in SequenceDataset(path).records():
            n += 1
            residues += record.length
            tokens += len(record.sequence) + default_tokenizer().special_tokens_per_sequence
    return n, residues, tokens


def validate_once(path: Path) -> int:
    """One validation pass, as a run starts it for a job of ``path``: the records it counted."""
    dataset = functools.partial(SequenceDataset, path, report=False)
    return InputCheck([(path.with_suffix(".h5"), dataset)]).jobs[0].result()


def measure(name: str, path: Path, rounds: int) -> dict:
    (n, residues, tokens), seconds = best_seconds(functools.partial(parse_once, path), rounds)
    counted, validation_s = best_seconds(functools.partial(validate_once, path), rounds)
    if counted != n:
        raise RuntimeError(f"the validation pass counted {counted} records of {path}, the parse {n}")
    row = {
        "data": name,
        "file": path.name,
        "bytes": path.stat().st_size,
        "records": n,
        "residues": residues,
        "gpu_tokens": tokens,
        "parse_s": seconds,
        "records_per_s": n / seconds,
        "residues_per_s": residues / seconds,
        # The GPU needs gpu_tokens / rate seconds for this input; each worker parses it all in parse_s.
        "core_fraction_per_worker": {label: seconds * rate / tokens for label, rate in GPU_RATES.items()},
        # The validation pass: one more whole parse per rank, in a thread of the main process.
        "validation_s": validation_s,
        "validation_core_fraction_per_rank": {label: validation_s * rate / tokens for label, rate in GPU_RATES.items()},
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="copies of the proteome (vnp500 is repeated 3x)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "parse_cost.json", help="default: the committed results")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = []
        plain = tmp / f"proteome_x{args.repeat}.faa"
        write_fasta(repeat(proteome(), args.repeat), plain)
        packed = tmp / f"proteome_x{args.repeat}.faa.gz"
        with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        inputs += [(f"proteome x{args.repeat}", plain), (f"proteome x{args.repeat}, gzip", packed)]
        vnp = tmp / "vnp500_x3.faa"
        write_fasta(repeat(vnp500(), 3), vnp)
        inputs.append(("vnp500 x3", vnp))
        for name, path in inputs:
            rows.append(measure(name, path, args.rounds))

    print(f"SequenceDataset.records(), one process, best of {args.rounds}")
    for row in rows:
        print(
            f"\n{row['data']}: {row['records']:,} records, {row['residues']:,} residues, "
            f"{row['gpu_tokens']:,} GPU tokens, {row['parse_s']:.3f} s\n"
            f"  {row['records_per_s']:>12,.0f} records/s   {row['residues_per_s']:>14,.0f} residues/s per worker"
        )
        for label, fraction in row["core_fraction_per_worker"].items():
            rate = GPU_RATES[label]
            print(f"  at {rate:>7,} tokens/s ({label}): {fraction:6.1%} of one core per worker")
        print(f"  validation pass: {row['validation_s']:.3f} s")
        for label, fraction in row["validation_core_fraction_per_rank"].items():
            rate = GPU_RATES[label]
            print(f"  at {rate:>7,} tokens/s ({label}): {fraction:6.1%} of one core per rank for validation")

    result = {
        "rounds": args.rounds,
        "gpu_rates_tokens_per_s": GPU_RATES,
        "python": platform.python_version(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
