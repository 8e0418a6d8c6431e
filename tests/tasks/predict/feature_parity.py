"""Our saved features beside VirNucPro's merged ones, side by side: DNABERT-S's columns, ESM-2's, and
what each side's difference alone does to the classifier's scores.

When predict's scores differ from VirNucPro's, this says which model's features moved them, and how
hard the classifier amplifies a feature difference (its logit gap on the reference features).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from virnucpro import read_embeddings
from virnucpro.models.classifier import load_classifier


def reference_features(folder: Path) -> dict[str, torch.Tensor]:
    """VirNucPro's merged features by frame id, from every ``*_merged.pt`` of its output folder."""
    merged = [torch.load(path) for path in sorted(folder.glob("*_merged.pt"))]
    ids = [frame for part in merged for frame in part["ids"]]
    data = torch.cat([part["data"] for part in merged]).float()
    assert len(set(ids)) == len(ids) == len(data), "the comparison needs unique frame ids"
    return dict(zip(ids, data))


def feature_figures(features: Path, reference: Path, classifier: Path, dna_width: int) -> dict[str, float]:
    """Per-side cosines (per frame; min and mean) and mean |score2 shift| against the reference's scores
    with our DNABERT-S columns alone, our ESM-2 columns alone, and both; the reference's median
    |logit gap| and |score2 - score1|. Everything in float32 on the CPU.

    Args:
        features: our ``--save-features`` file (DNABERT-S's ``dna_width`` columns, then ESM-2's).
        reference: VirNucPro's output folder, holding its ``*_merged.pt``.
        classifier: the classifier file both runs used.
    """
    ours = read_embeddings(features, in_memory=True)
    theirs = reference_features(reference)
    ref = torch.stack([theirs[frame] for frame in ours.ids])
    mine = torch.from_numpy(ours.embeddings).float()
    dna, esm = slice(0, dna_width), slice(dna_width, None)
    model = load_classifier(classifier).float().eval()
    with torch.inference_mode():
        logits = model(ref)
        base = model.scores(ref)[:, 1]

        def shift(x: torch.Tensor) -> float:
            return float((model.scores(x)[:, 1] - base).abs().mean())

        figures = {
            "frames": float(len(ours.ids)),
            "dnabert_cosine_min": float(F.cosine_similarity(mine[:, dna], ref[:, dna], dim=1).min()),
            "dnabert_cosine_mean": float(F.cosine_similarity(mine[:, dna], ref[:, dna], dim=1).mean()),
            "esm2_cosine_min": float(F.cosine_similarity(mine[:, esm], ref[:, esm], dim=1).min()),
            "esm2_cosine_mean": float(F.cosine_similarity(mine[:, esm], ref[:, esm], dim=1).mean()),
            "score2_shift_mean_dnabert_only": shift(torch.cat([mine[:, dna], ref[:, esm]], dim=1)),
            "score2_shift_mean_esm2_only": shift(torch.cat([ref[:, dna], mine[:, esm]], dim=1)),
            "score2_shift_mean_both": shift(mine),
            "reference_logit_gap_median": float((logits[:, 1] - logits[:, 0]).abs().median()),
            "reference_margin_median": float((model.scores(ref)[:, 1] - model.scores(ref)[:, 0]).abs().median()),
        }
    return figures
