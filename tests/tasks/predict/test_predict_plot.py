"""``virnucpro plot``: figures from a made-up output, the chunks drawn as VirNucPro calls them."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from predict_outputs import frames_of, write_fasta, write_output
from virnucpro.cli import main
from virnucpro.data.dna import chunk_bounds
from virnucpro.tasks.predict import HIGHEST_FILE, plot_predictions
from virnucpro.tasks.predict.plot import _panels


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    return write_output(folder / "out", frames_of(write_fasta(folder / "contigs.fa")))


def test_png_and_pdf(out, tmp_path):
    png = plot_predictions(out, tmp_path / "calls.png")
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 1000 and image.height > 5 * 150  # five panels
    pdf = plot_predictions(out, tmp_path / "calls.PDF", contigs=["x", "dup"])
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert plot_predictions(out, tmp_path / "again.PDF", contigs=["x", "dup"]).read_bytes() == data  # no timestamp
    assert sorted(path.name for path in tmp_path.iterdir()) == ["again.PDF", "calls.PDF", "calls.png"]  # no leftovers


def test_panels_are_virnucpros_chunk_calls(out):
    """Each drawn chunk is at VirNucPro's chunk bounds, called as its highestscore CSV calls it."""
    calls = pd.read_csv(out / HIGHEST_FILE, sep="\t", keep_default_na=False)
    called = dict(zip(calls["Modified_ID"], calls["Is_Virus"]))
    panels = _panels(out, ["weird_chunk_7", "all_N", "NODE_1_length_12000_cov_3.5"], 300)
    assert [panel.id for panel in panels] == ["NODE_1_length_12000_cov_3.5", "all_N", "weird_chunk_7"]  # input order
    for panel in panels:
        bounds = chunk_bounds(panel.length, 300)
        drawn = {(start, end): virus for start, end, _, virus in panel.scored}
        assert sorted([*drawn, *panel.unscored]) == bounds
        for number, bound in enumerate(bounds, start=1):
            assert drawn.get(bound) == called.get(f"{panel.id}_chunk_{number}"), (panel.id, number)
    assert panels[1].scored == [] and len(panels[1].unscored) == 3
    default = _panels(out, None, 300)
    assert [panel.id for panel in default] == ["NODE_1_length_12000_cov_3.5", "short", "empty", "dup", "x"]


def test_cli_writes_the_default_figure(out, capsys):
    assert main(["plot", str(out), "--contigs", "gi|123|ref|NC_1.1|", "--overwrite"]) == 0
    assert (out / "prediction.png").is_file()
    assert "prediction.png" in capsys.readouterr().out
    assert main(["plot", str(out)]) == 1  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"figure": "f.svg"}, "name the figure .png or .pdf"),
        ({"contigs": ["nope"]}, "no record has the id(s) ['nope']"),
        ({"chunk_size": 500}, "has 40 chunks there, but 24 at chunk size 500"),
    ],
)
def test_refusals(out, tmp_path, kwargs, expected):
    kwargs = {"figure": tmp_path / kwargs.pop("figure", "f.png"), **kwargs}
    with pytest.raises(ValueError) as err:
        plot_predictions(out, **kwargs)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_folder_that_is_not_a_prediction_is_named_as_such(out, tmp_path):
    """Not asked for a chunk size it cannot read: told what the folder is."""
    embedded = tmp_path / "embeddings.h5"
    embedded.write_bytes(b"not a folder")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "contigs.tsv").write_bytes((out / "contigs.tsv").read_bytes())
    for folder, what in [
        (tmp_path / "missing", "does not exist"),
        (embedded, "is not a folder"),
        (tmp_path / "half", "holds no prediction_results.txt"),
    ]:
        with pytest.raises(ValueError) as err:
            plot_predictions(folder, tmp_path / "f.png")
        message = str(err.value)
        assert message.startswith(f"{folder} {what}: it is not an output folder of virnucpro predict"), message
        assert "chunk" not in message and "\n" not in message
    assert not (tmp_path / "f.png").exists()


def test_without_matplotlib_one_line_with_the_pip_command(out, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an environment without the extra imports
    with pytest.raises(ValueError, match=r"pip install 'virnucpro\[plot\]'"):
        plot_predictions(out, tmp_path / "f.png")
