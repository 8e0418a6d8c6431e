"""``virnucpro predict`` against VirNucPro's own prediction flow, and against ``embed --dna`` with ESM-2 alone.

One call on one GPU (H100/H200), the same random weights at VirNucPro's real sizes for every system
(ESM-2 3B saved in fp16 as fair-esm's files are, DNABERT-S's shape, a 3328 -> 512 -> 2 classifier
saved as VirNucPro's train.py saves it: ``tests/tasks/predict/predict_models.real_models``), on the
bundled contigs and made-up coding DNA (``coding_dna``: one stop-free frame per 500-bp chunk):

* ``virnucpro-predict``: ``virnucpro predict`` as a whole process (``python -m virnucpro``), start-up
  included: frames / wall seconds. A first, untimed run warms the page cache and Triton's cache.
  ``loop_frames_per_s`` is the rate of its batch loop alone (the summary line's seconds).
* ``virnucpro-embed-dna``: ``virnucpro embed --dna`` with ESM-2 3B alone on the same input, a
  whole process too: ``predict`` adds DNABERT-S and the classifier (goal: predict >= 0.9 of it).
* ``virnucpro-flow``: VirNucPro's ``make_predictdata`` with its own functions
  (``tests/reference/virnucpro_flow.py``), fp32, timed on the first ``--virnucpro-frames`` frames
  of the input (>= 500) because it runs DNABERT-S one sequence at a time; its models are handed
  to it already on the GPU, so its model loading is NOT in its time (ours is in ours).
  Goal: predict >= 15 times its frames/s.
* one million 500-bp chunks: GPU seconds at the loop's rate, for the frames per chunk of the
  bundled contigs and for one frame per chunk (coding-dense DNA).

    python benchmarks/predict_speed.py                       # GPU: benchmarks/results/predict_speed.{json,md}
    python benchmarks/predict_speed.py --device cpu --smoke  # tiny models, ~100 frames: checks the script runs
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import _paths  # noqa: F401  (tests/ on sys.path)
import torch
from timing import wall_seconds

sys.path.append(str(_paths.TESTS / "tasks" / "predict"))
sys.path.append(str(_paths.TESTS / "reference"))
from predict_models import FAST, coding_dna, make_models, real_models, write_fasta  # noqa: E402
from virnucpro_flow import run_virnucpro  # noqa: E402

from virnucpro.data.dna import Translator, chunk_bounds, read_dna  # noqa: E402
from virnucpro.data.fasta import FastaRecord, read_fasta  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
GOALS = {"speedup_vs_virnucpro": 15.0, "predict_vs_embed_dna": 0.9}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true", help="tiny models and input, to check the script (CPU)")
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--coding-chunks", type=int, default=10_000, help="made-up coding chunks added to the contigs")
    p.add_argument("--virnucpro-frames", type=int, default=600, help="frames VirNucPro's flow is timed on (>= 500)")
    p.add_argument("--work", type=Path, help="keep models and inputs here (default: a temporary folder)")
    p.add_argument("--out", type=Path, help="results JSON (default results/predict_speed[_smoke].json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.coding_chunks, args.virnucpro_frames = 80, 40
    args.out = args.out or RESULTS / ("predict_speed_smoke.json" if args.smoke else "predict_speed.json")
    return args


def build(args: argparse.Namespace, work: Path) -> tuple[Any, Path, Path, dict[str, float]]:
    """The models, the whole input, the VirNucPro subset, and the input's frames per chunk."""
    if args.smoke:
        models = make_models(work / "models", args.chunk_size, esm_shape=(36, 32, 4), dnabert_shape=FAST["dnabert"])
    else:
        models = real_models(work / "models", args.chunk_size, device=args.device)
    contigs = [(r.id, r.sequence) for path in sorted(EXAMPLES.glob("*.fna.gz")) for r in read_fasta(path)]
    records = contigs + coding_dna(args.coding_chunks, args.chunk_size, seed=1)
    fasta = write_fasta(work / "input.fasta", records)
    subset, frames, translate = [], 0, Translator(args.chunk_size)
    for record_id, sequence in records[len(contigs) :]:  # coding DNA, as most of the timed input
        subset.append((record_id, sequence))
        frames += sum(1 for _ in translate(FastaRecord("subset", len(subset), record_id, sequence), len(subset)))
        if frames >= args.virnucpro_frames:
            break
    per_chunk = {
        "bundled_contigs": _frames_per_chunk(contigs, args.chunk_size, work),
        "coding_dense": 1.0,
    }
    return models, fasta, write_fasta(work / "subset.fasta", subset), per_chunk


def _frames_per_chunk(records: list[tuple[str, str]], chunk_size: int, work: Path) -> float:
    chunks = sum(len(chunk_bounds(len(sequence), chunk_size)) for _, sequence in records)
    frames = sum(1 for _ in read_dna(write_fasta(work / "contigs.fasta", records), chunk_size))
    return frames / chunks


def run_process(args: list[str]) -> tuple[str, float]:
    """``python -m virnucpro ARGS`` and its wall seconds; its summary line."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "virnucpro", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"virnucpro {args[0]} failed: {result.stderr[-3000:]}")
    return result.stdout.strip(), seconds


def ours(args: argparse.Namespace, models: Any, fasta: Path, work: Path) -> list[dict[str, Any]]:
    """``predict`` and ``embed --dna`` as whole processes, each after an untimed warm-up run."""
    common = ["--device", args.device, "--no-progress", "--overwrite"]
    predict = ["predict", str(fasta), *models.args(), "--chunk-size", str(args.chunk_size), *common]
    embed = [
        "embed",
        str(fasta),
        "--dna",
        "--chunk-size",
        str(args.chunk_size),
        "--model",
        str(models.esm_file),
        *common,
    ]
    rows = []
    for name, command, output in (
        ("virnucpro-predict", predict, ["-o", str(work / "predicted")]),
        ("virnucpro-embed-dna", embed, ["-o", str(work / "embedded.h5")]),
    ):
        run_process(command + output)  # warm-up: page cache, Triton's cache
        line, seconds = run_process(command + output)
        frames, loop_s = _frames_and_loop_seconds(line)
        rows.append(
            {"system": name, "frames": frames, "wall_s": seconds, "frames_per_s": frames / seconds,
             "loop_s": loop_s, "loop_frames_per_s": frames / loop_s if loop_s else None, "summary": line}
        )  # fmt: skip
        print(f"{name}: {frames:,} frames in {seconds:.1f} s = {frames / seconds:,.1f} frames/s", flush=True)
    return rows


def _frames_and_loop_seconds(line: str) -> tuple[int, float]:
    """(frames, batch-loop seconds) from a summary line (predict counts frames, embed records)."""
    match = re.search(r": ([\d,]+) (?:frames|records)(?:, [\d,]+ tokens)? in ([\d.]+) s", line)
    if match is None:
        raise RuntimeError(f"no count in the summary line {line!r}")
    return int(match[1].replace(",", "")), float(match[2])


def virnucpro(args: argparse.Namespace, models: Any, subset: Path, work: Path) -> dict[str, Any]:
    """VirNucPro's own flow on the subset, its models already on the device."""
    flow_dir = Path(tempfile.mkdtemp(dir=work, prefix="virnucpro_flow"))
    frames = sum(1 for _ in read_dna(subset, args.chunk_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, seconds = wall_seconds(
            lambda: run_virnucpro(
                subset, args.chunk_size, models.classifier, flow_dir, **models.flow(), device=args.device
            ),
            args.device,
        )
    print(f"virnucpro-flow: {frames:,} frames in {seconds:.1f} s = {frames / seconds:,.2f} frames/s", flush=True)
    return {"system": "virnucpro-flow", "frames": frames, "wall_s": seconds, "frames_per_s": frames / seconds,
            "note": "timed on a subset; its models were loaded before the clock started"}  # fmt: skip


def summarise(rows: list[dict[str, Any]], per_chunk: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    by = {row["system"]: row for row in rows}
    predict = by["virnucpro-predict"]
    figures = {
        "speedup_vs_virnucpro": predict["frames_per_s"] / by["virnucpro-flow"]["frames_per_s"],
        "predict_vs_embed_dna": predict["frames_per_s"] / by["virnucpro-embed-dna"]["frames_per_s"],
    }
    million = {
        f"gpu_s_per_million_{args.chunk_size}bp_chunks_{name}": 1e6 * ratio / predict["loop_frames_per_s"]
        for name, ratio in per_chunk.items()
    }
    device = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "cpu"
    return {
        "device": device,
        "smoke": args.smoke,
        "chunk_size": args.chunk_size,
        "frames_per_chunk": per_chunk,
        "rows": rows,
        **figures,
        "goals": GOALS,
        **million,
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# virnucpro predict speed ({doc['device']}{', SMOKE: tiny models, meaningless' if doc['smoke'] else ''})",
        "",
        "| system | frames | wall s | frames/s | batch-loop frames/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in doc["rows"]:
        loop = row.get("loop_frames_per_s")
        lines.append(
            f"| {row['system']} | {row['frames']:,} | {row['wall_s']:.1f} | {row['frames_per_s']:,.2f} | "
            f"{'' if loop is None else f'{loop:,.1f}'} |"
        )
    lines += [
        "",
        f"- predict / VirNucPro's flow: **{doc['speedup_vs_virnucpro']:.1f}x** (goal >= {GOALS['speedup_vs_virnucpro']:g}x; "
        "VirNucPro timed on a subset, its model loading not counted; ours whole process, start-up included)",
        f"- predict / embed --dna (ESM-2 alone): **{doc['predict_vs_embed_dna']:.2f}** "
        f"(goal >= {GOALS['predict_vs_embed_dna']:g}; both whole processes)",
    ]
    for key, value in doc.items():
        if key.startswith("gpu_s_per_million"):
            lines.append(f"- {key.replace('_', ' ')}: {value:,.0f} s ({value / 3600:.2f} h)")
    lines.append(f"- frames per chunk: {json.dumps(doc['frames_per_chunk'])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        models, fasta, subset, per_chunk = build(args, work)
        rows = ours(args, models, fasta, work)
        rows.append(virnucpro(args, models, subset, work))
    doc = summarise(rows, per_chunk, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
