"""The model families virnucpro knows, and which one a model spec belongs to."""

from __future__ import annotations

from .dnabert import FAMILY as DNABERT
from .esm2 import FAMILY as ESM2
from .family import ModelFamily

__all__ = ["FAMILIES", "family_for"]

#: Every family, in the order ``family_for`` asks them; ESM-2 last: it takes every spec no other owns.
FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (DNABERT, ESM2)}


def family_for(spec: str) -> ModelFamily:
    """The family of a model spec (a pretrained name, a checkpoint file or folder, or ``random:<name>``):
    the first family that ``owns`` it, else ESM-2, whose loader names what it accepts."""
    spec = str(spec)
    return next((family for family in FAMILIES.values() if family.owns(spec)), ESM2)
