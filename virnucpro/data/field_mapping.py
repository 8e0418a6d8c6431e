"""``FieldMapping``: a typed dataclass that also reads as a read-only mapping of its fields.

The data layer's first contract (the user's plan, ``.planning/PROJECT.md``) was records as
dicts: ``record["id"]``, ``"sequence" in record``. Typed records keep that contract by
answering the read-only half of ``collections.abc.Mapping``: ``record["id"]``, ``in``,
``keys()``, ``values()``, ``items()``, ``get()``, ``len()``, iteration over the keys, and so
``dict(record)``. Attribute access, ``==``, hashing, pickling and ``frozen``/``slots`` are the
dataclass's own, untouched.

Not registered as a ``collections.abc.Mapping`` on purpose: PyTorch's DataLoader rebuilds any
``Mapping`` it passes through (``default_convert``, ``default_collate``, ``pin_memory``) as a
plain ``dict``, so records and batches would arrive untyped.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from dataclasses import fields
from functools import cache
from typing import Any, ClassVar

__all__ = ["FieldMapping"]


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls)) + cls._extra_keys


class FieldMapping:
    """Mixin for a dataclass: ``obj[name]`` reads field ``name``; the keys are the fields, in order.

    ``_extra_keys`` names read-only properties that are keys too (a subclass's choice); other
    properties are attributes only. An unknown key raises ``KeyError`` naming the known ones.
    """

    __slots__ = ()
    _extra_keys: ClassVar[tuple[str, ...]] = ()

    def keys(self) -> KeysView[str]:
        """The field names (then ``_extra_keys``), in declaration order, as ``dict.keys()`` gives them."""
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        return ValuesView(self)

    def items(self) -> ItemsView[str, Any]:
        return ItemsView(self)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self else default

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            known = ", ".join(map(repr, _field_names(type(self))))
            raise KeyError(f"{key!r}: a {type(self).__name__} has the keys {known}")
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in _field_names(type(self))

    def __iter__(self) -> Iterator[str]:
        return iter(_field_names(type(self)))

    def __len__(self) -> int:
        return len(_field_names(type(self)))
