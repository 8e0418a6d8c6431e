"""``SequenceDataset`` through real DataLoaders: every record exactly once, whatever the workers and ranks.

The reference is the input itself, read independently with ``Bio.SeqIO.parse``
and normalised here by hand. Outputs are compared with it as multisets of ids,
as the exact set of input positions, and residue by residue after decoding the
tokens back. This is the test that would have caught the predecessor's loss of
10,577 sequences in DataLoader workers (see LESSONS.md, "Data layer").
"""

from __future__ import annotations

import gzip
import os
import random
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from Bio import SeqIO
from conftest import PROTEOME, requires_cuda
from torch.utils.data import DataLoader, get_worker_info

from virnucpro.data import SequenceDataset, VarlenCollator

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

MAX_LENGTH = 1022
WORKER_TIMEOUT_S = 60
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


# --- the input and its independent reference ------------------------------------------------


def write_random_fasta(path: Path, n: int, prefix: str, seed: int) -> None:
    """``n`` random proteins: mixed case, some rare residues, some trailing '*', some over MAX_LENGTH."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i in range(n):
            length = rng.randint(1, 1300) if rng.random() < 0.02 else rng.randint(1, 300)
            seq = "".join(rng.choices(AMINO_ACIDS + "XBUZO", weights=[20] * 20 + [1] * 5, k=length))
            if rng.random() < 0.3:
                seq = seq.lower()
            if rng.random() < 0.5:
                seq += "*"
            width = rng.choice([60, 80, 10_000])
            lines = "\n".join(seq[k : k + width] for k in range(0, len(seq), width))
            handle.write(f">{prefix}_{i:05d} random protein {i}\n{lines}\n")


def read_reference(paths: list[Path]) -> list[tuple[str, str]]:
    """``(id, normalised sequence)`` for every record, in input order, without virnucpro."""
    out = []
    for path in paths:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rt") if is_gzip else open(path) as handle:
            for rec in SeqIO.parse(handle, "fasta"):
                seq = "".join(str(rec.seq).upper().split())
                if seq.endswith("*"):
                    seq = seq[:-1]
                out.append((rec.id, seq[:MAX_LENGTH]))
    return out


@dataclass(frozen=True)
class Corpus:
    files: list[Path]
    reference: list[tuple[str, str]]  # input position -> (id, normalised sequence)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    first, second = root / "first.faa", root / "second.faa"
    write_random_fasta(first, 1003, "first", seed=1)
    write_random_fasta(second, 517, "second", seed=2)
    files = [first, PROTEOME, second]
    return Corpus(files, read_reference(files))


@pytest.fixture(scope="module")
def one_file(tmp_path_factory) -> Corpus:
    path = tmp_path_factory.mktemp("one") / "big.faa"
    write_random_fasta(path, 1003, "big", seed=3)
    return Corpus([path], read_reference([path]))


# --- helpers that run inside workers (module level, so that spawn can pickle them) -----------


class WorkerTagged:
    """Wraps a collate_fn and records which worker collated the batch (collate_fn runs in the worker)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, batch):
        out = self.collate(batch)
        info = get_worker_info()
        return {"num_sequences": out.num_sequences, "worker": -1 if info is None else info.id}


def index_collate(batch):
    """Plain records to their input positions, plus what the collating process sees."""
    if not isinstance(batch, list):
        batch = [batch]
    info = get_worker_info()
    return {
        "indices": torch.tensor([r.index for r in batch], dtype=torch.int64),
        "worker": -1 if info is None else info.id,
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def init_cuda(worker_id: int) -> None:
    torch.cuda.init()


# --- checks against the reference ------------------------------------------------------------


def loader_for(ds, collate, num_workers, token_mode, batch_size=7, **kwargs) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=None if token_mode else batch_size,
        collate_fn=collate,
        num_workers=num_workers,
        timeout=WORKER_TIMEOUT_S if num_workers else 0,
        **kwargs,
    )


def assert_exactly_once(indices: list[int], n: int, what: str) -> None:
    counts = Counter(indices)
    missing = [i for i in range(n) if i not in counts]
    repeated = {i: c for i, c in counts.items() if c > 1}
    outside = [i for i in counts if not 0 <= i < n]
    assert not (missing or repeated or outside), (
        f"{what}: {len(indices)} records out for {n} in; {len(missing)} missing (first {missing[:5]}), "
        f"{len(repeated)} repeated (first {list(repeated.items())[:5]}), {len(outside)} outside range(n)"
    )


def decode(batch: dict, all_toks: np.ndarray, cls_idx: int, eos_idx: int) -> list[str]:
    ids, cu = batch["input_ids"].numpy(), batch["cu_seqlens"].numpy()
    assert (ids[cu[:-1]] == cls_idx).all() and (ids[cu[1:] - 1] == eos_idx).all(), "every sequence is BOS ... EOS"
    return ["".join(all_toks[ids[cu[i] + 1 : cu[i + 1] - 1]]) for i in range(len(cu) - 1)]


def assert_matches_reference(batches: list[dict], reference: list[tuple[str, str]], alphabet, what: str) -> None:
    out_ids = [sid for b in batches for sid in b["sequence_ids"]]
    out_indices = [int(i) for b in batches for i in b["indices"]]
    in_ids = Counter(rid for rid, _ in reference)
    missing, extra = in_ids - Counter(out_ids), Counter(out_ids) - in_ids
    assert not missing and not extra, (
        f"{what}: ids differ as multisets: {sum(missing.values())} missing (e.g. {list(missing)[:5]}), "
        f"{sum(extra.values())} extra (e.g. {list(extra)[:5]})"
    )
    assert_exactly_once(out_indices, len(reference), what)

    all_toks = np.array(alphabet.all_toks, dtype=object)
    wrong = []  # (index, got, expected)
    for b in batches:
        decoded = decode(b, all_toks, alphabet.cls_idx, alphabet.eos_idx)
        for index, sid, seq in zip(b["indices"].tolist(), b["sequence_ids"], decoded):
            if (sid, seq) != reference[index]:
                wrong.append((index, (sid, seq), reference[index]))
    assert not wrong, (
        f"{what}: {len(wrong)} records differ from the input at their index; first: index {wrong[0][0]}, "
        f"got {wrong[0][1]!r:.200}, expected {wrong[0][2]!r:.200}"
    )


def assert_within_budget(batches: list[dict], max_tokens: int, what: str) -> None:
    over = [
        (j, int(b["cu_seqlens"][-1]), b["num_sequences"])
        for j, b in enumerate(batches)
        if int(b["cu_seqlens"][-1]) > max_tokens and b["num_sequences"] > 1
    ]
    assert not over, (
        f"{what}: {len(over)} multi-record batches over max_tokens={max_tokens}: (batch, tokens, records) {over[:5]}"
    )


# --- 1. exactly once through a real DataLoader -----------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 1, 2, 3])
@pytest.mark.parametrize("token_mode", [False, True], ids=["records", "tokens"])
def test_every_record_exactly_once_through_a_dataloader(corpus, alphabet, batch_converter, num_workers, token_mode):
    max_tokens = 2000 if token_mode else None
    ds = SequenceDataset(corpus.files, max_tokens=max_tokens)
    loader = loader_for(ds, VarlenCollator(batch_converter), num_workers, token_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the proteome's over-long records are reported; that is tested elsewhere
        batches = list(loader)
    what = f"{'tokens' if token_mode else 'records'}, num_workers={num_workers}"
    assert_matches_reference(batches, corpus.reference, alphabet, what)
    if token_mode:
        order = [int(i) for b in batches for i in b["indices"]]
        assert order == list(range(len(corpus.reference))), (
            f"{what}: batches arrive out of input order; first out of place at position "
            f"{next(k for k, i in enumerate(order) if i != k)}"
        )
        assert_within_budget(batches, max_tokens, what)
    else:
        sizes = Counter(b["num_sequences"] for b in batches)
        assert set(sizes) <= set(range(1, 8)), f"{what}: batch sizes {sizes}"


def test_every_epoch_exactly_once_with_persistent_workers(corpus, alphabet, batch_converter):
    ds = SequenceDataset(corpus.files, max_tokens=3000, report=False)
    loader = loader_for(ds, VarlenCollator(batch_converter), 2, True, persistent_workers=True)
    for epoch in range(2):
        assert_matches_reference(list(loader), corpus.reference, alphabet, f"epoch {epoch}")


def test_skipped_positions_are_left_out_and_the_rest_come_exactly_once(corpus):
    n = len(corpus.reference)
    rng = np.random.default_rng(0)
    skip = rng.random(n - 100) < 0.4  # shorter than the input: the last 100 are never skipped
    keep = [i for i in range(n) if not (i < skip.size and skip[i])]
    ds = SequenceDataset(corpus.files, max_tokens=2000, skip=skip, report=False)
    assert [r.index for r in ds.records()] == keep
    got = [int(i) for b in loader_for(ds, index_collate, 2, True) for i in b["indices"]]
    assert got == keep, (
        f"{len(got)} out, {len(keep)} expected; {len(set(keep) - set(got))} missing, "
        f"{len(set(got) - set(keep))} unexpected"
    )


# --- 2. distributed sharding -----------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("token_mode", [False, True], ids=["records", "tokens"])
def test_ranks_together_yield_every_record_exactly_once(corpus, world_size, num_workers, token_mode):
    per_rank = []
    for rank in range(world_size):
        ds = SequenceDataset(
            corpus.files, max_tokens=2000 if token_mode else None, rank=rank, world_size=world_size, report=False
        )
        per_rank.append([b["indices"].tolist() for b in loader_for(ds, index_collate, num_workers, token_mode)])
    what = f"world_size={world_size}, num_workers={num_workers}, {'tokens' if token_mode else 'records'}"
    assert_exactly_once([i for batches in per_rank for b in batches for i in b], len(corpus.reference), what)
    for rank, batches in enumerate(per_rank):
        # Records, not batches, are shared out: rank r holds the positions i % W == r (in order with
        # max_tokens; without, a batch_size DataLoader interleaves its workers' batches).
        got = [i for b in batches for i in b]
        wanted = list(range(rank, len(corpus.reference), world_size))
        got = got if token_mode else sorted(got)
        assert got == wanted, f"{what}: rank {rank} holds {len(got)} records, not positions {rank}::{world_size}"


def test_rank_and_world_size_from_the_environment(corpus, monkeypatch):
    world_size = 3
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    per_rank = []
    for rank in range(world_size):
        monkeypatch.setenv("RANK", str(rank))
        ds = SequenceDataset(corpus.files, report=False)
        per_rank.append([i for b in loader_for(ds, index_collate, 2, False) for i in b["indices"].tolist()])
    sizes = [len(p) for p in per_rank]
    assert max(sizes) - min(sizes) <= 1, f"records per rank {sizes}"
    assert_exactly_once([i for p in per_rank for i in p], len(corpus.reference), "RANK/WORLD_SIZE from env")

    # Explicit arguments win over the environment.
    ds = SequenceDataset(corpus.files, rank=0, world_size=1, report=False)
    assert_exactly_once(
        [i for b in loader_for(ds, index_collate, 0, False) for i in b["indices"].tolist()],
        len(corpus.reference),
        "explicit rank=0, world_size=1 under RANK=2, WORLD_SIZE=3",
    )


@pytest.mark.parametrize("token_mode", [False, True], ids=["records", "tokens"])
def test_one_big_file_keeps_every_worker_busy(one_file, batch_converter, token_mode):
    ds = SequenceDataset(one_file.files, max_tokens=2000 if token_mode else None, report=False)
    batches = list(loader_for(ds, WorkerTagged(VarlenCollator(batch_converter)), 3, token_mode))
    records_per_worker = Counter()
    batches_per_worker = Counter()
    for b in batches:
        records_per_worker[b["worker"]] += b["num_sequences"]
        batches_per_worker[b["worker"]] += 1
    assert set(batches_per_worker) == {0, 1, 2}, f"workers that produced batches: {dict(batches_per_worker)}"
    spread = max(batches_per_worker.values()) - min(batches_per_worker.values())
    assert spread <= 1, f"batches per worker {dict(batches_per_worker)}"
    if not token_mode:
        spread = max(records_per_worker.values()) - min(records_per_worker.values())
        assert spread <= 1, f"records per worker {dict(records_per_worker)}"
    assert sum(records_per_worker.values()) == len(one_file.reference)


# --- 3. token budget -------------------------------------------------------------------------


def test_token_budget_holds_and_only_a_lone_record_exceeds_it(corpus, tmp_path):
    max_tokens = 2000
    rng = random.Random(5)
    # Records exactly at the budget, just over it and far over it, between ordinary ones.
    lengths = [50, max_tokens - 2, 30, max_tokens - 1, 3000, 10, 20, 4000, 1, max_tokens - 2]
    extra = tmp_path / "edge.faa"
    extra.write_text("".join(f">edge_{i}\n{''.join(rng.choices(AMINO_ACIDS, k=n))}\n" for i, n in enumerate(lengths)))
    files = [*corpus.files, extra]
    ds = SequenceDataset(files, max_length=5000, max_tokens=max_tokens, report=False)
    batches = list(ds.batches())
    costs = [[len(r.sequence) + 2 for r in b] for b in batches]

    over = [(j, sum(c), len(c)) for j, c in enumerate(costs) if sum(c) > max_tokens and len(c) > 1]
    assert not over, (
        f"{len(over)} multi-record batches over max_tokens={max_tokens}, (batch, tokens, records): {over[:5]}"
    )
    giants = [(j, c) for j, c in enumerate(costs) if any(x > max_tokens for x in c)]
    assert len(giants) >= 3 and all(len(c) == 1 for _, c in giants), f"records over the budget must be alone: {giants}"
    # A batch is only closed when the next record would not fit: no budget is given away.
    early = [j for j in range(len(costs) - 1) if sum(costs[j]) + costs[j + 1][0] <= max_tokens]
    assert not early, f"{len(early)} batches closed although the next record fit, first {early[0] if early else None}"
    n = len(read_reference(files))
    assert [r.index for b in batches for r in b] == list(range(n)), "batches() must cover every record in order"


def test_token_budget_fills_batches_on_the_proteome():
    max_tokens = 16384
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(SequenceDataset(PROTEOME, max_tokens=max_tokens).batches())
    tokens = np.array([sum(len(r.sequence) + 2 for r in b) for b in batches])
    fill = tokens / max_tokens
    print(
        f"proteome, max_tokens={max_tokens}: {len(batches)} batches, fill mean {fill.mean():.4f}, min {fill.min():.4f}"
    )
    assert tokens.max() <= max_tokens, f"largest batch {tokens.max()} tokens"
    assert fill.mean() >= 0.9, f"mean fill {fill.mean():.4f} < 0.9; per batch {np.round(fill, 3).tolist()}"
    assert sum(len(b) for b in batches) == 404


# --- 5. errors raised in workers reach the main process --------------------------------------


def test_invalid_residue_in_a_worker_raises_in_the_main_process(corpus, tmp_path):
    rng = random.Random(7)
    bad = tmp_path / "bad.faa"
    good = [f">ok_{i}\n{''.join(rng.choices(AMINO_ACIDS, k=100))}\n" for i in range(300)]
    bad.write_text("".join(good[:250]) + ">WP_0123\nMKVLAJQ\n" + "".join(good[250:]))
    ds = SequenceDataset([corpus.files[0], bad], max_tokens=2000, report=False)
    loader = loader_for(ds, index_collate, 2, True)
    pattern = rf"{re.escape(str(bad))}[^\n]*WP_0123[^\n]*'J'[^\n]*position 6\b[^\n]*invalid='X'"
    with pytest.raises(ValueError, match=pattern):
        list(loader)


# --- 9. workers are cut off from CUDA --------------------------------------------------------


def test_workers_see_no_cuda_devices_under_fork(corpus):
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    ds = SequenceDataset(corpus.files, max_tokens=4000, report=False)
    batches = list(loader_for(ds, index_collate, 2, True, multiprocessing_context="fork"))
    seen = Counter(b["cuda_visible_devices"] for b in batches)
    assert seen == Counter({"": len(batches)}), f"CUDA_VISIBLE_DEVICES seen by workers: {dict(seen)}"
    assert {b["pid"] for b in batches}.isdisjoint({os.getpid()}), "batches must come from worker processes"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before, "the main process's environment must be left alone"


def test_workers_see_no_cuda_devices_under_spawn(tmp_path):
    path = tmp_path / "tiny.faa"
    path.write_text(">a\nMKV\n>b\nQQ\n>c\nRR\n")
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    ds = SequenceDataset(path, report=False)
    batches = list(loader_for(ds, index_collate, 1, False, batch_size=2, multiprocessing_context="spawn"))
    assert [b["cuda_visible_devices"] for b in batches] == ["", ""]
    assert sorted(i for b in batches for i in b["indices"].tolist()) == [0, 1, 2]
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before


@pytest.mark.gpu
@requires_cuda
def test_worker_that_initialised_cuda_fails_naming_the_worker(tmp_path):
    path = tmp_path / "tiny.faa"
    path.write_text(">a\nMKV\n>b\nQQ\n")
    ds = SequenceDataset(path, report=False)
    loader = loader_for(ds, index_collate, 1, False, multiprocessing_context="spawn", worker_init_fn=init_cuda)
    with pytest.raises(RuntimeError, match=r"DataLoader worker 0\b[^\n]*CUDA"):
        list(loader)


@pytest.mark.gpu
@requires_cuda
def test_fork_after_the_parent_used_cuda_still_yields_every_record(corpus):
    torch.zeros(1, device="cuda")
    ds = SequenceDataset(corpus.files, max_tokens=4000, report=False)
    batches = list(loader_for(ds, index_collate, 2, True, multiprocessing_context="fork"))
    assert [i for b in batches for i in b["indices"].tolist()] == list(range(len(corpus.reference)))
    assert {b["cuda_visible_devices"] for b in batches} == {""}
