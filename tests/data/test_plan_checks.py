"""The user's plan (``05-01-PLAN.md``, phase 05 plan 01: the async DataLoader foundation), checked.

Its three ``<verify>`` blocks are below verbatim (``TASK1_VERIFY`` .. ``TASK3_VERIFY``, copied
from the plan's Tasks 1-3) and run as the plan runs them: the bash text ``python -c "..."`` in a
subprocess, ``python`` being this interpreter; each must exit 0 and print its line. One change
only, made on the copy where it runs (``_task2_without_download``): Task 2's
``esm.pretrained.esm2_t33_650M_UR50D()`` downloads 2.5 GB of weights to read the alphabet.

Then each line of the plan's ``must_haves`` and ``success_criteria`` (``PLAN_LINES``) names the
tests that fail if it stops holding, or ``.planning/PROJECT.md`` where we deliberately differ
("Where we differ from the user's plan", which quotes the line and says why); the last test
checks that every name given there exists.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import esm
import pytest
import torch
from Bio import SeqIO
from conftest import REPO, requires_cuda
from torch.utils.data import DataLoader, IterableDataset
from worker_probes import cuda_probe, init_cuda, probe

import virnucpro.data.collators
import virnucpro.data.sequence_dataset
from virnucpro.data import SequenceDataset, VarlenCollator

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

WORKER_TIMEOUT_S = 60

# --- the plan's verify blocks, verbatim -----------------------------------------------------

TASK1_VERIFY = r'''python -c "
from virnucpro.data.sequence_dataset import SequenceDataset
from pathlib import Path
import tempfile
import os

# Create test FASTA
with tempfile.NamedTemporaryFile(mode='w', suffix='.fasta', delete=False) as f:
    f.write('>seq1\nMKTAYIAK\n>seq2\nVLSPADKTNV\n')
    test_file = f.name

# Test basic iteration
ds = SequenceDataset([Path(test_file)])
items = list(ds)
assert len(items) == 2, f'Expected 2 items, got {len(items)}'
assert items[0]['id'] == 'seq1', f'Expected seq1, got {items[0][\"id\"]}'
assert 'sequence' in items[0] and 'file' in items[0]
print('SequenceDataset basic test passed')

os.unlink(test_file)
"'''

TASK2_VERIFY = r'''python -c "
import torch
import esm
from virnucpro.data.collators import VarlenCollator

# Load ESM alphabet for batch_converter
_, alphabet = esm.pretrained.esm2_t33_650M_UR50D()
batch_converter = alphabet.get_batch_converter()

# Create collator
collator = VarlenCollator(batch_converter, max_tokens=100)

# Test batch
batch = [
    {'id': 'seq1', 'sequence': 'MKTAYIAK', 'file': 'test.fasta'},
    {'id': 'seq2', 'sequence': 'VLSPADKTNV', 'file': 'test.fasta'},
]

result = collator(batch)

assert 'input_ids' in result, 'Missing input_ids'
assert 'cu_seqlens' in result, 'Missing cu_seqlens'
assert 'max_seqlen' in result, 'Missing max_seqlen'
assert 'sequence_ids' in result, 'Missing sequence_ids'
assert 'num_sequences' in result, 'Missing num_sequences'

assert result['input_ids'].dtype == torch.long, f'Wrong dtype: {result[\"input_ids\"].dtype}'
assert result['cu_seqlens'].dtype == torch.int32, f'Wrong cu_seqlens dtype: {result[\"cu_seqlens\"].dtype}'
assert len(result['cu_seqlens']) == result['num_sequences'] + 1, 'cu_seqlens length mismatch'

print(f'VarlenCollator test passed: {result[\"num_sequences\"]} sequences packed')
"'''

TASK3_VERIFY = r'''python -c "
from virnucpro.data import SequenceDataset, VarlenCollator
print('Exports work: SequenceDataset and VarlenCollator importable from virnucpro.data')
"'''

# ESM-2's alphabet is ESM-1b's: fair-esm's esm2_t33_650M_UR50D() builds it with
# Alphabet.from_architecture("ESM-1b") (esm/pretrained.py, _load_model_and_alphabet_core_v2),
# so the block tokenises with the very alphabet the download would have given, without the weights.
PLAN_TASK2_LOAD = "_, alphabet = esm.pretrained.esm2_t33_650M_UR50D()"
TASK2_LOAD = 'alphabet = esm.data.Alphabet.from_architecture(\\"ESM-1b\\")'  # inside the block's bash "..."


def _task2_without_download() -> str:
    assert TASK2_VERIFY.count(PLAN_TASK2_LOAD) == 1, "the plan's Task 2 block no longer loads the model this way"
    return TASK2_VERIFY.replace(PLAN_TASK2_LOAD, TASK2_LOAD)


def _run_as_the_plan_does(block: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``bash -c block`` with ``python`` on PATH running this interpreter and this tree's ``virnucpro``."""
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["TMPDIR"] = str(tmp_path)  # Task 1 writes its FASTA with tempfile
    return subprocess.run(
        ["bash", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    "block, printed",
    [
        (TASK1_VERIFY, "SequenceDataset basic test passed"),
        (_task2_without_download(), "VarlenCollator test passed: 2 sequences packed"),
        (TASK3_VERIFY, "Exports work: SequenceDataset and VarlenCollator importable from virnucpro.data"),
    ],
    ids=["task1-SequenceDataset", "task2-VarlenCollator", "task3-exports"],
)
def test_plan_verify_block_passes(block, printed, tmp_path):
    result = _run_as_the_plan_does(block, tmp_path)
    assert result.returncode == 0, f"exit code {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.stdout == printed + "\n", f"printed {result.stdout!r}, expected {printed!r}; stderr: {result.stderr}"


# --- must_haves and success_criteria ---------------------------------------------------------

PROJECT = REPO / ".planning" / "PROJECT.md"
DIFFERS = "PROJECT.md"  # a deliberate difference, quoted and explained in PROJECT.md's section on the plan

#: Each line of the plan's must_haves (truths; an artifact's "provides", a key link's "via") and
#: success_criteria, and where it is checked: tests ("path::name", or "::name" in this module),
#: and PROJECT.md where we deliberately differ.
PLAN_LINES: dict[str, list[str]] = {
    # must_haves.truths
    "DataLoader workers parse FASTA files and yield raw sequence strings": [
        "::test_workers_parse_fasta_and_yield_records_with_sequence_strings",
        "tests/data/test_sequence_dataset.py::test_every_record_exactly_once_through_a_dataloader",
        DIFFERS,
    ],
    "Workers have no CUDA access (CUDA_VISIBLE_DEVICES='' validated)": [
        "tests/data/test_sequence_dataset.py::test_workers_see_no_cuda_devices_under_fork",
        "tests/data/test_sequence_dataset.py::test_workers_see_no_cuda_devices_under_spawn",
        "::test_workers_see_no_cuda_device_after_the_parent_used_cuda",
        DIFFERS,
    ],
    "Collator tokenizes sequences in main process only": [DIFFERS],
    "Collator produces packed format with cu_seqlens for FlashAttention varlen": [
        "::test_packed_output_is_the_plans_layout_with_batch_converters_tokens",
        "tests/data/test_collators.py::test_tokens_equal_batch_converter_on_the_proteome",
    ],
    # must_haves.artifacts ("provides") and key_links ("via")
    "CUDA-safe IterableDataset for FASTA streaming": ["::test_plan_artifacts_exist_and_export_their_classes"],
    "Varlen collator for FlashAttention packed format": ["::test_plan_artifacts_exist_and_export_their_classes"],
    "FASTA parsing in worker": ["::test_workers_parse_fasta_and_yield_records_with_sequence_strings", DIFFERS],
    "tokenization in collate_fn": [
        "::test_packed_output_is_the_plans_layout_with_batch_converters_tokens",
        "tests/data/test_collators.py::test_tokens_equal_batch_converter_on_random_sequences",
        "tests/data/test_collators.py::test_pickled_collator_gives_identical_output",
    ],
    # success_criteria
    "SequenceDataset parses FASTA files in CPU workers": [
        "::test_workers_parse_fasta_and_yield_records_with_sequence_strings",
    ],
    "CUDA validation raises RuntimeError if worker has CUDA access": [
        "::test_worker_with_cuda_fails_in_the_plans_words",
        "tests/data/test_sequence_dataset.py::test_worker_that_initialised_cuda_fails_naming_the_worker",
        DIFFERS,
    ],
    "VarlenCollator tokenizes using ESM batch_converter": [
        "::test_packed_output_is_the_plans_layout_with_batch_converters_tokens",
        "::test_plan_verify_block_passes",
        DIFFERS,
    ],
    "Packed output includes input_ids (1D long tensor), cu_seqlens (int32), sequence_ids": [
        "::test_packed_output_is_the_plans_layout_with_batch_converters_tokens",
        "::test_plan_verify_block_passes",
    ],
    "Both classes importable from virnucpro.data": ["::test_plan_verify_block_passes"],
}


def write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{name} protein\n{seq[:40]}\n{seq[40:]}\n" for name, seq in records))
    return path


@pytest.fixture
def two_files(tmp_path) -> list[Path]:
    """Two upper-case FASTA files without stops (so the raw sequences are the model's input), 7 + 4 records."""
    first = [(f"a{i}", "MKTAYIAKQRQISFVKSHFSRQ"[: 5 + 2 * i] * (i + 1)) for i in range(7)]
    second = [(f"b{i}", "VLSPADKTNVKAAWGKVGAHAGEYGAEALERMF"[i:] * 3) for i in range(4)]
    return [write_fasta(tmp_path / "first.faa", first), write_fasta(tmp_path / "second.faa", second)]


def seqio_records(paths: list[Path]) -> list[tuple[str, str, str]]:
    """(id, sequence, file) per record, as the plan reads them: ``Bio.SeqIO.parse(path, 'fasta')``."""
    return [(rec.id, str(rec.seq), str(path)) for path in paths for rec in SeqIO.parse(path, "fasta")]


def worker_loader(files: list[Path], collate, num_workers: int, **kwargs) -> DataLoader:
    """One record at a time from ``num_workers`` workers, each passed through ``collate`` there."""
    dataset = SequenceDataset(files, report=False)
    return DataLoader(
        dataset, batch_size=None, collate_fn=collate, num_workers=num_workers, timeout=WORKER_TIMEOUT_S, **kwargs
    )


def test_workers_parse_fasta_and_yield_records_with_sequence_strings(two_files):
    seen = list(worker_loader(two_files, probe, 2))
    assert [(s["id"], s["sequence"], s["file"]) for s in seen] == seqio_records(two_files)
    assert all(type(s["sequence"]) is str for s in seen)
    workers = {s["pid"] for s in seen}
    assert len(workers) == 2 and os.getpid() not in workers, f"records came from processes {workers}"
    assert {s["cuda_visible_devices"] for s in seen} == {""}, "workers must be CPU-only"


@pytest.mark.gpu
@requires_cuda
def test_workers_see_no_cuda_device_after_the_parent_used_cuda(two_files):
    torch.zeros(1, device="cuda")
    # spawn: fresh processes, where CUDA would work if the dataset did not cut it off
    seen = list(worker_loader(two_files, cuda_probe, 2, multiprocessing_context="spawn"))
    assert [s["id"] for s in seen] == [r[0] for r in seqio_records(two_files)]
    assert {(s["cuda_visible_devices"], s["cuda_available"]) for s in seen} == {("", False)}


@pytest.mark.gpu
@requires_cuda
def test_worker_with_cuda_fails_in_the_plans_words(two_files):
    loader = worker_loader(two_files, probe, 1, multiprocessing_context="spawn", worker_init_fn=init_cuda)
    pattern = r"Worker 0: CUDA access detected\. Workers must be CPU-only\.[^\n]*worker_init_fn[^\n]*num_workers=0"
    with pytest.raises(RuntimeError, match=pattern):
        list(loader)


def test_packed_output_is_the_plans_layout_with_batch_converters_tokens(two_files):
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")  # ESM-2's, as in the Task 2 block
    batch_converter = alphabet.get_batch_converter()
    records = list(SequenceDataset(two_files, report=False))
    batch = VarlenCollator(batch_converter, max_tokens=4096)(records)

    reference = seqio_records(two_files)
    _, _, tokens = batch_converter([(name, seq) for name, seq, _ in reference])  # (N, L + 2), padded
    unpadded = [row[: len(seq) + 2] for row, (_, seq, _) in zip(tokens, reference)]
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].dim() == 1
    assert batch["cu_seqlens"].dtype == torch.int32 and batch["cu_seqlens"].dim() == 1
    assert batch["sequence_ids"] == [name for name, _, _ in reference]
    assert batch["num_sequences"] == len(reference) and len(batch["cu_seqlens"]) == len(reference) + 1
    expected = torch.cat(unpadded)
    assert torch.equal(batch["input_ids"], expected), (
        f"{int((batch['input_ids'] != expected).sum())} of {expected.numel()} tokens differ from batch_converter's"
        if batch["input_ids"].shape == expected.shape
        else f"{batch['input_ids'].numel()} tokens, batch_converter gives {expected.numel()}"
    )
    assert batch["cu_seqlens"].tolist() == [0, *torch.tensor([len(t) for t in unpadded]).cumsum(0).tolist()]
    assert batch["max_seqlen"] == max(len(t) for t in unpadded)


@pytest.mark.parametrize(
    "module, name, min_lines",
    [(virnucpro.data.sequence_dataset, "SequenceDataset", 80), (virnucpro.data.collators, "VarlenCollator", 60)],
)
def test_plan_artifacts_exist_and_export_their_classes(module, name, min_lines):
    assert name in module.__all__ and name in virnucpro.data.__all__
    assert getattr(virnucpro.data, name) is getattr(module, name)
    lines = len(Path(module.__file__).read_text().splitlines())
    assert lines >= min_lines, f"{module.__name__}: {lines} lines, the plan asks at least {min_lines}"
    if name == "SequenceDataset":
        assert issubclass(SequenceDataset, IterableDataset)


def _defined_tests(path: Path) -> set[str]:
    return set(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M))


def test_every_plan_line_is_checked_or_a_stated_difference():
    section = PROJECT.read_text().partition("## Where we differ from the user's plan")[2].partition("\n## ")[0]
    assert section, f"{PROJECT} has no section 'Where we differ from the user's plan'"
    missing = []
    for line, checks in PLAN_LINES.items():
        if DIFFERS in checks:
            if f'"{line}"' not in " ".join(section.split()):
                missing.append(f"{line!r}: not quoted in PROJECT.md's section")
        for check in (c for c in checks if c != DIFFERS):
            path, _, test = check.partition("::")
            if test not in _defined_tests(REPO / path if path else Path(__file__)):
                missing.append(f"{line!r}: no test {check}")
    assert not missing, "\n".join(missing)
