"""Progress on stderr, drawn by tqdm: the frames of one run, and the shared bar the others use.

tqdm does the drawing: the throttling, the bar redrawn in place on a terminal at the terminal's
width, and the final line. We give it the words (``frames 60/224 (27%), 2.00 fps, ETA 1:22``), so
the text stays the one the docs show. When stderr is a file or pipe, :class:`LineBar` prints a
whole plain line every few seconds instead of redrawing, so logs stay readable.

Rates and times left count only the work this run does: after ``--resume`` the frames an earlier
run finished are shown as done but are not counted as done in no time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from tqdm import tqdm

#: Seconds between redraws on a terminal, and between lines when not on one.
TTY_INTERVAL_S = 0.25
PLAIN_INTERVAL_S = 5.0

FRAMES_TERMINAL_FORMAT = "frames {count} |{bar}| {speed}, {time_left}"
FRAMES_PLAIN_FORMAT = "frames {count}, {speed}, {time_left}"


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_left(remaining: float | None, rate: float, elapsed: float) -> str:
    """``ETA 0:40`` while the end can be predicted, else ``elapsed 1:15``."""
    if remaining and rate > 0:
        return f"ETA {format_duration(remaining / rate)}"
    return f"elapsed {format_duration(elapsed)}"


def is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class LineBar(tqdm):
    """A tqdm bar whose words come from ``fields()`` (placeholders of the two formats).

    On a terminal tqdm redraws ``terminal_format`` in place (``{bar}`` is its bar); elsewhere each
    refresh prints ``plain_format`` as a line of its own, at most every ``PLAIN_INTERVAL_S``.
    ``finish()`` draws the final state and ends the line. Average rates only (no smoothing), so
    the figures are those of the whole run.
    """

    #: tqdm's monitor thread wakes bars that stall between updates; ours draw when they count.
    monitor_interval = 0

    def __init__(self, *, total: float | None, fields: Callable[[], dict[str, str]],
                 terminal_format: str, plain_format: str, stream: TextIO,
                 clock: Callable[[], float], initial: float = 0, **options: Any) -> None:
        self._fields = fields
        self._plain = not is_terminal(stream)
        self._printed_n: float | None = None
        self._finished = False
        interval = PLAIN_INTERVAL_S if self._plain else TTY_INTERVAL_S
        super().__init__(
            total=total, initial=initial, file=stream, leave=True, smoothing=0, miniters=1,
            mininterval=interval, delay=interval if self._plain else 0,
            bar_format=plain_format if self._plain else terminal_format,
            # One bar at a time, always on its own line (position 0).
            dynamic_ncols=not self._plain, position=0, **options,
        )
        # tqdm reads its clock through ``_time``; its own test suite swaps it the same way.
        self._time = clock
        self.start_t = self.last_print_t = clock()

    @property
    def format_dict(self) -> dict[str, Any]:
        values = super().format_dict
        values.update(self._fields())
        return values

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if not self._plain:
            return super().display(msg, pos)
        if msg == "":
            return False  # tqdm clears a closed bar with an empty message; a log keeps its lines
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        self._printed_n = self.n
        return True

    def start_from(self, count: float) -> None:
        """Count ``count`` as done before this run started: shown, but not part of the rate."""
        self.n = self.initial = self.last_print_n = count

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.disable:
            return
        self._finished = True
        if self._plain:
            if self._printed_n != self.n:  # the last line printed may already be the final state
                self.refresh()
            self.leave = False  # the line is written; closing must not write another
        self.close()

    def abandon(self) -> None:
        """End the bar where it stands (its run failed): a terminal's line is ended so that the
        error starts a line of its own; a log gets nothing more."""
        if self.disable:
            return
        self._finished = True
        self.leave = not self._plain
        self.close()

    def close(self) -> None:
        # A bar dropped without finish() (its run failed and the error is printed already) is
        # closed by tqdm when it is collected: it must not draw itself again under the error.
        if not getattr(self, "_finished", True):
            self.leave = False
        super().close()


@dataclass
class ProgressReporter:
    """Counts frames; shows frames done / total, fps and time left (``enabled=False``: silent)."""

    total: int | None
    total_is_estimate: bool = False
    enabled: bool = True
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    done: int = 0

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._earlier = 0
        self._bar = None
        if self.enabled:
            self._bar = LineBar(total=self.total, fields=self._fields, stream=self.stream,
                                clock=self.clock, terminal_format=FRAMES_TERMINAL_FORMAT,
                                plain_format=FRAMES_PLAIN_FORMAT, unit="frame")

    def resume_from(self, frames: int) -> None:
        """Frames an earlier run finished (``--resume``): counted as done, not in fps or ETA."""
        self.done += frames
        self._earlier = self.done
        if self._bar is not None:
            self._bar.start_from(self.done)

    def advance(self, frames: int = 1) -> None:
        self.done += frames
        if self._bar is not None:
            self._bar.update(frames)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self._bar is not None:
            self._bar.finish()

    def abandon(self) -> None:
        """The run failed: end the line as it stands (see :meth:`LineBar.abandon`)."""
        if self._bar is not None:
            self._bar.abandon()

    def line(self, now: float | None = None) -> str:
        """The plain text of the progress line at time ``now``."""
        return FRAMES_PLAIN_FORMAT.format(**self._fields(now))

    def _fields(self, now: float | None = None) -> dict[str, str]:
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        fps = (self.done - self._earlier) / elapsed
        total = self.total
        if total is not None and self.done > total:
            total = None  # the estimate was low: stop pretending to know the end
        if total:
            mark = "~" if self.total_is_estimate else ""
            percent = min(100.0, 100.0 * self.done / total)
            count = f"{self.done}/{mark}{total} ({percent:.0f}%)"
        else:
            count = f"{self.done}"
        remaining = total - self.done if total else None
        return {"count": count, "speed": f"{fps:.2f} fps",
                "time_left": time_left(remaining, fps, elapsed)}
