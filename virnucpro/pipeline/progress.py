"""Progress for people and for log files: a tqdm bar with a total on a terminal, a plain
line through ``logging`` otherwise (no carriage-return spam in a batch job's log): after
the first batch, every 30 s, and at the end."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

__all__ = ["Progress"]

log = logging.getLogger("virnucpro")

_LOG_EVERY_S = 30.0


class Progress:
    """Counts records and tokens against a total that may become known later.

    ``total()`` gives the number of records to expect, or None while it is still being
    counted (records are counted in a thread while the GPU works); it is asked on every
    update until it answers.
    """

    def __init__(
        self, enabled: bool, total: Callable[[], int | None] = lambda: None, *, interactive: bool | None = None
    ):
        self.enabled = enabled
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.records = self.tokens = 0
        self._total_fn = total
        self.total = total()
        self._start = time.perf_counter()
        self._last_log: float | None = None
        self._bar = (
            tqdm(total=self.total, unit="seq", dynamic_ncols=True, file=sys.stderr)
            if enabled and self.interactive
            else None
        )

    def update(self, records: int, tokens: int) -> None:
        if self.total is None and (total := self._total_fn()) is not None:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        self.records += records
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self._start, 1e-9)
        if self._bar is not None:
            self._bar.update(records)
            self._bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
        elif self.enabled and (self._last_log is None or time.perf_counter() - self._last_log >= _LOG_EVERY_S):
            self._last_log = time.perf_counter()  # the first batch, then every _LOG_EVERY_S
            log.info(self.line(rate))

    def line(self, rate: float) -> str:
        """``12,345 / 100,000 records (12.3 %), 98,765 tokens/s, ETA 0:01:23`` (total and ETA when known)."""
        if not self.total:
            return f"{self.records:,} records, {rate:,.0f} tokens/s"
        done = self.records / self.total
        elapsed = time.perf_counter() - self._start
        eta = elapsed * (1 - done) / done if done > 0 else 0.0
        return (
            f"{self.records:,} / {self.total:,} records ({100 * done:.1f} %), {rate:,.0f} tokens/s, "
            f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self._last_log is not None:
            log.info(self.line(self.tokens / max(time.perf_counter() - self._start, 1e-9)))
