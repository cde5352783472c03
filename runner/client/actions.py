"""What the protocol core asks a transport to do, and what the transport answers.

The core (:mod:`~runner.client.endpoints`, :mod:`~runner.client.protocol`) is written as generators
that ``yield`` these actions and receive the outcome back; they never touch a socket. A transport
performs each action with its own I/O library: :class:`runner.ComfyClient` with requests and the
websockets sync client, :class:`runner.AsyncComfyClient` with httpx2 and the websockets asyncio
client (see :mod:`~runner.client.drive`). So timeouts, retries, the history race and the socket
fallback are written once and behave the same in both clients.

A transport answers each action with a value, never an exception, for everything the network can do
wrong (a failed connection is :class:`Unreachable`, not a raised ``ConnectionError``), so the core
decides what is transient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class Send:
    """One HTTP request. ``files`` maps a form field to a local file, read afresh for each attempt."""

    method: str
    path: str
    timeout: float
    connect_timeout: float
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, Path] | None = None


@dataclass
class Reply:
    """An HTTP response with its whole body read (ComfyUI's JSON replies are small)."""

    status_code: int
    reason: str
    headers: Mapping[str, str]
    content: bytes = b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.content)


@dataclass(frozen=True)
class Unreachable:
    """The request never got an answer: refused, reset, timed out. ``detail`` names the failure."""

    detail: str


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class OpenSocket:
    """Open the websocket if it is closed and its backoff allows; answered with a note or None."""


@dataclass(frozen=True)
class Receive:
    """Wait up to ``timeout`` seconds for one websocket message about ``prompt_id`` (or about no prompt);
    answered with ``(parsed message or None, ConnectionNote or None)``. The transport parses and routes
    frames with :meth:`ComfyProtocol.route`."""

    timeout: float
    prompt_id: str


@dataclass(frozen=True)
class Download:
    """Stream ``GET /view`` to ``target`` through a temporary file beside it, renamed when complete."""

    params: Mapping[str, str]
    target: Path
    timeout: float
    connect_timeout: float


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str


@dataclass(frozen=True)
class StreamBroken:
    """The download's body broke off mid-way (the partial file was removed)."""

    detail: str


@dataclass(frozen=True)
class WriteFailed:
    """The local file could not be written (the partial file was removed)."""

    path: Path
    detail: str


Action = Union[Send, Sleep, OpenSocket, Receive, Download]
SendOutcome = Union[Reply, Unreachable]
DownloadOutcome = Union[Downloaded, Reply, Unreachable, StreamBroken, WriteFailed]
