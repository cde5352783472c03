"""Retry timing, the websocket's reopen backoff and wall-clock deadlines, shared by both clients."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from runner.events import ConnectionNote

# Statuses worth another try: rate limiting and the server (or a proxy in front of it) in trouble.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits ``uniform(0.5, 1) * min(max, base * 2**n)``."""

    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        return min(self.max_delay, self.base_delay * (2**attempt)) * random.uniform(0.5, 1.0)


class Deadline:
    """A wall-clock deadline; ``None`` seconds means no deadline."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def cap(self, seconds: float) -> float:
        remaining = self.remaining()
        return seconds if remaining is None else min(seconds, remaining)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or in HTTP-date form (our own backoff then)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class SocketBackoff:
    """When the websocket may be (re)opened, and which changes of its state are worth a note.

    The first failure to open is reported (``unavailable``: the client polls ``/history`` meanwhile),
    later ones are not; a reopen after a working socket is ``reconnected``; a socket that breaks is
    ``lost``. Attempts are spaced by the retry policy's backoff.
    """

    def __init__(self, retry: RetryPolicy) -> None:
        self.retry = retry
        self.failures = 0
        self.next_attempt = 0.0
        self.ever_open = False

    def may_open(self) -> bool:
        return time.monotonic() >= self.next_attempt

    def pause(self, timeout: float) -> float:
        """How long to wait, at most ``timeout``, while the socket is closed."""
        until_next = max(0.0, self.next_attempt - time.monotonic())
        return max(0.0, min(timeout, until_next or timeout))

    def opened(self) -> ConnectionNote | None:
        reconnected = self.ever_open
        self.ever_open = True
        self.failures = 0
        return ConnectionNote(prompt_id="", state="reconnected") if reconnected else None

    def open_failed(self, detail: str) -> ConnectionNote | None:
        self.failures += 1
        self.next_attempt = time.monotonic() + self.retry.delay(min(self.failures - 1, 5))
        if self.failures == 1:
            return ConnectionNote(prompt_id="", state="unavailable", detail=f"{detail}; polling /history")
        return None

    def lost(self, detail: str) -> ConnectionNote:
        self.failures = 1
        self.next_attempt = time.monotonic() + self.retry.delay(0)
        return ConnectionNote(prompt_id="", state="lost", detail=detail)
