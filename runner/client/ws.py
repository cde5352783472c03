"""The websocket side of the client: one ``/ws`` connection, reopened with backoff when it fails."""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect as ws_connect

from runner.client.messages import FEATURE_FLAGS
from runner.client.retry import RetryPolicy
from runner.events import ConnectionNote

log = logging.getLogger(__name__)


def websocket_url(server: str, client_id: str) -> str:
    """The ``/ws`` URL at the same base (and path prefix) as ``server``."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", f"clientId={client_id}", ""))


def _ws_connect_kwargs() -> dict[str, Any]:
    """Options that differ between websockets releases (13 .. 17)."""
    params = inspect.signature(ws_connect).parameters
    extra: dict[str, Any] = {}
    if "legacy" in params:
        extra["legacy"] = True  # plain connection object, we manage reconnects ourselves
    if "proxy" in params:
        extra["proxy"] = None
    return extra


class EventSocket:
    """A websocket to ``url`` that is (re)opened on demand, never more often than the backoff allows.

    Failures are not raised: :meth:`open` and :meth:`receive` return a :class:`ConnectionNote` when
    the connection changed (unavailable, lost, reconnected), and the caller falls back to polling.
    When ``enabled`` is false nothing is opened and :meth:`receive` just waits.
    """

    def __init__(self, url: str, token: str | None, *, connect_timeout: float, retry: RetryPolicy,
                 enabled: bool = True) -> None:
        self.url = url
        self._token = token
        self.connect_timeout = connect_timeout
        self.retry = retry
        self.enabled = enabled
        self._ws: Any = None
        self._failures = 0
        self._next_attempt = 0.0
        self._ever_open = False

    def open(self) -> ConnectionNote | None:
        """Open the socket if it is closed and the backoff allows; returns a note when state changed."""
        if self._ws is not None or not self.enabled or time.monotonic() < self._next_attempt:
            return None
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            self._ws = ws_connect(
                self.url, additional_headers=headers,
                open_timeout=self.connect_timeout, close_timeout=1.0, ping_interval=20, ping_timeout=20,
                max_size=64 * 1024 * 1024, compression=None, **_ws_connect_kwargs(),
            )
            # Ask for image frames that name their node and prompt (servers without the feature ignore it).
            self._ws.send(FEATURE_FLAGS)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as exc:
            self.close()
            self._failures += 1
            self._next_attempt = time.monotonic() + self.retry.delay(min(self._failures - 1, 5))
            log.debug("websocket unavailable: %s", type(exc).__name__)
            if self._failures == 1:
                return ConnectionNote(prompt_id="", state="unavailable", detail=f"{type(exc).__name__}; polling /history")
            return None
        reconnected = self._ever_open
        self._ever_open = True
        self._failures = 0
        return ConnectionNote(prompt_id="", state="reconnected") if reconnected else None

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # closing a broken socket can fail in many ways; it is gone either way
                pass
            self._ws = None

    def receive(self, timeout: float) -> tuple[Any, ConnectionNote | None]:
        """One websocket message (or None after ``timeout``), plus a note if the socket changed."""
        note = self.open()
        if self._ws is None:
            time.sleep(max(0.0, min(timeout, max(0.0, self._next_attempt - time.monotonic()) or timeout)))
            return None, note
        try:
            return self._ws.recv(timeout=max(0.0, timeout)), note
        except TimeoutError:
            return None, note
        except (ConnectionClosed, OSError) as exc:
            self.close()
            self._failures = 1
            self._next_attempt = time.monotonic() + self.retry.delay(0)
            return None, ConnectionNote(prompt_id="", state="lost", detail=type(exc).__name__)
