"""Progress over the whole batch on stderr: videos done of total, fps over all workers, ETA.

Drawn by the shared tqdm bar of :mod:`colorize.progress`; the bar counts frames (that is what the
rate and the time left are made of), the words add the videos.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from colorize.progress import LineBar, time_left

TERMINAL_FORMAT = "videos {videos} |{bar}| frames {frames}, {speed}, {time_left}"
PLAIN_FORMAT = "videos {videos}, frames {frames}, {speed}, {time_left}"


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
        self._bar = None
        if self.enabled:
            self._bar = LineBar(total=self.total_frames, fields=self._fields, stream=self.stream,
                                clock=self.clock, terminal_format=TERMINAL_FORMAT,
                                plain_format=PLAIN_FORMAT, unit="frame")

    def add_frames(self, count: int) -> None:
        self.frames += count
        if self._bar is not None:
            self._bar.update(count)

    def video_finished(self, status: str, frames: int = 0) -> None:
        if status == "skipped":
            self.skipped += 1
            self.skipped_frames += frames
        elif status == "failed":
            self.failed += 1
        self.done += 1
        if self._bar is not None:
            if self.total_frames is not None:
                # A skipped video's frames are not work to do: the bar and the ETA leave them out.
                self._bar.total = max(0, self.total_frames - self.skipped_frames)
            self._bar.refresh()

    def line(self, now: float | None = None) -> str:
        return PLAIN_FORMAT.format(**self._fields(now))

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.finish()

    def abandon(self) -> None:
        """The batch failed: end the line as it stands (see :meth:`LineBar.abandon`)."""
        if self._bar is not None:
            self._bar.abandon()

    def _fields(self, now: float | None = None) -> dict[str, str]:
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        fps = self.frames / elapsed
        videos = f"{self.done}/{self.videos}"
        notes = [f"{n} {what}" for n, what in ((self.failed, "failed"), (self.skipped, "skipped"))
                 if n]
        if notes:
            videos += f" ({', '.join(notes)})"
        remaining = None
        if self.total_frames is not None and self.done < self.videos:
            remaining = max(0, self.total_frames - self.skipped_frames - self.frames)
        return {"videos": videos, "frames": str(self.frames), "speed": f"{fps:.2f} fps",
                "time_left": time_left(remaining, fps, elapsed)}
