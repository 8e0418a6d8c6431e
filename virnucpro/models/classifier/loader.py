"""Load VirNucPro's classifier from any file a user has, checked before anything is built, nothing run.

Three formats, told apart by their first bytes, not their names:

* VirNucPro's own ``300_model.pth`` / ``500_model.pth``: ``torch.save`` of the whole
  ``MLPClassifier`` module, read through inert stand-ins (``whole_module``), never with
  ``weights_only=False``; tensors come to the CPU wherever they were saved (``cuda:0``);
* a state dict (``torch.save(model.state_dict(), path)``), read with ``weights_only=True``;
* safetensors of the same keys (what ``save_classifier`` writes), BatchNorm's eps in its
  metadata (torch's default 1e-5 when absent, as for a state dict).

Every key, shape, dtype and value is then checked (``checked_state``); any problem is one
``ValueError`` line naming the file, the key and what was expected.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from ..common.checkpoint_checks import FLOAT_DTYPES
from ..common.safe_pickle import load_torch_file
from .module import NUM_CLASSES, ClassifierModule
from .whole_module import STAND_INS, MLPClassifierStandIn, module_state

__all__ = ["DEFAULT_EPS", "METADATA_FORMAT", "checked_state", "load_classifier"]

#: BatchNorm1d's default epsilon, which VirNucPro's MLPClassifier uses.
DEFAULT_EPS = 1e-5
#: The safetensors metadata "format" of the files ``save_classifier`` writes.
METADATA_FORMAT = "virnucpro-classifier"

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"  # torch's legacy (pre-zip) format starts with a protocol-2 pickle
_WHAT = "a VirNucPro classifier"
_ADVICE = (
    "a classifier is VirNucPro's 300_model.pth or 500_model.pth, or its state_dict() saved with torch.save "
    "or as safetensors"
)
_REQUIRED = (
    "hidden_layer.weight",
    "hidden_layer.bias",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "output_layer.weight",
    "output_layer.bias",
)
_OPTIONAL = "bn1.num_batches_tracked"  # counts training steps; eval mode never reads it


def load_classifier(path: str | os.PathLike, *, expect_input: int | None = None) -> ClassifierModule:
    """VirNucPro's MLP classifier from ``path``, as our ``ClassifierModule`` (float32, CPU, eval mode).

    Args:
        path: VirNucPro's whole-module pickle (``500_model.pth``), a state dict saved by
            ``torch.save`` or a safetensors file (see the module's docstring).
        expect_input: the features per frame the caller computes (DNABERT-S's width plus
            ESM-2's: 768 + 2560 = 3328); the classifier's input size must equal it. None: not checked.

    Raises:
        ValueError: a file of another format, one that would unpickle anything but tensors,
            containers and VirNucPro's module classes, a missing or unknown key, a wrong
            shape or dtype, a NaN or infinite value, a bad eps, or an input size that is not
            ``expect_input``: one line naming ``path``. Nothing in the file is run.
        OSError: an unreadable file.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; pass the classifier file (e.g. 500_model.pth)")
    with path.open("rb") as handle:
        head = handle.read(9)
    if not head:
        raise ValueError(f"{path}: empty file (0 bytes), not a classifier; re-download or re-save it")
    random = False  # only safetensors files say so
    if head.startswith((_ZIP_MAGIC, _PICKLE_PROTO)):
        raw, eps = _read_torch(path)
    elif len(head) == 9 and head[8:9] == b"{":  # safetensors: an 8-byte header size, then the JSON header
        raw, eps, random = _read_safetensors(path)
    else:
        raise ValueError(f"{path}: not a torch file (zip or pickle) nor safetensors; {_ADVICE}")
    state = checked_state(raw, eps, path, expect_input=expect_input)
    if random:
        warnings.warn(
            f"{path}: the classifier's weights are RANDOM: its predictions are meaningless (demos only)", stacklevel=2
        )
    return ClassifierModule.from_state(state, float(eps), random=random)


def checked_state(raw: dict, eps: object, path: Path, *, expect_input: int | None = None) -> dict[str, Tensor]:
    """The classifier's tensors, each checked; ``ValueError`` (one line naming ``path``) at the first problem.

    ``raw`` must hold exactly ``_REQUIRED``'s keys (and optionally ``bn1.num_batches_tracked``,
    a 0-dim integer tensor, left out of the result): dense float tensors of the shapes that
    ``hidden_layer.weight`` (H, I) implies, 2 classes, every value finite, running variances
    >= 0; ``eps`` a finite float > 0; ``I == expect_input`` when that is given.
    """
    if not all(isinstance(key, str) for key in raw):
        raise ValueError(f"{path}: the classifier's keys must be strings, got {sorted(map(repr, raw))[:8]}")
    unknown = sorted(set(raw) - {*_REQUIRED, _OPTIONAL})
    missing = [key for key in _REQUIRED if key not in raw]
    if unknown or missing:
        problems = ([f"lacks {missing}"] if missing else []) + ([f"has unknown {unknown[:8]}"] if unknown else [])
        raise ValueError(
            f"{path}: not VirNucPro's classifier: it {' and '.join(problems)}; expected the keys of "
            f"MLPClassifier.state_dict(): {list(_REQUIRED)}"
        )
    first = raw["hidden_layer.weight"]
    if not isinstance(first, Tensor) or first.dim() != 2 or min(first.shape) < 1:
        got = tuple(first.shape) if isinstance(first, Tensor) else type(first).__name__
        raise ValueError(f"{path}: 'hidden_layer.weight' is {got}, expected a (hidden, input) matrix")
    hidden, inputs = first.shape
    shapes = {key: (hidden,) for key in _REQUIRED} | {
        "hidden_layer.weight": (hidden, inputs),
        "output_layer.weight": (NUM_CLASSES, hidden),
        "output_layer.bias": (NUM_CLASSES,),
    }
    why = f"hidden size {hidden} from 'hidden_layer.weight' {tuple(first.shape)}, {NUM_CLASSES} classes"
    state = {key: _checked_tensor(key, raw[key], shapes[key], why, path) for key in _REQUIRED}
    if _OPTIONAL in raw:
        steps = raw[_OPTIONAL]
        if not isinstance(steps, Tensor) or steps.dim() != 0 or steps.dtype.is_floating_point or steps.is_complex():
            raise ValueError(f"{path}: '{_OPTIONAL}' is {_show(steps)}, expected a 0-dim integer tensor")
    if bool((state["bn1.running_var"] < 0).any()):
        raise ValueError(f"{path}: 'bn1.running_var' has negative values; a variance is >= 0: the file is corrupt")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"{path}: BatchNorm eps is {eps!r}, expected a finite number > 0 (torch's default: 1e-05)")
    if expect_input is not None and inputs != expect_input:
        raise ValueError(
            f"{path}: the classifier takes {inputs} features per frame, but expect_input={expect_input} "
            "(DNABERT-S's width plus ESM-2's); use a classifier trained on these models' features"
        )
    return state


def _checked_tensor(key: str, value: object, shape: tuple[int, ...], why: str, path: Path) -> Tensor:
    """``value`` itself; ``ValueError`` unless it is a dense float tensor of ``shape``, every value finite.

    ``why`` says where ``shape`` comes from, for the message."""
    if not isinstance(value, Tensor) or value.layout != torch.strided or value.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{path}: {key!r} is {_show(value)}, expected a dense float16, bfloat16, float32 or float64 tensor"
        )
    if tuple(value.shape) != shape:
        raise ValueError(f"{path}: {key!r} has shape {tuple(value.shape)}, expected {shape} ({why})")
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{path}: {key!r} holds {int(bad.sum())} NaN or infinite value(s), the first at index {where}; "
            "the file is corrupt or its training diverged"
        )
    return value


def _read_torch(path: Path) -> tuple[dict, object]:
    """(state, eps) from a torch file: VirNucPro's whole module or a state dict."""
    data = load_torch_file(path, what=_WHAT, allowed=STAND_INS, advice=_ADVICE)
    if isinstance(data, MLPClassifierStandIn):
        return module_state(data, path)
    if isinstance(data, dict):
        return data, DEFAULT_EPS
    raise ValueError(f"{path}: holds a {_show(data)}, not VirNucPro's MLPClassifier or a state dict; {_ADVICE}")


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], object, bool]:
    """(state, eps, random) from a safetensors file; eps and random from its metadata."""
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}); {_ADVICE}") from err
    text = metadata.get("eps")
    try:
        eps = DEFAULT_EPS if text is None else float(text)
    except ValueError:
        raise ValueError(f"{path}: safetensors metadata eps={text!r} is not a number") from None
    return state, eps, metadata.get("random") == "true"


def _show(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    kind = type(value)
    return f"a {kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else f"a {kind.__name__}"
