"""Staged host-to-device copies against torch's own copy, and a PackedESM2 built with them against fair-esm."""

from __future__ import annotations

import mmap

import pytest
import torch
from conftest import requires_cuda, tiny_esm2

from virnucpro.models import ForwardOptions, PackedESM2
from virnucpro.models.common.upload import staged_uploads, upload_into

pytestmark = [pytest.mark.gpu, requires_cuda]

# Source dtype, target dtype: as stored (fp16) to the compute dtype, unchanged, and to float32 (FP8 weights).
CONVERSIONS = [(torch.float16, torch.bfloat16), (torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32)]


@pytest.mark.parametrize(("source_dtype", "target_dtype"), CONVERSIONS)
@pytest.mark.parametrize("rows", [1, 1023, 4096])  # one chunk, a partial last chunk, many full chunks
def test_staged_copy_equals_torchs_copy(source_dtype, target_dtype, rows):
    torch.manual_seed(rows)
    sources = [torch.randn(rows, 1280).to(source_dtype) for _ in range(3)]  # several tensors reuse the buffers
    want = [s.to("cuda").to(target_dtype) for s in sources]
    # 256 KiB chunks: a 4096 x 1280 fp16 tensor (10 MiB) goes in 40 chunks, alternating buffers
    with staged_uploads("cuda", chunk_bytes=256 << 10):
        got = [torch.empty(s.shape, dtype=target_dtype, device="cuda") for s in sources]
        for dst, src in zip(got, sources):
            upload_into(dst, src)
            src.fill_(float("nan"))  # the host copy may change once the call returns
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_staged_copy_from_a_memory_mapped_file(tmp_path):
    """The case it is for: a tensor mapped from a file (torch.load(mmap=True)), not read in first."""
    torch.manual_seed(0)
    tensor = torch.randn(3000, 640).half()
    path = tmp_path / "t.bin"
    path.write_bytes(tensor.numpy().tobytes())
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        source = torch.frombuffer(mapped, dtype=torch.float16).view(3000, 640)
        with staged_uploads("cuda", chunk_bytes=1 << 20):
            out = torch.empty(source.shape, dtype=torch.bfloat16, device="cuda")
            upload_into(out, source)
        del source
    assert torch.equal(out, tensor.to("cuda").to(torch.bfloat16))


def test_outside_the_block_and_for_small_tensors_it_is_a_plain_copy():
    small, large = torch.randn(7, 3), torch.randn(1024, 1024)
    out_small, out_large = torch.empty(7, 3, device="cuda"), torch.empty(1024, 1024, device="cuda")
    upload_into(out_large, large)  # no staged_uploads open
    with staged_uploads("cuda"):
        upload_into(out_small, small)
    assert torch.equal(out_small.cpu(), small) and torch.equal(out_large.cpu(), large)


def test_a_model_copied_from_the_host_equals_one_copied_on_the_device():
    """PackedESM2 stages a host model's weights (fc1 here is 3.3 MB): its forward must be bitwise the
    forward of a copy made from the same model already on the GPU, which copies device to device.
    (FP8 folds its LayerNorms in float32 where the weights are, so only the native path is bitwise.)"""
    host = tiny_esm2(num_layers=2, embed_dim=640, attention_heads=10).half()  # fp16, as checkpoints store it
    options = ForwardOptions()
    staged = PackedESM2(host, dtype=torch.bfloat16, device="cuda", options=options)
    direct = PackedESM2(host.to("cuda"), dtype=torch.bfloat16, device="cuda", options=options)
    lengths = torch.tensor([5, 300, 17, 64], dtype=torch.int32)
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0)).cuda()
    input_ids = torch.randint(4, 24, (int(lengths.sum()),), device="cuda")
    layers = range(3)
    got = staged(input_ids, cu_seqlens, int(lengths.max()), repr_layers=layers)["representations"]
    want = direct(input_ids, cu_seqlens, int(lengths.max()), repr_layers=layers)["representations"]
    for layer in layers:
        assert torch.equal(got[layer], want[layer]), layer
