"""How a download behaves: progress display, expected checksum, retries and timeouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class DownloadOptions:
    """How downloads behave; the defaults suit an interactive first run."""

    progress: bool = True
    progress_stream: TextIO | None = None  # None: sys.stderr at the time of the download
    expected_sha256: str | None = None  # beats the pinned value and the manifest record
    # Further tries per source after a transient failure (timeout, HTTP 5xx, cut connection).
    # A host name that does not resolve or a refused connection is never retried.
    resume_attempts: int = 3
    retry_delay_s: float = 1.0  # grows linearly with each retry
    connect_timeout_s: float = 15.0
    read_timeout_s: float = 60.0
    chunk_size: int = 1024 * 1024
