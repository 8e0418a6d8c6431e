"""Random models for ``make demo``'s prediction: MEANINGLESS scores, for trying the tool only.

Writes into FOLDER:

* ``dnabert-tiny/``: a DNABERT folder as users download DNABERT-S (config.json, tokenizer.json,
  model.safetensors), but 2 layers of width 64 with random weights, so that the demo runs in
  seconds on a laptop's CPU; its tokenizer is ``random:dnabert-s``'s (learnt from the bundled DNA);
* ``500_random_classifier.safetensors``: VirNucPro's classifier shape for these widths (DNABERT 64 +
  ESM-2 t6 320 = 384 features) with random weights, marked random (virnucpro warns when reading it);
  named as VirNucPro names its files, for the demo's 500 bp chunks (``predict`` reads the chunk
  size from the name and warns when a name does not give one).

The ESM-2 of the demo is ``random:esm2_t6_8M_UR50D``. Real runs use DNABERT-S, ESM-2 3B and
VirNucPro's 500_model.pth (README, "Classify DNA as VirNucPro does").

    python examples/make_demo_models.py FOLDER

FOLDER must be new, empty, or one this script made before (it holds ``MARKER``): the script
never writes over files it did not make, such as a real DNABERT-S folder named by mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from virnucpro.models.classifier import random_classifier, save_classifier
from virnucpro.models.dnabert.architecture import Config
from virnucpro.models.dnabert.random_tokenizer import random_tokenizer
from virnucpro.models.dnabert.weights import random_state

#: 2 blocks of width 64, 4 heads, MLP 96, DNABERT-S's vocabulary.
TINY = Config(layers=2, embed_dim=64, heads=4, intermediate=96, vocab_size=4096)
ESM2_T6_WIDTH = 320
#: The file that marks a folder as this script's, so that a rerun may replace what it wrote.
MARKER = ".virnucpro-demo-models"
CLASSIFIER = "500_random_classifier.safetensors"


def claim(folder: Path) -> None:
    """Make ``folder``, or accept it when empty or marked as ours; otherwise exit naming it."""
    if folder.exists() and not folder.is_dir():
        sys.exit(f"make_demo_models: {folder} is not a folder; name a new folder")
    if (
        folder.is_dir()
        and any(folder.iterdir())
        and not (folder / MARKER).is_file()
        and not _made_before_markers(folder)
    ):
        sys.exit(f"make_demo_models: {folder} holds files this script did not make (no {MARKER}); name a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("random demo models made by examples/make_demo_models.py\n")


def _made_before_markers(folder: Path) -> bool:
    """A folder this script made before it wrote ``MARKER`` (and named its classifier ``CLASSIFIER``): only its
    two entries, the weights marked random."""
    weights = folder / "dnabert-tiny" / "model.safetensors"
    if {p.name for p in folder.iterdir()} != {"dnabert-tiny", "random_classifier.safetensors"} or not weights.is_file():
        return False
    with safe_open(weights, "pt") as handle:
        return (handle.metadata() or {}).get("random") == "true"


def main(folder: Path) -> None:
    claim(folder)
    dnabert = folder / "dnabert-tiny"
    dnabert.mkdir(exist_ok=True)
    config = {
        "model_type": "bert",
        "num_hidden_layers": TINY.layers,
        "hidden_size": TINY.embed_dim,
        "num_attention_heads": TINY.heads,
        "intermediate_size": TINY.intermediate,
        "vocab_size": TINY.vocab_size,
        "type_vocab_size": TINY.type_vocab_size,
        "layer_norm_eps": TINY.layer_norm_eps,
    }
    (dnabert / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dnabert / "tokenizer.json").write_text(random_tokenizer("random:dnabert-s").to_str())
    save_file(random_state(TINY, seed=0, device="cpu"), dnabert / "model.safetensors", metadata={"random": "true"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file says it is random; reading it warns
        classifier = random_classifier(TINY.embed_dim + ESM2_T6_WIDTH, 32, seed=0)
    save_classifier(classifier, folder / CLASSIFIER, overwrite=True)
    print(f"random demo models (meaningless) in {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Random demo models (meaningless) for make demo's prediction.")
    parser.add_argument("folder", type=Path, help="a new folder, or one this script made before")
    main(parser.parse_args().folder)
