"""fair-esm's answer for proteins embedded as overlapping windows, written apart from virnucpro.

The window rule of the issue (starts 0, S, 2S, ... while start + W < L, then L - W), each
window run on its own through fair-esm's padded forward (``padded_forward``), every
residue's rows averaged over the windows that cover it; ``mean`` is the mean of those,
``bos`` the mean of the windows' BOS rows, ``per-token`` the merged rows.
"""

from __future__ import annotations

import numpy as np
import torch
from esm_reference import padded_forward

W = 30  # max_length
LAYERS = [0, 2, 3]
# Short and long proteins mixed: W + 1, 2W - 1, 2W, 5W + 7 and 200 (over a 100-token budget alone) are windowed.
LENGTHS = [12, W, W + 1, 5, 2 * W - 1, 1, 2 * W, W - 1, 5 * W + 7, 17, 200, 3, W + 1]
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def reference_starts(length: int, width: int, stride: int) -> list[int]:
    """The issue's rule, written out: 0, S, 2S, ... while start + W < L, then L - W."""
    starts, start = [], 0
    while start + width < length:
        starts.append(start)
        start += stride
    return [*starts, length - width]


def reference(model, converter, sequences: list[str], stride: int) -> list[dict[str, np.ndarray]]:
    """Per protein, {pooling: fair-esm's rows}: (layers, E) pooled, (L, layers, E) per-token."""
    pieces = [
        [(0, s)] if len(s) <= W else [(a, s[a : a + W]) for a in reference_starts(len(s), W, stride)] for s in sequences
    ]
    flat = [window for windows in pieces for _, window in windows]
    rows = padded_forward(model, converter, flat, LAYERS)  # {layer: [(tokens, E)] per window}
    out, k = [], 0
    for sequence, windows in zip(sequences, pieces):
        per_layer = [[rows[layer][k + j].double() for j in range(len(windows))] for layer in LAYERS]
        k += len(windows)
        merged, bos = [], []
        for window_rows in per_layer:
            total = torch.zeros(len(sequence), window_rows[0].shape[1], dtype=torch.float64)
            count = torch.zeros(len(sequence), 1, dtype=torch.float64)
            for (start, _), r in zip(windows, window_rows):
                total[start : start + len(r) - 2] += r[1:-1]
                count[start : start + len(r) - 2] += 1
            merged.append(total / count)
            bos.append(torch.stack([r[0] for r in window_rows]).mean(0))
        per_token = torch.stack(merged, dim=1)  # (L, layers, E)
        out.append({"mean": per_token.mean(0).numpy(), "bos": torch.stack(bos).numpy(), "per-token": per_token.numpy()})
    return out
