"""The DNABERT token budget: what the data layer may pack per batch."""

from __future__ import annotations

import pytest
import torch
from conftest import requires_cuda
from dnabert_reference import REAL, our_weights, reference_model

from virnucpro.models.dnabert import MAX_LENGTH, PackedDNABERT, auto_max_tokens, load
from virnucpro.models.dnabert.memory import CPU_MAX_TOKENS, MAX_AUTO_TOKENS, MIN_TOKENS


def test_every_budget_holds_the_longest_default_sequence_at_one_token_per_base(recwarn):
    model, tokens = load("random:dnabert-s")
    assert MIN_TOKENS >= MAX_LENGTH + tokens.special_tokens_per_sequence
    assert auto_max_tokens(model, torch.bfloat16, torch.device("cpu"), 1) == CPU_MAX_TOKENS >= MIN_TOKENS
    worst = tokens.count(["RYKM" * (MAX_LENGTH // 4)])  # no merges: one [UNK] per base
    assert worst[0] == MAX_LENGTH + 2 <= MIN_TOKENS


@pytest.mark.gpu
@requires_cuda
def test_a_batch_of_the_auto_budget_fits_in_the_memory_it_planned_for():
    reference = reference_model(*REAL, noise=0.0, device="cuda")
    weights = our_weights(reference)
    free_before = torch.cuda.mem_get_info()[0]
    budget = auto_max_tokens(weights, torch.bfloat16, torch.device("cuda"), 1)
    assert MIN_TOKENS <= budget <= MAX_AUTO_TOKENS and budget % 1024 == 0
    packed = PackedDNABERT(weights, dtype=torch.bfloat16, device="cuda")
    lengths = torch.full((budget // 512,), 512)  # VirNucPro-like sequences filling the budget
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(device="cuda", dtype=torch.int32)
    input_ids = torch.randint(5, 4096, (int(lengths.sum()),), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    resident = torch.cuda.memory_allocated()
    packed(input_ids, cu_seqlens, 512)
    used = torch.cuda.max_memory_allocated() - resident
    print(f"\nDNABERT-S bf16 auto budget {budget} tokens: peak {used / 2**30:.2f} GiB above the resident weights")
    assert used <= 0.5 * free_before, f"{used} bytes for {budget} tokens; half the free memory is {0.5 * free_before}"
