"""A byte counter for downloads, drawn by the shared tqdm bar of :mod:`colorize.progress`.

A resumed download starts at the bytes already on disk; the rate counts only the bytes this
attempt receives.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from colorize.progress import LineBar

TERMINAL_FORMAT = "{label} |{bar}| {amount}, {speed}"
PLAIN_FORMAT = "{label} {amount}, {speed}"


def megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


class ByteProgress:
    """Bytes done of total and the transfer rate on stderr; ``enabled=False`` is silent."""

    def __init__(
        self,
        label: str,
        total: int | None,
        done: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label = label
        self.total = total
        self.done = done
        self._clock = clock
        self._started = clock()
        self._start_bytes = done
        self._bar = None
        if enabled:
            self._bar = LineBar(total=total, initial=done, fields=self._fields,
                                stream=stream or sys.stderr, clock=clock,
                                terminal_format=TERMINAL_FORMAT, plain_format=PLAIN_FORMAT,
                                unit="B")

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.finish()

    def line(self) -> str:
        return PLAIN_FORMAT.format(**self._fields())

    def _fields(self) -> dict[str, str]:
        elapsed = max(self._clock() - self._started, 1e-6)
        rate = (self.done - self._start_bytes) / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            amount = f"{share:4.0%} {megabytes(self.done)} / {megabytes(self.total)}"
        else:
            amount = megabytes(self.done)
        return {"label": self.label, "amount": amount, "speed": f"{megabytes(rate)}/s"}
