"""``virnucpro plot``: VirNucPro's ``drew_fig.py`` picture of a prediction, drawn right.

``drew_fig.py`` draws, per contig, one segment per *frame* at ``chunk number * 500``
(whatever the chunk size, and one chunk to the right), at the frame's higher score, red for
virus and dark blue for others, for the first five contigs of ``prediction_results.txt``;
an id holding ``_chunk_`` is cut at the wrong place. Here, per contig: one segment per
*chunk*, at its real place on the contig (VirNucPro's overlapping chunk bounds), at the
chunk's highest score, coloured by VirNucPro's call for the chunk (its highest score2 >=
its highest score1), chunks without a stop-free frame marked in grey, the contig's length
and viral chunk count in the title, and a legend. ``contigs`` picks which records; by
default the first five, as ``drew_fig.py`` does. PNG or PDF by the figure's suffix.

It reads the output folder of ``virnucpro predict``: ``contigs.tsv`` (records, their
lengths and frame counts, which say which rows of ``prediction_results.txt`` are theirs)
and the chunk size from ``provenance.json`` ("chunk_size") unless ``chunk_size`` is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from virnucpro.atomic import atomic_output
from virnucpro.data.dna import chunk_bounds

from .contigs import CONTIG_COLUMNS, CONTIGS_FILE
from .results import RESULTS_FILE, RESULTS_HEADER, chunk_id, chunk_is_virus

__all__ = ["DEFAULT_CONTIGS", "FIGURE_FILE", "PROVENANCE_FILE", "plot_predictions", "require_matplotlib"]

DEFAULT_CONTIGS = 5  # drew_fig.py draws the first five
FIGURE_FILE = "prediction.png"  # drew_fig.py's name, beside the results
PROVENANCE_FILE = "provenance.json"
_FORMATS = {".png": "png", ".pdf": "pdf"}
_VIRUS, _OTHERS, _NONE = "#c0392b", "#1f4e79", "#b8b8b8"


@dataclass(frozen=True)
class _Panel:
    """One contig to draw: (start, end, highest score, viral) per scored chunk, (start, end) per unscored one."""

    id: str
    length: int
    chunks: int
    scored: list[tuple[int, int, float, bool]]
    unscored: list[tuple[int, int]]


def require_matplotlib() -> None:
    """Raise one line with the pip command when matplotlib, an optional extra, is absent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("plotting needs matplotlib: pip install 'virnucpro[plot]'") from None


def plot_predictions(
    out_dir: str | os.PathLike,
    figure: str | os.PathLike | None = None,
    *,
    contigs: Sequence[str] | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Draw the chunks' calls of some records of a ``virnucpro predict`` output; returns the figure's path.

    Args:
        out_dir: the output folder (``contigs.tsv``, ``prediction_results.txt``, ``provenance.json``).
        figure: the file to write, ``.png`` or ``.pdf``; default ``out_dir/prediction.png``.
        contigs: record ids to draw, one panel per record holding the id (in input order);
            None: the first ``DEFAULT_CONTIGS`` records.
        chunk_size: the run's chunk size; None: read from ``provenance.json``.
        overwrite: replace an existing figure.

    Raises:
        ValueError: matplotlib missing, an unknown suffix, an id not in ``contigs.tsv``, or a
            malformed output file (one line naming the file and line).
        FileExistsError: ``figure`` exists and not ``overwrite``.
    """
    require_matplotlib()
    out_dir = Path(out_dir)
    _check_folder(out_dir)
    figure = out_dir / FIGURE_FILE if figure is None else Path(figure)
    if figure.suffix.lower() not in _FORMATS:
        raise ValueError(f"{figure}: unknown figure format {figure.suffix!r}; name the figure .png or .pdf")
    if os.path.lexists(figure) and not overwrite:
        raise FileExistsError(f"{figure} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    size = _chunk_size(out_dir) if chunk_size is None else chunk_size
    panels = _panels(out_dir, contigs, size)
    _save(_draw(panels, size), figure)
    return figure


def _check_folder(out_dir: Path) -> None:
    """One line when ``out_dir`` is not a ``predict`` output folder: before its chunk size is asked for."""
    if not os.path.lexists(out_dir):
        what = "does not exist"
    elif not out_dir.is_dir():
        what = "is not a folder"
    else:
        missing = [name for name in (RESULTS_FILE, CONTIGS_FILE) if not (out_dir / name).is_file()]
        if not missing:
            return
        what = f"holds no {' and no '.join(missing)}"
    raise ValueError(
        f"{out_dir} {what}: it is not an output folder of virnucpro predict; pass the folder given to predict -o"
    )


def _chunk_size(out_dir: Path) -> int:
    path = out_dir / PROVENANCE_FILE
    try:
        size = json.loads(path.read_text(encoding="utf-8")).get("chunk_size")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(
            f"{path}: cannot read the run's chunk size ({err}); pass chunk_size (CLI: --chunk-size)"
        ) from err
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{path}: chunk_size is {size!r}, expected an int >= 1; pass chunk_size (CLI: --chunk-size)")
    return size


def _records(out_dir: Path) -> Iterator[tuple[int, str, int, int, int]]:
    """(line number, id, length, chunks, frames) per row of ``contigs.tsv``, checked."""
    path = out_dir / CONTIGS_FILE
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if tuple(header) != CONTIG_COLUMNS:
            raise ValueError(f"{path}:1: header {header[:4]}..., expected {list(CONTIG_COLUMNS)}; not virnucpro's")
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            try:
                if len(fields) != len(CONTIG_COLUMNS):
                    raise ValueError(f"{len(fields)} fields")
                yield number, fields[0], int(fields[1]), int(fields[2]), int(fields[4])
            except ValueError as err:
                raise ValueError(f"{path}:{number}: malformed row ({err}); not virnucpro's contigs.tsv") from None


def _frames(out_dir: Path) -> Iterator[tuple[int, str, float, float]]:
    """(line number, frame id, score1, score2) per row of ``prediction_results.txt``, checked."""
    path = out_dir / RESULTS_FILE
    with path.open(encoding="utf-8", newline="") as handle:
        if handle.readline() != RESULTS_HEADER:
            raise ValueError(f"{path}:1: not VirNucPro's header {RESULTS_HEADER.strip()!r}")
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            try:
                yield number, fields[0], float(fields[2]), float(fields[3])
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{number}: malformed row; expected id, label and two scores") from None


def _panels(out_dir: Path, wanted: Sequence[str] | None, size: int) -> list[_Panel]:
    """The records to draw, their frames taken from ``prediction_results.txt`` by the frame counts."""
    wanted_ids = None if wanted is None else set(wanted)
    frames, offset, picked = _frames(out_dir), 0, []
    seen: set[str] = set()
    for _, record_id, length, chunks, count in _records(out_dir):
        if wanted_ids is None and len(picked) == DEFAULT_CONTIGS:
            break
        if wanted_ids is None or record_id in wanted_ids:
            seen.add(record_id)
            rows = _take(frames, offset, count, out_dir)
            picked.append(_panel(record_id, length, chunks, rows, size, out_dir))
            offset = 0
        else:
            offset += count
    missing = [] if wanted_ids is None else sorted(wanted_ids - seen)
    if missing:
        raise ValueError(
            f"{out_dir / CONTIGS_FILE}: no record has the id(s) {missing[:5]}; pick ids from its first column"
        )
    if not picked:
        raise ValueError(f"{out_dir / CONTIGS_FILE}: no records, nothing to plot")
    return picked


def _take(frames: Iterator[tuple[int, str, float, float]], skip: int, count: int, out_dir: Path) -> list:
    """Skip ``skip`` frames, then return the next ``count``; a short file is an error."""
    rows = []
    for _ in range(skip + count):
        row = next(frames, None)
        if row is None:
            raise ValueError(
                f"{out_dir / RESULTS_FILE}: fewer frames than {CONTIGS_FILE} counts; the output is incomplete"
            )
        rows.append(row)
    return rows[skip:]


def _panel(record_id: str, length: int, chunks: int, rows: list, size: int, out_dir: Path) -> _Panel:
    """One record's chunks: highest scores per chunk from its frames, placed by VirNucPro's chunk bounds."""
    maxima: dict[int, tuple[float, float]] = {}
    prefix = f"{record_id}_chunk_"
    for number, frame, score1, score2 in rows:
        chunk = chunk_id(frame)
        if not chunk.startswith(prefix) or not chunk[len(prefix) :].isdigit():
            raise ValueError(
                f"{out_dir / RESULTS_FILE}:{number}: frame {frame!r} is not of record {record_id!r}; "
                f"{CONTIGS_FILE} and {RESULTS_FILE} disagree"
            )
        k = int(chunk[len(prefix) :])
        old = maxima.get(k, (score1, score2))
        maxima[k] = (max(old[0], score1), max(old[1], score2))
    bounds = chunk_bounds(length, size)
    if len(bounds) != chunks or any(k > len(bounds) for k in maxima):
        raise ValueError(
            f"{out_dir / CONTIGS_FILE}: record {record_id!r} ({length} bp) has {chunks} chunks there, but "
            f"{len(bounds)} at chunk size {size}; pass the run's chunk size"
        )
    scored, unscored = [], []
    for k, (start, end) in enumerate(bounds, start=1):
        if k in maxima:
            score1, score2 = maxima[k]
            scored.append((start, end, max(score1, score2), chunk_is_virus(score1, score2)))
        else:
            unscored.append((start, end))
    return _Panel(record_id, length, chunks, scored, unscored)


def _draw(panels: list[_Panel], size: int):
    """A matplotlib Figure (no pyplot: no global state, no display needed) with one panel per record."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(12, 1.7 * len(panels) + 0.9), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        for start, end, score, virus in panel.scored:
            ax.hlines(score, start, end, colors=_VIRUS if virus else _OTHERS, linewidth=3)
        for start, end in panel.unscored:
            ax.hlines(0.47, start, end, colors=_NONE, linewidth=3)
        ax.axhline(0.5, color="#dddddd", linewidth=0.8, zorder=0)
        virus = sum(1 for *_, called in panel.scored if called)
        ax.set_title(
            f"{panel.id}   {panel.length:,} bp   {virus} of {panel.chunks} chunks viral", loc="left", fontsize=11
        )
        ax.set_xlim(0, max(panel.length, 1))
        if not panel.chunks:
            ax.set_xticks([])
            ax.text(0.5, 0.5, "empty record: no chunks", transform=ax.transAxes, ha="center", color="#777777")
        ax.set_ylim(0.44, 1.03)
        ax.set_ylabel("highest score", fontsize=9)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x):,}"))
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=8, colors="#555555")
    axes[-1].set_xlabel(f"position (bp); chunks of {size} bp, as VirNucPro cuts them", fontsize=9)
    legend = [
        Line2D([], [], color=_VIRUS, linewidth=3, label="virus (highest score2 >= highest score1)"),
        Line2D([], [], color=_OTHERS, linewidth=3, label="others"),
        Line2D([], [], color=_NONE, linewidth=3, label="no stop-free frame (not scored)"),
    ]
    figure.legend(handles=legend, loc="outside upper center", ncols=3, frameon=False, fontsize=9)
    return figure


def _save(figure, path: Path) -> None:
    """Write under a fresh sibling name, then rename: the figure appears whole or not at all."""
    kind = _FORMATS[path.suffix.lower()]
    with atomic_output(path) as handle:
        # no creation date in a PDF: the same output draws the same bytes
        metadata = {"CreationDate": None} if kind == "pdf" else {}
        figure.savefig(handle, format=kind, dpi=150, metadata=metadata)
