"""Random models for ``make demo``'s prediction: MEANINGLESS scores, for trying the tool only.

Writes into FOLDER:

* ``dnabert-tiny/``: a DNABERT folder as users download DNABERT-S (config.json, tokenizer.json,
  model.safetensors), but 2 layers of width 64 with random weights, so that the demo runs in
  seconds on a laptop's CPU; its tokenizer is ``random:dnabert-s``'s (learnt from the bundled DNA);
* ``random_classifier.safetensors``: VirNucPro's classifier shape for these widths (DNABERT 64 +
  ESM-2 t6 320 = 384 features) with random weights, marked random (virnucpro warns when reading it).

The ESM-2 of the demo is ``random:esm2_t6_8M_UR50D``. Real runs use DNABERT-S, ESM-2 3B and
VirNucPro's 500_model.pth (README, "Classify DNA as VirNucPro does").

    python examples/make_demo_models.py FOLDER
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from safetensors.torch import save_file

from virnucpro.models.classifier import random_classifier, save_classifier
from virnucpro.models.dnabert.architecture import Config
from virnucpro.models.dnabert.random_tokenizer import random_tokenizer
from virnucpro.models.dnabert.weights import random_state

#: 2 blocks of width 64, 4 heads, MLP 96, DNABERT-S's vocabulary.
TINY = Config(layers=2, embed_dim=64, heads=4, intermediate=96, vocab_size=4096)
ESM2_T6_WIDTH = 320


def main(folder: Path) -> None:
    dnabert = folder / "dnabert-tiny"
    dnabert.mkdir(parents=True, exist_ok=True)
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
    save_classifier(classifier, folder / "random_classifier.safetensors", overwrite=True)
    print(f"random demo models (meaningless) in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
