"""Frame streams around the model: a background thread with a bounded queue (decode ahead,
compute ahead of the caller's encode) and a one-frame lookahead (the last frame is known when
it arrives)."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

import numpy as np


class Background:
    """Runs an iterator in a daemon thread, handing items over through a bounded queue.

    Exceptions are re-raised in the consumer; closing stops the producer at its next item.
    """

    _DONE = object()

    def __init__(self, source: Iterable, depth: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(source),), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, iterator: Iterator) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put((False, error))
            return
        self._put((True, self._DONE))

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        try:
            while True:
                ok, item = self._queue.get()
                if not ok:
                    raise item
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()


class Lookahead:
    """Pulls frames one ahead so that the last frame of a stream is known when it arrives."""

    def __init__(self, iterator: Iterator[np.ndarray]) -> None:
        self._iterator = iterator
        self._buffer: list[np.ndarray] = []
        self._done = False

    def _fill(self, count: int) -> None:
        while not self._done and len(self._buffer) < count:
            try:
                self._buffer.append(next(self._iterator))
            except StopIteration:
                self._done = True

    def unread(self, frames: list[np.ndarray]) -> None:
        """Put frames back in front, to run them again."""
        self._buffer = list(frames) + self._buffer

    def peek(self) -> np.ndarray | None:
        self._fill(1)
        return self._buffer[0] if self._buffer else None

    def take(self, count: int) -> list[np.ndarray]:
        # One extra frame is pulled so that exhausted() is exact for the chunk's last frame.
        self._fill(count + 1)
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken

    def exhausted(self) -> bool:
        return self._done and not self._buffer
