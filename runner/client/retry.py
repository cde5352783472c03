"""Retry timing and wall-clock deadlines, shared by the HTTP and websocket sides of the client."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


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
