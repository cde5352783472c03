"""Progress over the whole batch on stderr: videos done of total, fps over all workers, ETA."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from colorize.progress import PLAIN_INTERVAL_S, TTY_INTERVAL_S, format_duration


@dataclass
class BatchProgress:
    videos: int
    total_frames: int | None = None      # None when some frame counts are unknown
    enabled: bool = True
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    skipped_frames: int = 0

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._last = float("-inf")
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def add_frames(self, count: int) -> None:
        self.frames += count
        self._maybe_draw()

    def video_finished(self, status: str, frames: int = 0) -> None:
        if status == "skipped":
            self.skipped += 1
            self.skipped_frames += frames
        elif status == "failed":
            self.failed += 1
        self.done += 1
        self._maybe_draw(force=not self._tty)

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        fps = self.frames / elapsed
        text = f"videos {self.done}/{self.videos}"
        notes = [f"{n} {what}" for n, what in ((self.failed, "failed"), (self.skipped, "skipped"))
                 if n]
        if notes:
            text += f" ({', '.join(notes)})"
        text += f", frames {self.frames}, {fps:.2f} fps"
        remaining = None
        if self.total_frames is not None:
            remaining = max(0, self.total_frames - self.skipped_frames - self.frames)
        if self.done < self.videos and remaining and fps > 0:
            text += f", ETA {format_duration(remaining / fps)}"
        else:
            text += f", elapsed {format_duration(elapsed)}"
        return text

    def finish(self) -> None:
        if self.enabled:
            self._draw(final=True)

    def _maybe_draw(self, force: bool = False) -> None:
        now = self.clock()
        interval = TTY_INTERVAL_S if self._tty else PLAIN_INTERVAL_S
        if self.enabled and (force or now - self._last >= interval):
            self._draw()

    def _draw(self, final: bool = False) -> None:
        self._last = self.clock()
        text = self.line(self._last)
        if self._tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
