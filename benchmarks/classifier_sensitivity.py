"""How far the predict GPU test's classifier moves its scores for a feature error of a given size (CPU).

``tests/tasks/predict/test_predict_gpu.py`` asks that bf16 predictions agree with VirNucPro's fp32
flow on 99.9 % of frames, every disagreement a near tie (|score2 - score1| < 0.01), with random
weights at the real shapes: ESM-2 3B, DNABERT-S, and a 3328 -> 512 -> 2 classifier trained 20 steps
as VirNucPro's train.py trains (``make_virnucpro_classifier.py``). On an H100 it measured 99.775 %,
mean |score difference| 0.0215 (``results/device_2026-12-07.md``). Is that what bf16's feature error
gives through that classifier, or more?

It was more, and this found why: the test's DNABERT-S then had N(0, 0.1) random weights, and at the
real shape that model is chaotic. Its own code in bf16 kept a cosine of 0.077 to its fp32 output, ours
0.079; on these 24 frames our bf16 DNABERT-S features alone moved score2 by 0.0237 on average, the
H100's figure. The test now builds DNABERT-S at a trained model's spread, 0.02
(``predict_models.real_dnabert``), where its own bf16 keeps 0.9997.

This computes the real features in fp32 (fair-esm's 3B forward, mean over residues; DNABERT-S's own
code, mean over every token) of the first frames of a bundled contig, then adds to each side a
random error of a given 1 - cosine (the sizes bf16 gives, ``results/device_2026-12-07.md``:
DNABERT-S mean 7.8e-5, ESM-2 mean 4.5e-5), and reports the mean |score2 shift|, the share of labels
that flip and the flips' reference margins, beside the classifier's logit gaps. A random direction
is not bf16's rounding pattern: this gives the size of the effect, not a prediction of the test.
With ``--bf16`` it also computes the same frames through our packed models in bf16 on the CPU (torch
kernels, not the GPU's Triton ones; the same bf16 weights and activations) and reports their real
per-side cosines and score shifts.

    python benchmarks/classifier_sensitivity.py [--frames 24] [--draws 64] [--bf16]   # 6-20 min, 18 GB
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import _paths  # noqa: F401  (tests/ on sys.path)
import torch
import torch.nn.functional as F

sys.path.append(str(_paths.TESTS / "tasks" / "predict"))
from dnabert_reference import our_weights  # noqa: E402
from predict_models import MAKER, real_dnabert  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from virnucpro.data.dna import read_dna  # noqa: E402
from virnucpro.models import load_model  # noqa: E402
from virnucpro.models.classifier import load_classifier  # noqa: E402
from virnucpro.models.dnabert import tokenizer as dnabert_tokenizer  # noqa: E402
from virnucpro.models.dnabert.packed import PackedDNABERT  # noqa: E402
from virnucpro.models.esm2.packed import PackedESM2  # noqa: E402

CONTIG = Path(__file__).resolve().parents[1] / "examples" / "data" / "MIIJ01000039.fna.gz"
DNA_WIDTH = 768
ERRORS = (1e-6, 1e-5, 4.5e-5, 7.8e-5, 1e-4, 3e-4)  # 1 - cosine per side


def features(frames: int, bf16: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(frames, 3328) fp32: DNABERT-S's mean over every token, then ESM-2 3B's mean over residues, by the
    reference code in fp32; and with ``bf16`` the same through our packed models in bf16 (else None)."""
    proteins = [p for _, p in zip(range(frames), read_dna(CONTIG, 500))]
    started = time.perf_counter()
    dna = real_dnabert(seed=1).eval()  # as the GPU test builds it
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        path.write_text(dnabert_tokenizer("random:dnabert-s").to_str())
        tokens = PreTrainedTokenizerFast(tokenizer_file=str(path))
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        dna_rows = [dna(tokens(p.nucleotide, return_tensors="pt")["input_ids"])[0][0].mean(0) for p in proteins]
        esm, alphabet = load_model("random:esm2_t36_3B_UR50D", seed=0, device="cpu")
        print(f"models built in {time.perf_counter() - started:.0f} s", flush=True)
        convert = alphabet.get_batch_converter()
        esm_rows = []
        for p in proteins:
            _, _, ids = convert([(p.id, p.sequence)])
            reps = esm(ids, repr_layers=[esm.num_layers])["representations"][esm.num_layers]
            esm_rows.append(reps[0, 1 : len(p.sequence) + 1].mean(0))
        print(f"{len(proteins)} frames' features in {time.perf_counter() - started:.0f} s", flush=True)
        reference = torch.cat([torch.stack(dna_rows), torch.stack(esm_rows)], dim=1).float()
        if not bf16:
            return reference, None
        packed_dna = PackedDNABERT(our_weights(dna), dtype=torch.bfloat16, device="cpu")
        dna_ids = [tokens(p.nucleotide, return_tensors="pt")["input_ids"][0] for p in proteins]
        packed_esm = PackedESM2(esm, dtype=torch.bfloat16, device="cpu")
        esm_ids = [convert([(p.id, p.sequence)])[2][0] for p in proteins]
        ours = torch.cat([_means(packed_dna, dna_ids, 0), _means(packed_esm, esm_ids, 1)], dim=1)
    print(f"bf16 features in {time.perf_counter() - started:.0f} s", flush=True)
    return reference, ours


def _means(model: torch.nn.Module, ids: list[torch.Tensor], trim: int) -> torch.Tensor:
    """Each sequence alone through a packed model's last layer, averaged in float32 over its tokens less
    ``trim`` at each end (DNABERT-S: 0, every token; ESM-2: 1, BOS and EOS out)."""
    rows = []
    for sequence in ids:
        cu_seqlens = torch.tensor([0, len(sequence)], dtype=torch.int32)
        reps = model(sequence, cu_seqlens, len(sequence))["representations"]
        last = reps[max(reps)].float()
        rows.append(last[trim : len(sequence) - trim].mean(0))
    return torch.stack(rows)


def with_error(x: torch.Tensor, error: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` plus a random error orthogonal to each row, sized so that 1 - cosine(x', x) == ``error``."""
    noise = torch.randn(x.shape, generator=generator)
    noise -= (noise * x).sum(1, keepdim=True) / (x * x).sum(1, keepdim=True) * x
    angle = torch.arccos(torch.tensor(1.0 - error, dtype=torch.float64)).float()
    return x + noise / noise.norm(dim=1, keepdim=True) * x.norm(dim=1, keepdim=True) * torch.tan(angle)


def measured(x: torch.Tensor, ours: torch.Tensor, model: torch.nn.Module) -> dict:
    """Per-side cosines of ``ours`` against ``x`` and the score2 shifts they cause, each side alone and both."""
    dna, esm = slice(0, DNA_WIDTH), slice(DNA_WIDTH, None)
    base = model.scores(x)

    def shift(y: torch.Tensor) -> float:
        return float((model.scores(y)[:, 1] - base[:, 1]).abs().mean())

    flipped = (model.scores(ours)[:, 1] > model.scores(ours)[:, 0]) != (base[:, 1] > base[:, 0])
    return {
        "dnabert_one_minus_cosine_mean": float(1 - F.cosine_similarity(ours[:, dna], x[:, dna], dim=1).mean()),
        "esm2_one_minus_cosine_mean": float(1 - F.cosine_similarity(ours[:, esm], x[:, esm], dim=1).mean()),
        "score2_shift_mean_dnabert_only": shift(torch.cat([ours[:, dna], x[:, esm]], dim=1)),
        "score2_shift_mean_esm2_only": shift(torch.cat([x[:, dna], ours[:, esm]], dim=1)),
        "score2_shift_mean_both": shift(ours),
        "labels_flipped": int(flipped.sum()),
    }


def sensitivity(x: torch.Tensor, classifier: Path, draws: int, ours: torch.Tensor | None) -> dict:
    model = load_classifier(classifier).float().eval()
    generator = torch.Generator().manual_seed(0)
    dna, esm = slice(0, DNA_WIDTH), slice(DNA_WIDTH, None)
    with torch.inference_mode():
        logits, base = model(x), model.scores(x)
        gap = (logits[:, 1] - logits[:, 0]).abs()
        margin = (base[:, 1] - base[:, 0]).abs()
        rows = []
        for error in ERRORS:
            shifts, flips, flip_margins = [], 0, []
            for _ in range(draws):
                y = torch.cat([with_error(x[:, dna], error, generator), with_error(x[:, esm], error, generator)], 1)
                assert abs(1 - F.cosine_similarity(y[:, esm], x[:, esm], dim=1).mean() - error) < 0.05 * error + 1e-7
                scores = model.scores(y)
                shifts.append((scores[:, 1] - base[:, 1]).abs().mean())
                flipped = (scores[:, 1] > scores[:, 0]) != (base[:, 1] > base[:, 0])
                flips += int(flipped.sum())
                flip_margins += margin[flipped].tolist()
            rows.append(
                {
                    "one_minus_cosine_per_side": error,
                    "score2_shift_mean": float(torch.stack(shifts).mean()),
                    "label_flip_share": flips / (draws * len(x)),
                    "flip_margin_max": max(flip_margins, default=0.0),
                }
            )
    return {
        "bf16_cpu": None if ours is None else measured(x, ours, model),
        "frames": len(x),
        "draws": draws,
        "logit_gap_median": float(gap.median()),
        "margin_median": float(margin.median()),
        "feature_norm_dnabert_median": float(x[:, dna].norm(dim=1).median()),
        "feature_norm_esm2_median": float(x[:, esm].norm(dim=1).median()),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--bf16", action="store_true", help="also our packed models in bf16 on the CPU")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "classifier_sensitivity.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x, ours = features(args.frames, args.bf16)
    with tempfile.TemporaryDirectory() as folder:
        classifier = Path(folder) / "500_model.pth"
        maker = [sys.executable, str(MAKER), str(classifier), "--input", "3328", "--hidden", "512", "--seed", "0"]
        subprocess.run(maker, check=True, capture_output=True)
        result = sensitivity(x, classifier, args.draws, ours)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# The predict GPU test's classifier against a feature error of a given size (CPU, fp32)",
        "",
        f"{result['frames']} frames of the bundled contig MIIJ01000039 (500-bp chunks), real-shape random models as the "
        f"GPU test builds them; {result['draws']} random error draws per size. Classifier logit gap |l2 - l1|: median "
        f"{result['logit_gap_median']:.3g}; reference |score2 - score1| median {result['margin_median']:.3g}. "
        "Generated by `benchmarks/classifier_sensitivity.py`.",
        "",
        "| 1 - cosine, each side | mean abs score2 shift | labels flipped | largest margin flipped |",
        "|---:|---:|---:|---:|",
        *(
            f"| {r['one_minus_cosine_per_side']:.1e} | {r['score2_shift_mean']:.3g} | "
            f"{100 * r['label_flip_share']:.2f} % | {r['flip_margin_max']:.3g} |"
            for r in result["rows"]
        ),
    ]
    if result["bf16_cpu"]:
        lines += [
            "",
            "Our packed models in bf16 on the CPU, the same frames: "
            + ", ".join(f"{k} {v:.3g}" for k, v in result["bf16_cpu"].items())
            + ".",
        ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
