"""Progress line on stderr: frames done / total, frames per second and time left.

On a terminal the line is redrawn in place (at most a few times a second); when stderr is a
file or pipe a plain line is printed every few seconds instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

#: Seconds between redraws on a terminal, and between lines when not on one.
TTY_INTERVAL_S = 0.25
PLAIN_INTERVAL_S = 5.0


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class ProgressReporter:
    """Counts frames and draws the progress line; ``enabled=False`` makes it silent."""

    total: int | None
    total_is_estimate: bool = False
    enabled: bool = True
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    done: int = 0

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._last_draw = float("-inf")
        self._is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def advance(self, frames: int = 1) -> None:
        self.done += frames
        now = self.clock()
        interval = TTY_INTERVAL_S if self._is_tty else PLAIN_INTERVAL_S
        if self.enabled and now - self._last_draw >= interval:
            self._draw(now)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        self._draw(self.clock(), final=True)

    def line(self, now: float | None = None) -> str:
        """The text of the progress line at time ``now``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        fps = self.done / elapsed
        total = self.total
        if total is not None and self.done > total:
            total = None  # the estimate was low: stop pretending to know the end
        if total:
            mark = "~" if self.total_is_estimate else ""
            percent = min(100.0, 100.0 * self.done / total)
            text = f"frames {self.done}/{mark}{total} ({percent:.0f}%)"
        else:
            text = f"frames {self.done}"
        text += f", {fps:.2f} fps"
        if total and fps > 0 and self.done < total:
            text += f", ETA {format_duration((total - self.done) / fps)}"
        else:
            text += f", elapsed {format_duration(elapsed)}"
        return text

    def _draw(self, now: float, final: bool = False) -> None:
        self._last_draw = now
        text = self.line(now)
        if self._is_tty:
            end = "\n" if final else ""
            self.stream.write("\r\x1b[2K" + text + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True
