"""A byte counter for downloads: a redrawn bar on a terminal, a line every 10 % elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


class ByteProgress:
    """A byte counter on stderr: a redrawn bar on a terminal, a line every 10 % elsewhere."""

    _REDRAW_EVERY_S = 0.2

    def __init__(
        self,
        label: str,
        total: int | None,
        done: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self.label = label
        self.total = total
        self.done = done
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._start_bytes = done
        self._last_draw = 0.0
        self._last_tenth = -1
        self._finished = False

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if self.interactive:
            if now - self._last_draw >= self._REDRAW_EVERY_S:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        elif self.total:
            tenth = self.done * 10 // self.total
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def finish(self) -> None:
        if not self.enabled or self._finished:
            return
        self._finished = True
        if self.interactive:
            self.stream.write("\r" + self._line() + "\n")
        elif not self.total or self.done * 10 // self.total == self._last_tenth:
            return  # the last line already shows where it stopped
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = (self.done - self._start_bytes) / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * 30)
            bar = "#" * filled + "-" * (30 - filled)
            return (
                f"{self.label} [{bar}] {share:4.0%} {megabytes(self.done)} / "
                f"{megabytes(self.total)} {megabytes(rate)}/s"
            )
        return f"{self.label} {megabytes(self.done)} {megabytes(rate)}/s"
