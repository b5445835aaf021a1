"""Progress of a generation run: counts only, never example content."""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Protocol, TextIO

log = logging.getLogger(__name__)


class ProgressReporter(Protocol):
    """Told after every finished call how many of ``total`` are done and how many failed."""

    def update(self, done: int, total: int, errors: int, retries: int) -> None: ...

    def close(self) -> None: ...


class LogProgress:
    """Logs a counts line at most every ``every_seconds`` (and at the end); for components."""

    def __init__(self, every_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self._clock = clock
        self._last = clock()

    def update(self, done: int, total: int, errors: int, retries: int) -> None:
        now = self._clock()
        if done == total or now - self._last >= self.every_seconds:
            self._last = now
            log.info("generation: %d/%d calls done, %d failed, %d retries", done, total, errors, retries)

    def close(self) -> None:
        return None


class StderrProgress:
    """A single self-updating counts line on a terminal (one line per update elsewhere, throttled)."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._wrote = False

    def update(self, done: int, total: int, errors: int, retries: int) -> None:
        now = time.monotonic()
        interval = self.min_interval if self._tty else 5.0
        if done != total and now - self._last < interval:
            return
        self._last = now
        percent = 100.0 * done / total if total else 100.0
        line = f"evaluating: {done}/{total} calls ({percent:5.1f}%), {errors} failed, {retries} retries"
        if self._tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self._wrote = True
        self.stream.flush()

    def close(self) -> None:
        if self._tty and self._wrote:
            self.stream.write("\n")
            self.stream.flush()
