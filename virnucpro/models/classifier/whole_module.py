"""VirNucPro's classifier files, read without running them: inert stand-ins for the pickled modules.

``train.py`` saves ``torch.save(model, "model.pth")``: a pickle of the whole ``MLPClassifier``
module, a class defined in the script's ``__main__``. Unpickled the usual way
(``torch.load(weights_only=False)``) such a file runs whatever its pickle names. Here torch's
weights-only unpickler reads it, with the four module classes the file names allowed as
*stand-ins*: empty classes carrying those names, which unpickling can only create
(``object.__new__``) and fill (``__dict__.update``). Torch's own code builds the tensors,
from the archive, on the CPU, wherever they were saved (``cuda:0`` included); every other
global is refused before anything is called.

``module_state`` then reads the stand-ins as ``MLPClassifier.state_dict()`` would, and
refuses any module tree that is not VirNucPro's: other submodules would mean another forward.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STAND_INS", "MLPClassifierStandIn", "module_state"]


class _StandIn:
    """What unpickling sets on a module (``_parameters``, ``_buffers``, ``_modules``, hyperparameters); no methods."""


def _stand_in(module: str, name: str) -> type:
    # The weights-only unpickler keys allowed classes by "<__module__>.<__qualname__>", which is
    # what the pickle names: the stand-ins carry those names, and nothing of the real classes.
    return type(name, (_StandIn,), {"__module__": module, "__qualname__": name, "__doc__": _StandIn.__doc__})


MLPClassifierStandIn = _stand_in("__main__", "MLPClassifier")
_LINEAR = _stand_in("torch.nn.modules.linear", "Linear")
_BATCHNORM = _stand_in("torch.nn.modules.batchnorm", "BatchNorm1d")
_DROPOUT = _stand_in("torch.nn.modules.dropout", "Dropout")

#: The globals a VirNucPro classifier file names beyond what torch's weights-only unpickler allows.
STAND_INS = (MLPClassifierStandIn, _LINEAR, _BATCHNORM, _DROPOUT)

# VirNucPro's submodules: name -> (stand-in, tensors in _parameters, tensors in _buffers)
_SUBMODULES = {
    "hidden_layer": (_LINEAR, ("weight", "bias"), ()),
    "bn1": (_BATCHNORM, ("weight", "bias"), ("running_mean", "running_var", "num_batches_tracked")),
    "output_layer": (_LINEAR, ("weight", "bias"), ()),
    "dropout": (_DROPOUT, (), ()),
}
_COMPUTING = ("hidden_layer", "bn1", "output_layer")  # dropout does nothing in eval mode: it may be absent


def module_state(root: object, path: Path) -> tuple[dict[str, object], object]:
    """``(state, eps)``: the unpickled stand-in tree as ``MLPClassifier.state_dict()`` and ``bn1.eps``.

    Values are returned as the file holds them (tensors, or anything else, which the caller's
    checks refuse); a parameter saved as None (a layer without bias) is left out, so the
    caller's key check names it missing. Raises ``ValueError`` (one line naming ``path``) for
    a tree that is not VirNucPro's: other or missing submodules, tensors directly on the
    root, other tensor names, or a BatchNorm without running statistics or affine weights.
    """
    modules = _field(root, "_modules", "MLPClassifier", path)
    if not isinstance(modules, dict) or not all(isinstance(name, str) for name in modules):
        raise ValueError(f"{path}: MLPClassifier._modules is a {type(modules).__name__}, expected a dict by name")
    unknown = sorted(set(modules) - set(_SUBMODULES))
    missing = [name for name in _COMPUTING if name not in modules]
    if unknown or missing:
        raise ValueError(
            f"{path}: this MLPClassifier has submodules {sorted(modules)}, but VirNucPro's has "
            f"{list(_SUBMODULES)}; another layout computes something else, so it is refused"
        )
    for where in ("_parameters", "_buffers"):
        if _field(root, where, "MLPClassifier", path):
            raise ValueError(f"{path}: MLPClassifier.{where} holds tensors; VirNucPro's keeps them in its submodules")
    state: dict[str, object] = {}
    for name, module in modules.items():
        kind, parameters, buffers = _SUBMODULES[name]
        if type(module) is not kind:
            raise ValueError(
                f"{path}: MLPClassifier.{name} is a {_describe(module)}, expected "
                f"{kind.__module__}.{kind.__qualname__} as in VirNucPro's MLPClassifier"
            )
        for where, names in (("_parameters", parameters), ("_buffers", buffers)):
            tensors = _field(module, where, name, path)
            if not isinstance(tensors, dict) or set(tensors) - set(names):
                got = sorted(map(str, tensors)) if isinstance(tensors, dict) else type(tensors).__name__
                raise ValueError(f"{path}: MLPClassifier.{name}.{where} holds {got}, expected names among {names}")
            state |= {f"{name}.{key}": value for key, value in tensors.items() if value is not None}
    bn = modules["bn1"]
    for flag in ("affine", "track_running_stats"):
        if _field(bn, flag, "bn1", path) is not True:
            raise ValueError(
                f"{path}: MLPClassifier.bn1.{flag} is {_field(bn, flag, 'bn1', path)!r}, expected True: VirNucPro's "
                "BatchNorm1d scales, shifts and normalises by its running statistics in eval mode"
            )
    return state, _field(bn, "eps", "bn1", path)


def _field(module: object, name: str, where: str, path: Path) -> object:
    """``module.__dict__[name]``, as unpickling set it; ``ValueError`` naming ``where`` if absent."""
    values = vars(module)
    if name not in values:
        raise ValueError(f"{path}: {where} lacks {name!r}; not a module as torch.save writes one")
    return values[name]


def _describe(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if isinstance(value, _StandIn) else kind.__name__
