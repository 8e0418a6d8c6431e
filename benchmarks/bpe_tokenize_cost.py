"""What byte-pair tokenising costs a DataLoader worker, with and without the pipeline's groups.

For a byte-pair tokenizer (DNABERT-S) counting tokens is encoding them. Through
``SequenceDataset.__iter__`` every worker of a rank budgets all of the rank's records (so that
workers agree on batch boundaries without talking), so every worker encodes everything, and
collates 1 of K batches from the tokens the budget carried (``Encoded``). The pipeline deals out
``rank_groups`` instead: every worker parses everything but encodes only its own groups. This
times, on VirNucPro's nucleotide slices of the example contigs (500-bp chunks, ``--repeat``
copies), with ``random:dnabert-s``'s tokenizer (DNABERT-S's layout and vocabulary size):

* ``records()``: parsing and normalising alone;
* ``batches()``: the same plus the budget's batched ``encode`` of every record;
* ``rank_groups()`` (parsing, grouping) and ``batches_of`` over all groups (encoding, budgets);
* collating every batch from its carried tokens, and collating it encoding afresh (what a
  collator without them would do).

    python benchmarks/bpe_tokenize_cost.py [--repeat 20] [--max-tokens 16384] [--rounds 3]

Writes ``--out``, by default ``benchmarks/results/bpe_tokenize_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import warnings
from pathlib import Path

from bench_data import EXAMPLES, write_fasta
from timing import best_seconds

from virnucpro.data import SequenceDataset, VarlenCollator
from virnucpro.data.dna import read_dna
from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer

RESULTS = Path(__file__).resolve().parent / "results"


def slices(repeat: int) -> list[tuple[str, str]]:
    """VirNucPro's nucleotide slices of the example contigs' 500-bp chunks, ``repeat`` times, distinct ids."""
    found = [p.nucleotide for p in read_dna(sorted(EXAMPLES.glob("*.fna.gz")), chunk_size=500)]
    return [(f"s{k}_{i}", seq) for k in range(repeat) for i, seq in enumerate(found)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "bpe_tokenize_cost.json")
    args = parser.parse_args()

    tokenizer = dnabert_tokenizer("random:dnabert-s")
    collate = VarlenCollator(tokenizer)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "slices.fna"
        write_fasta(slices(args.repeat), path)
        dataset = SequenceDataset(path, max_tokens=args.max_tokens, tokenizer=tokenizer)
        batches = list(dataset.batches())
        parse_s = best_seconds(
            lambda: sum(1 for _ in SequenceDataset(path, tokenizer=tokenizer).records()), args.rounds
        )[1]
        budget_s = best_seconds(lambda: sum(1 for _ in dataset.batches()), args.rounds)[1]
        groups, grouping_s = best_seconds(lambda: list(dataset.rank_groups()), args.rounds)
        grouped, group_encode_s = best_seconds(lambda: [dataset.batches_of(g) for g in groups], args.rounds)
        grouped_batches = sum(map(len, grouped))
    carried_s = best_seconds(lambda: [collate(b) for b in batches], args.rounds)[1]
    fresh_s = best_seconds(lambda: [collate(list(b)) for b in batches], args.rounds)[1]
    records, tokens = sum(map(len, batches)), sum(int(b.lengths.sum()) for b in batches)
    bases = sum(len(r.sequence) for b in batches for r in b)
    per_worker = {
        f"{k} workers": {
            "groups_s": grouping_s + (group_encode_s + carried_s) / k,
            "everything_carried_s": budget_s + carried_s / k,
            "everything_encoded_twice_s": budget_s + fresh_s / k,
        }
        for k in (1, 2, 4, 8)
    }
    result = {
        "data": f"VirNucPro 500-bp nucleotide slices of examples/data x{args.repeat}",
        "records": records,
        "bases": bases,
        "tokens": tokens,
        "batches": len(batches),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "parse_s": parse_s,
        "parse_and_budget_s": budget_s,
        "groups": len(groups),
        "parse_and_group_s": grouping_s,
        "encode_and_budget_groups_s": group_encode_s,
        "grouped_batches": grouped_batches,
        "collate_carried_s": carried_s,
        "collate_encoding_again_s": fresh_s,
        "tokens_per_s_budget_encode": tokens / max(budget_s - parse_s, 1e-9),
        "per_worker": per_worker,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    print(
        f"{result['data']}: {records:,} records, {bases:,} bases, {tokens:,} tokens in {len(batches)} batches "
        f"(best of {args.rounds})\n"
        f"  parse + normalise            {parse_s:8.3f} s\n"
        f"  + budget (batched encode)    {budget_s:8.3f} s\n"
        f"  parse + group                {grouping_s:8.3f} s ({len(groups)} groups, {grouped_batches} batches)\n"
        f"  encode + budget the groups   {group_encode_s:8.3f} s\n"
        f"  collate, tokens carried      {carried_s:8.3f} s\n"
        f"  collate, encoding again      {fresh_s:8.3f} s"
    )
    for label, row in per_worker.items():
        print(
            f"  per worker with {label}: {row['groups_s']:.3f} s with groups; every record encoded by every "
            f"worker: {row['everything_carried_s']:.3f} s, {row['everything_encoded_twice_s']:.3f} s encoding twice"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
