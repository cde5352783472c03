"""The blocking websocket of :class:`runner.ComfyClient`: one ``/ws`` connection, reopened with backoff."""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect as ws_connect

from runner.client.messages import FEATURE_FLAGS
from runner.client.retry import RetryPolicy, SocketBackoff
from runner.events import ConnectionNote

log = logging.getLogger(__name__)

# Options both websocket clients open the socket with: big frames (images), no compression.
SOCKET_OPTIONS: dict[str, Any] = {"close_timeout": 1.0, "ping_interval": 20, "ping_timeout": 20,
                                  "max_size": 64 * 1024 * 1024, "compression": None}
OPEN_ERRORS = (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed)


def auth_headers(token: str | None) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {token}"} if token else None


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
        self.enabled = enabled
        self.backoff = SocketBackoff(retry)
        self._ws: Any = None

    def open(self) -> ConnectionNote | None:
        """Open the socket if it is closed and the backoff allows; returns a note when state changed."""
        if self._ws is not None or not self.enabled or not self.backoff.may_open():
            return None
        try:
            self._ws = ws_connect(self.url, additional_headers=auth_headers(self._token),
                                  open_timeout=self.connect_timeout, **SOCKET_OPTIONS, **_ws_connect_kwargs())
            # Ask for image frames that name their node and prompt (servers without the feature ignore it).
            self._ws.send(FEATURE_FLAGS)
        except OPEN_ERRORS as exc:
            self.close()
            log.debug("websocket unavailable: %s", type(exc).__name__)
            return self.backoff.open_failed(type(exc).__name__)
        return self.backoff.opened()

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
            time.sleep(self.backoff.pause(timeout))
            return None, note
        try:
            return self._ws.recv(timeout=max(0.0, timeout)), note
        except TimeoutError:
            return None, note
        except (ConnectionClosed, OSError) as exc:
            self.close()
            return None, self.backoff.lost(type(exc).__name__)
