"""Work that runs beside the GPU: a daemon thread whose result is collected later."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from virnucpro.data import PROTEIN, InputKind

__all__ = ["Background", "count_records"]

T = TypeVar("T")


class Background(Generic[T]):
    """``fn()`` run in a daemon thread; ``result()`` waits for it and returns it or raises its error.

    With ``start=False`` the thread starts only at ``start()``, and a ``result()`` asked for
    before that computes ``fn()`` in the caller: a run creates its background work before
    its DataLoader workers fork and starts it after, because a fork must not copy another
    thread's held locks.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so a failed job
    would wait for, say, a count over a large input to finish before exiting.
    """

    def __init__(self, fn: Callable[[], T], name: str = "virnucpro-background", *, start: bool = True):
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ran = False
        if start:
            self.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as err:
            self._error = err
        self._ran = True

    def start(self) -> None:
        if not self._ran and not self._thread.is_alive():
            self._thread.start()

    def done(self) -> bool:
        return self._ran

    def result(self) -> T:
        if self._thread.ident is None and not self._ran:
            self._run()
        elif self._thread.ident is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def count_records(inputs: Sequence[Path], kind: InputKind = PROTEIN) -> int:
    """The number of records ``inputs`` give as ``kind`` (proteins of DNA, too): what the exact-once
    check expects."""
    return sum(1 for _ in kind.records(inputs))
