"""On the GPU, where VirNucPro runs its classifier: our scores against its predict() on the same device."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_cuda

from virnucpro.models.classifier import random_classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
from virnucpro_prediction import MLPClassifier, predict  # noqa: E402

pytestmark = [pytest.mark.gpu, requires_cuda]


def test_scores_on_cuda_are_virnucpros():
    """VirNucPro's module and ours, same weights, same 256-row batches on cuda: the same bits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = random_classifier(3328, 512, seed=5)
    reference = MLPClassifier(3328, 512, 2)
    reference.load_state_dict(ours.state_dict())
    device = torch.device("cuda")
    ours, reference = ours.to(device), reference.to(device)
    features = torch.randn(1000, 3328, generator=torch.Generator().manual_seed(0)) * 1.5 + 0.3
    batches = [features[start : start + 256] for start in range(0, 1000, 256)]
    batches = [(batch, [f"f{i}" for i in range(len(batch))]) for batch in batches]
    _, _, probabilities = predict(reference, batches, device)
    expected = np.stack(probabilities)
    got = np.concatenate([ours.scores(batch.to(device)).cpu().numpy() for batch, _ in batches])
    difference = np.abs(got.astype(np.float64) - expected)
    assert np.array_equal(got, expected), f"max diff {difference.max():.3g}, mean {difference.mean():.3g}"
    cpu = np.concatenate([ours.cpu().scores(batch).numpy() for batch, _ in batches])
    print(f"\nclassifier scores, cuda vs cpu: max |diff| {np.abs(cpu - got).max():.3g}")
