"""The model families virnucpro knows, and which one a model spec belongs to."""

from __future__ import annotations

from .esm2 import FAMILY as ESM2
from .family import ModelFamily

__all__ = ["FAMILIES", "family_for"]

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (ESM2,)}


def family_for(spec: str) -> ModelFamily:
    """The family of a model spec (a pretrained name, a checkpoint path or ``random:<name>``).

    Every spec is ESM-2's today; a second family decides here which specs are its own
    (by name prefix, or by a checkpoint's content) before falling back to ESM-2.
    """
    return ESM2
