"""What a user's per-sample process costs, start-up included: ``virnucpro embed`` beside fair-esm's process.

Each system runs as a fresh process on one proteome, and the parent times the whole process
(``perf_counter`` around ``subprocess.run``): interpreter start, imports, model load, the
batches, the output and the exit. In a temporary folder (``--workdir``, default the system's),
on one run:

1. A random ESM-2 of ``--model``'s size (seeded, built on the device in a spawned process, so
   that this one never holds the GPU) is converted to fp16, as fair-esm publishes its weights,
   and written with ``virnucpro.models.save_checkpoint`` as ``<model>.pt``, with the
   ``<model>-contact-regression.pt`` that fair-esm's local loader requires beside it. The same
   weights, in float32 as the Hugging Face Hub publishes ESM-2, are written in transformers'
   layout (``save_hf_folder``: config.json and model.safetensors, no transformers needed). The
   proteome (``bench_data.proteome()`` repeated up to about 670k tokens, a sequence of n
   residues counting min(n, 1022) + 2) is written as FASTA.
2. ``python -c "import torch"``, the shortest of three: the floor no process using torch can beat.
3. ``python -m virnucpro embed FASTA -o OUT.h5 --model CKPT --overwrite --no-progress``, twice:
   ``first`` right after the checkpoint was written (Triton's cache may be cold), then
   ``second``. Its summary line gives the batch loop, the first-batch wait, the model set-up
   and the final assembly, each to 0.1 s; its counts and the HDF5 file's are checked.
4. The same command with ``--model`` the transformers-layout folder, twice: the ``virnucpro-hf``
   rows (a Hub id resolves to such a folder in the Hugging Face cache; the process is the same).
5. ``fair_esm_process.py`` (fair-esm's loader, ``.half().cuda().eval()``, esm-extract's padded
   loop, means to the CPU, ``torch.save``) on the same checkpoint, once per ``--toks-per-batch``.

Rows, one per process, the same for both systems:

* ``whole_s``: the process's wall time seen by the parent; ``tokens_per_s`` is tokens / whole_s.
* ``batches_s``: from the first batch in hand to the last result on the host.
* ``after_s``: what follows the loop in the process (virnucpro's final assembly, fair-esm's save).
* ``setup_s``: whole_s - import torch - batches_s - after_s: the imports beyond torch, the model
  load and copy to the device, the wait for the first batch, and the interpreter's exit (which
  no summary line can time, so set-up is an upper bound).

Rows merge into ``--out`` (replacing rows of the same model, system and attempt) after every
process, and a markdown table of all rows, with fair-esm's whole time over ours and the issue's
targets, is written beside it (``.md``) and printed at the end:

    python benchmarks/process_start.py --model esm2_t36_3B_UR50D --out benchmarks/results/process_start.json
    python benchmarks/process_start.py --model esm2_t33_650M_UR50D --out benchmarks/results/process_start.json

CPU smoke test (a 2-layer, 64-wide ESM-2 on a few proteins; its output must stay out of
``benchmarks/results``):

    python benchmarks/process_start.py --device cpu --model tiny --out /tmp/process_start.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_data import proteome, repeat, write_fasta

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FAIR_ESM_SCRIPT = Path(__file__).resolve().parent / "fair_esm_process.py"
TRUNCATION = 1022  # residues per sequence, as esm-extract and virnucpro truncate
TOKENS = {"cuda": 670_000, "cpu": 6_000}  # the proteome's size: the issue's, and the smoke test's
#: fair-esm's best toks_per_batch per model on the H200 (benchmarks/results/h200.md).
BEST_TOKS_PER_BATCH = {"esm2_t36_3B_UR50D": "16384", "esm2_t33_650M_UR50D": "4096"}
#: The issue's targets per model: set-up and whole-process seconds at most, fair-esm / ours at least.
TARGETS = {"esm2_t36_3B": (3.0, 14.0, 3.5), "esm2_t33_650M": (3.0, 7.0, 2.4)}
OURS, OURS_HF, ATTEMPTS = "virnucpro", "virnucpro-hf", ("first", "second")
# virnucpro's summary line (virnucpro.tasks.embed.EmbedSummary.line).
# virnucpro's DEBUG lines (virnucpro.cli._configure_logging): the wall clock to the millisecond.
STAMPED = re.compile(r"^virnucpro: (?P<clock>\d\d:\d\d:\d\d)\.(?P<ms>\d{3}) (?P<message>.*)$", re.MULTILINE)
SUMMARY = re.compile(
    r"virnucpro embed: (?P<records>[\d,]+) records, (?P<tokens>[\d,]+) tokens in (?P<loop_s>[\d.]+) s .*"
    r"\(first batch after (?P<first_batch_s>[\d.]+) s; model set-up (?P<model_setup_s>[\d.]+) s, "
    r"final assembly (?P<finish_s>[\d.]+) s\)"
)

Row = dict[str, Any]


@dataclass(frozen=True)
class Run:
    """What every process of one run shares."""

    name: str  # row key, e.g. "esm2_t36_3B"
    device: str  # "cuda" or "cpu"
    work: Path  # the temporary folder
    fasta: Path
    checkpoint: Path  # fp16, fair-esm's format
    hf_folder: Path  # the same weights in float32, transformers' layout
    records: int
    tokens: int  # sum of min(n, 1022) + 2 over the records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        required=True,
        help="an ESM-2 name of virnucpro.models.ARCHITECTURES (e.g. esm2_t36_3B_UR50D), or tiny",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON to merge rows into; the .md goes beside it")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: smoke test, --model tiny")
    parser.add_argument("--repeat", type=int, help="whole copies of the proteome (default: up to ~670k tokens)")
    parser.add_argument(
        "--toks-per-batch", help="fair-esm toks_per_batch, comma-separated, one process each "
        "(default: 16384 for 3B, 4096 otherwise: the best on the H200; none: no fair-esm process)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="where the temporary folder goes (local disk; default: TMPDIR)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cpu" and args.model != "tiny":
        parser.error("--device cpu is a smoke test and runs only --model tiny; real sizes are built on the GPU")
    if args.device == "cpu" and args.out.resolve().is_relative_to(RESULTS):
        parser.error(f"--device cpu is a smoke test; write it outside {RESULTS}, e.g. --out /tmp/process_start.json")
    budgets = args.toks_per_batch or BEST_TOKS_PER_BATCH.get(args.model, "4096")
    args.toks_per_batch = [] if budgets == "none" else [int(b) for b in budgets.split(",")]
    args.name = args.model.removesuffix("_UR50D")
    return args


def token_count(records: list[tuple[str, str]]) -> int:
    return sum(min(len(seq), TRUNCATION) + 2 for _, seq in records)


def proteome_records(tokens: int, copies: int | None) -> list[tuple[str, str]]:
    """``copies`` whole copies of the proteome; without, copies cut after the first record reaching ``tokens``."""
    base = proteome()
    if copies:
        return repeat(base, copies)
    records, total = [], 0
    for record in repeat(base, math.ceil(tokens / token_count(base))):
        if total >= tokens:
            break
        records.append(record)
        total += token_count([record])
    return records


def regression_path(checkpoint: Path) -> Path:
    """Where fair-esm's ``load_model_and_alphabet_local`` looks for the contact regression of ``checkpoint``."""
    return checkpoint.with_name(checkpoint.stem + "-contact-regression.pt")


def write_checkpoint(model: str, device: str, seed: int, path: Path, hf_folder: Path) -> dict[str, Any]:
    """Build a random ESM-2 on ``device``, write it in fp16 in fair-esm's format and in float32 in
    transformers' layout (``hf_folder``); run in a spawned process.

    Returns the device's name, torch's version and the seconds taken.
    """
    import torch
    from throughput import TINY, build_model

    from virnucpro.models import ARCHITECTURES, save_checkpoint
    from virnucpro.models.esm2 import save_hf_folder

    if model not in (*ARCHITECTURES, "tiny"):
        raise ValueError(f"--model: unknown {model!r}; choose from {', '.join([*ARCHITECTURES, 'tiny'])}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device here; use --device cpu --model tiny for a smoke test")
    start = time.perf_counter()
    esm2 = build_model(TINY if model == "tiny" else ARCHITECTURES[model], torch.device(device), seed)
    save_hf_folder(esm2, hf_folder)
    esm2 = esm2.half()
    save_checkpoint(esm2, path)
    # fair-esm publishes the contact regression in a file of its own, and its local loader requires it.
    regression = {f"contact_head.regression.{k}": v.cpu() for k, v in esm2.contact_head.regression.state_dict().items()}
    torch.save({"model": regression}, regression_path(path))
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"device": name, "torch": torch.__version__, "seconds": time.perf_counter() - start}


def spawned_checkpoint(args: argparse.Namespace, path: Path, hf_folder: Path) -> dict[str, Any]:
    """``write_checkpoint`` in a spawned process: its GPU memory and CUDA context end with it."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(write_checkpoint, args.model, args.device, args.seed, path, hf_folder).result()


def child_env(fair_esm: bool = False) -> dict[str, str]:
    """This environment, with this checkout first on PYTHONPATH (``python -m virnucpro`` must find it)."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *paths])
    if fair_esm:
        # fair-esm's loader calls torch.load without weights_only, and on torch >= 2.6 that refuses its
        # checkpoints' argparse.Namespace cfg. Its users must set this; it is fair-esm's loader all the same.
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    return env


def timed_process(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """The stdout of ``command`` run to completion, and its wall time; raises with its stderr if it fails."""
    done, seconds, _ = _run_timed(command, env)
    return done.stdout, seconds


def _run_timed(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """``command`` run to completion, its wall time and the wall clock when it was started."""
    started_at, start = time.time(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}{done.stdout[-2000:]}")
    return done, seconds, started_at


def timeline(stderr: str, started_at: float) -> list[tuple[float, str]]:
    """(seconds since the process was started, message) of each DEBUG line that virnucpro stamps."""
    day = time.strftime("%Y-%m-%d ", time.localtime(started_at))
    events = []
    for match in STAMPED.finditer(stderr):
        stamp = time.mktime(time.strptime(day + match["clock"], "%Y-%m-%d %H:%M:%S")) + int(match["ms"]) / 1000
        if stamp < started_at - 1:  # the clock passed midnight after the process started
            stamp += 86_400
        events.append((round(stamp - started_at, 3), match["message"]))
    return events


def import_torch_seconds(rounds: int = 3) -> float:
    """The shortest of ``rounds`` fresh ``import torch`` processes: one alone can be slowed by other load, and
    an inflated floor would understate everyone's set-up."""
    return min(timed_process([sys.executable, "-c", "import torch"], child_env())[1] for _ in range(rounds))


def parse_summary(stdout: str) -> dict[str, float]:
    """The figures of virnucpro's summary line in ``stdout``; raises, naming the line, if its format changed."""
    lines = [line for line in stdout.splitlines() if line.startswith("virnucpro embed:")]
    match = SUMMARY.search(lines[-1]) if lines else None
    if match is None:
        found = repr(lines[-1]) if lines else f"no line starting 'virnucpro embed:' in {stdout[-2000:]!r}"
        raise RuntimeError(f"virnucpro's summary line changed format; update SUMMARY in {__file__}: {found}")
    return {k: float(v.replace(",", "")) for k, v in match.groupdict().items()}


def check_count(what: str, got: float, expected: int) -> None:
    if got != expected:
        raise RuntimeError(
            f"{what}: got {got:,.0f}, expected {expected:,}; the systems would not compare the same work"
        )


def row(run: Run, system: str, attempt: str, whole: float, floor: float, batches: float, after: float) -> Row:
    """The fields every row has; ``setup_s`` is what remains of the whole beyond ``import torch``."""
    return {
        "model": run.name,
        "system": system,
        "attempt": attempt,
        "whole_s": whole,
        "import_torch_s": floor,
        "setup_s": whole - floor - batches - after,
        "batches_s": batches,
        "after_s": after,
        "tokens": run.tokens,
        "records": run.records,
        "tokens_per_s": run.tokens / whole,
    }


def our_process(run: Run, attempt: str, floor: float, system: str = OURS) -> Row:
    """``virnucpro embed`` as a user runs it, from the FASTA to a checked HDF5 file; ``system`` OURS_HF
    reads the transformers-layout folder instead of the fair-esm checkpoint."""
    import h5py

    out = run.work / "ours.h5"
    model = run.hf_folder if system == OURS_HF else run.checkpoint
    command = [sys.executable, "-m", "virnucpro", "embed", str(run.fasta), "-o", str(out)]
    command += ["--model", str(model), "--overwrite", "--no-progress", "--log-level", "DEBUG"]
    command += ["--device", "cpu"] if run.device == "cpu" else []  # on the GPU: its default, as users run it
    done, whole, started_at = _run_timed(command, child_env())
    stdout, events = done.stdout, timeline(done.stderr, started_at)
    summary = parse_summary(stdout)
    check_count(f"{system} records", summary["records"], run.records)
    check_count(f"{system} tokens", summary["tokens"], run.tokens)
    with h5py.File(out, "r") as h5:
        check_count(f"{system} HDF5 ids", len(h5["ids"]), run.records)
        check_count(f"{system} HDF5 embeddings", h5["embeddings"].shape[0], run.records)
    batches = summary["loop_s"] - summary["first_batch_s"]
    result = row(run, system, attempt, whole, floor, batches, summary["finish_s"])
    # Before main() and after it returns: the interpreter, the imports and the exit.
    outside = whole - summary["loop_s"] - summary["model_setup_s"] - summary["finish_s"]
    return {
        **result,
        **{k: summary[k] for k in ("loop_s", "first_batch_s", "model_setup_s")},
        "outside_main_s": outside,
        "timeline": [*events, (round(whole, 3), "process ended")],
    }


def fair_esm_process(run: Run, toks_per_batch: int, floor: float) -> Row:
    """``fair_esm_process.py`` at ``toks_per_batch``: fair-esm's per-sample process on the same files."""
    command = [sys.executable, str(FAIR_ESM_SCRIPT), str(run.checkpoint), str(run.fasta)]
    command += ["--toks-per-batch", str(toks_per_batch), "--out", str(run.work / "means.pt"), "--device", run.device]
    stdout, whole = timed_process(command, child_env(fair_esm=True))
    stages = json.loads(stdout.strip().splitlines()[-1])
    system = f"fair-esm-fp16-{toks_per_batch}"
    check_count(f"{system} records", stages["records"], run.records)
    check_count(f"{system} tokens", stages["tokens"], run.tokens)
    batches = stages["loop_s"] - stages["first_batch_s"]
    result = row(run, system, "once", whole, floor, batches, stages["save_s"])
    # The interpreter's start before the script's first line, and its exit.
    return {**result, **stages, "outside_script_s": whole - stages["in_process_s"]}


def merge_rows(path: Path, rows: list[Row], device: str, torch_version: str) -> dict[str, Any]:
    """Write ``rows`` into the JSON at ``path``, replacing rows of the same (model, system, attempt)."""
    doc = json.loads(path.read_text()) if path.exists() else {"device": device, "rows": []}
    if doc["device"] != device:
        raise RuntimeError(f"{path} holds rows from {doc['device']!r}, this is {device!r}; pass another --out")
    by_key = {(r["model"], r["system"], r["attempt"]): r for r in [*doc["rows"], *rows]}
    # Ours first (first, second), then ours from transformers' layout, then fair-esm by toks_per_batch.
    rank = {OURS: 0, OURS_HF: 1}
    order = lambda r: (r["model"], rank.get(r["system"], 2), r.get("toks_per_batch", 0), r["attempt"])  # noqa: E731
    doc.update(torch=torch_version, rows=sorted(by_key.values(), key=order))
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """Per model: every process's whole, set-up and batch seconds, fair-esm's whole over ours, the targets."""
    lines = [
        f"# Per-sample process on {doc['device']} (torch {doc['torch']})",
        "",
        "Each system runs as a fresh process, timed whole by its parent, on one proteome from one fp16 checkpoint "
        "in fair-esm's format (random weights at the real size); virnucpro-hf reads the same weights in float32 "
        "from transformers' layout (config.json, model.safetensors), as the Hugging Face Hub publishes ESM-2. "
        "Set-up is the whole less `import torch` (timed "
        "alone in a fresh process), the batches and what follows them (virnucpro's final assembly, fair-esm's "
        "`torch.save`): the imports beyond torch, the load, the wait for the first batch and the exit. Tokens/s "
        "is of the whole process. Generated by `benchmarks/process_start.py` from the JSON beside this file.",
    ]
    for model in sorted({r["model"] for r in doc["rows"]}):
        rows = [r for r in doc["rows"] if r["model"] == model]
        ours = {r["attempt"]: r for r in rows if r["system"] == OURS}
        lines += ["", f"## {model} ({rows[0]['records']:,} proteins, {rows[0]['tokens']:,} tokens)", ""]
        lines += ["| system | attempt | whole s | import torch s | set-up s | batches s | tokens/s | "
                  + " | ".join(f"fair-esm / ours {a}" for a in ATTEMPTS) + " |"]  # fmt: skip
        lines += ["|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(ATTEMPTS)]
        for r in rows:
            ratios = [ratio(r, ours.get(a)) for a in ATTEMPTS]
            lines.append(
                f"| {r['system']} | {r['attempt']} | {r['whole_s']:.2f} | {r['import_torch_s']:.2f} | "
                f"{r['setup_s']:.2f} | {r['batches_s']:.2f} | {r['tokens_per_s']:,.0f} | " + " | ".join(ratios) + " |"
            )
        lines += [""] + [stages(r) for r in rows]
        lines += targets(model, ours, [r for r in rows if is_fair_esm(r)])
    return "\n".join(lines) + "\n"


def is_fair_esm(r: Row) -> bool:
    return r["system"] not in (OURS, OURS_HF)


def ratio(fair: Row, ours: Row | None) -> str:
    return f"{fair['whole_s'] / ours['whole_s']:.2f}" if ours and is_fair_esm(fair) else "–"


def stages(r: Row) -> str:
    """One line: where a process's whole time went, by the stages its own output reports."""
    if not is_fair_esm(r):
        return (
            f"- {r['system']} {r['attempt']}, {r['whole_s']:.2f} s: outside main (interpreter, imports, exit) "
            f"{r['outside_main_s']:.2f} s, model set-up {r['model_setup_s']:.1f} s, first batch after "
            f"{r['first_batch_s']:.1f} s, batches {r['batches_s']:.1f} s, final assembly {r['after_s']:.1f} s"
            + "".join(f"\n  - {at:.2f} s: {message}" for at, message in r.get("timeline", ()))
        )
    return (
        f"- {r['system']}, {r['whole_s']:.2f} s: interpreter start and exit {r['outside_script_s']:.2f} s, "
        f"import torch + esm {r['import_s']:.2f} s, load {r['load_s']:.2f} s, .half() to the device "
        f"{r['to_device_s']:.2f} s, data set {r['dataset_s']:.2f} s, first batch after {r['first_batch_s']:.2f} s, "
        f"batches {r['batches_s']:.2f} s ({r['batches']:,}), torch.save {r['save_s']:.2f} s"
    )


def targets(model: str, ours: dict[str, Row], fair: list[Row]) -> list[str]:
    """The issue's targets for ``model``, each of our attempts against them, beside the fastest fair-esm process."""
    if model not in TARGETS or not ours:
        return []
    setup, whole, speedup = TARGETS[model]
    best = min(fair, key=lambda r: r["whole_s"]) if fair else None
    lines = ["", f"Targets: set-up <= {setup:g} s, whole <= {whole:g} s, fair-esm / ours >= {speedup:g}"
             + (f" (against {best['system']})" if best else "") + ":", ""]  # fmt: skip
    for attempt, r in ours.items():
        checks = [
            f"set-up {r['setup_s']:.2f} s {verdict(r['setup_s'] <= setup)}",
            f"whole {r['whole_s']:.2f} s {verdict(r['whole_s'] <= whole)}",
        ]
        if best:
            checks.append(f"{ratio(best, r)}x {verdict(best['whole_s'] / r['whole_s'] >= speedup)}")
        lines.append(f"- {attempt}: " + ", ".join(checks))
    return lines


def verdict(met: bool) -> str:
    return "(met)" if met else "(MISSED)"


def checkpoint_name(model: str) -> str:
    """The checkpoint's file name: fair-esm's loader takes ESM-2 only for a name starting "esm2"."""
    return f"{'esm2_tiny' if model == 'tiny' else model}.pt"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    records = proteome_records(TOKENS[args.device], args.repeat)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="process_start-") as tmp:
        work = Path(tmp)
        fasta, checkpoint, hf_folder = work / "proteome.faa", work / checkpoint_name(args.model), work / "hf"
        run = Run(args.name, args.device, work, fasta, checkpoint, hf_folder, len(records), token_count(records))
        write_fasta(records, run.fasta)
        print(f"{run.name}: proteome of {run.records:,} proteins, {run.tokens:,} tokens in {tmp}", flush=True)
        written = spawned_checkpoint(args, run.checkpoint, run.hf_folder)
        size = run.checkpoint.stat().st_size / 2**30
        hf_size = (run.hf_folder / "model.safetensors").stat().st_size / 2**30
        print(
            f"  fp16 checkpoint ({size:.2f} GiB) and float32 transformers-layout folder ({hf_size:.2f} GiB) "
            f"built and written in {written['seconds']:.1f} s",
            flush=True,
        )
        floor = import_torch_seconds()
        print(f"  python -c 'import torch': {floor:.2f} s (best of 3)", flush=True)
        processes = [lambda a=a: our_process(run, a, floor) for a in ATTEMPTS]
        processes += [lambda a=a: our_process(run, a, floor, OURS_HF) for a in ATTEMPTS]
        processes += [lambda t=t: fair_esm_process(run, t, floor) for t in args.toks_per_batch]
        for process in processes:
            r = process()
            doc = merge_rows(args.out, [r], written["device"], written["torch"])
            args.out.with_suffix(".md").write_text(markdown(doc))
            print(
                f"  {r['system']:<20} {r['attempt']:<6} whole {r['whole_s']:6.2f} s, set-up {r['setup_s']:5.2f} s, "
                f"batches {r['batches_s']:6.2f} s  ({time.perf_counter() - start:.0f} s since start)",
                flush=True,
            )
    print()
    print(args.out.with_suffix(".md").read_text(), flush=True)


if __name__ == "__main__":
    main()
