"""Write a classifier as safetensors, and make a random one for demos.

Why no random classifier in VirNucPro's own format: that format is a pickle of a class in
``__main__``; writing one means defining such a class and pickling live modules, which a
library should not do. The tests make real VirNucPro files from a script that runs
``train.py``'s class as ``__main__`` (``tests/models/classifier/make_virnucpro_classifier.py``).
A demo uses ``random_classifier`` saved by ``save_classifier``: safetensors with
``"random": "true"`` in its metadata, so that ``load_classifier`` warns that its scores
mean nothing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import save

from ...atomic import atomic_output
from .loader import DEFAULT_EPS, METADATA_FORMAT
from .module import ClassifierModule

__all__ = ["random_classifier", "save_classifier"]


def save_classifier(model: ClassifierModule, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``model`` to ``path`` as safetensors, which ``load_classifier`` reads back exactly.

    Keys are ``MLPClassifier.state_dict()``'s (without ``bn1.num_batches_tracked``), float32;
    the metadata holds ``format`` (``METADATA_FORMAT``), ``eps`` and ``random`` ("true"/"false").
    The file appears whole or not at all. ``FileExistsError`` if ``path`` exists and not ``overwrite``.
    """
    path = Path(path)
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tensors = {
        key: value.detach().to("cpu", torch.float32).contiguous()
        for key, value in model.state_dict().items()
        if key != "bn1.num_batches_tracked"
    }
    metadata = {"format": METADATA_FORMAT, "eps": repr(model.eps), "random": "true" if model.random else "false"}
    with atomic_output(path) as handle:  # readers never see half a file
        handle.write(save(tensors, metadata=metadata))


def random_classifier(input_dim: int = 3328, hidden_dim: int = 512, *, seed: int = 0) -> ClassifierModule:
    """A classifier of VirNucPro's shape with RANDOM weights (warns): for demos and tests, meaningless for biology.

    Weights as ``MLPClassifier.init_weights`` draws them (Xavier-uniform), biases small, and
    BatchNorm statistics away from the identity (running means ~N(0, 0.1), variances in
    [0.5, 1.5]) so that every term of the forward matters. Deterministic in ``seed``.
    """
    warnings.warn(f"random classifier (seed {seed}): its predictions are meaningless; for demos only", stacklevel=2)
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape: int, low: float, high: float) -> torch.Tensor:
        return torch.empty(shape).uniform_(low, high, generator=generator)

    def xavier(rows: int, columns: int) -> torch.Tensor:
        bound = (6.0 / (rows + columns)) ** 0.5
        return uniform(rows, columns, low=-bound, high=bound)

    state = {
        "hidden_layer.weight": xavier(hidden_dim, input_dim),
        "hidden_layer.bias": uniform(hidden_dim, low=-0.05, high=0.05),
        "bn1.weight": uniform(hidden_dim, low=0.5, high=1.5),
        "bn1.bias": uniform(hidden_dim, low=-0.1, high=0.1),
        "bn1.running_mean": torch.randn(hidden_dim, generator=generator) * 0.1,
        "bn1.running_var": uniform(hidden_dim, low=0.5, high=1.5),
        "output_layer.weight": xavier(2, hidden_dim),
        "output_layer.bias": uniform(2, low=-0.05, high=0.05),
    }
    return ClassifierModule.from_state(state, DEFAULT_EPS, random=True)
