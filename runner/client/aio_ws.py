"""The websocket of :class:`runner.AsyncComfyClient`: one ``/ws`` connection shared by every run of the client.

One reader task per open socket reads the frames and hands each to the watch it belongs to
(:meth:`ComfyProtocol.route` decides; frames of prompts nobody watches go to the backlog, frames that
name no prompt go to every watch), so any number of runs can be followed at once on one event loop,
without a thread. When the socket breaks, every watch is told (``lost``) and the next receive reopens
it, no more often than the backoff allows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from runner.client.messages import FEATURE_FLAGS
from runner.client.protocol import ComfyProtocol
from runner.client.retry import SocketBackoff
from runner.client.ws import OPEN_ERRORS, SOCKET_OPTIONS, auth_headers
from runner.events import ConnectionNote

log = logging.getLogger(__name__)


class AsyncEventSocket:
    """The shared websocket; :meth:`receive` waits for the next message of one watched prompt."""

    def __init__(self, url: str, token: str | None, protocol: ComfyProtocol, *, connect_timeout: float) -> None:
        self.url = url
        self._token = token
        self._protocol = protocol
        self.connect_timeout = connect_timeout
        self.backoff = SocketBackoff(protocol.retry)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        # One inbox per watched prompt: (parsed message, None) or (None, note).
        self._inboxes: dict[str, asyncio.Queue[tuple[Any, ConnectionNote | None]]] = {}
        # A loss while nobody watched: the next watch is told, its prompt's frames may be gone.
        self._unreported_loss: str | None = None

    def watch(self, prompt_id: str) -> None:
        """Start routing ``prompt_id``'s frames to it (call before its backlog is read)."""
        inbox = self._inboxes.setdefault(prompt_id, asyncio.Queue())
        if self._unreported_loss is not None:
            inbox.put_nowait((None, ConnectionNote(prompt_id="", state="lost", detail=self._unreported_loss)))
            self._unreported_loss = None

    def unwatch(self, prompt_id: str) -> None:
        self._inboxes.pop(prompt_id, None)

    async def open(self) -> ConnectionNote | None:
        """Open the socket if it is closed and the backoff allows; returns a note when state changed."""
        if not self._protocol.use_websocket:
            return None
        async with self._opening:
            if self._ws is not None or not self.backoff.may_open():
                return None
            try:
                ws = await connect(self.url, additional_headers=auth_headers(self._token),
                                   open_timeout=self.connect_timeout, proxy=None, **SOCKET_OPTIONS)
                # Ask for image frames that name their node and prompt (servers without the feature ignore it).
                await ws.send(FEATURE_FLAGS)
            except OPEN_ERRORS as exc:
                log.debug("websocket unavailable: %s", type(exc).__name__)
                return self.backoff.open_failed(type(exc).__name__)
            self._ws = ws
            self._reader = asyncio.ensure_future(self._read(ws))
            return self.backoff.opened()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                message, owner = self._protocol.route(frame, self._inboxes)
                if message is None:
                    continue
                targets = [self._inboxes[owner]] if owner is not None else list(self._inboxes.values())
                for inbox in targets:
                    inbox.put_nowait((message, None))
            detail = "ConnectionClosedOK"
        except (ConnectionClosed, OSError) as exc:
            detail = type(exc).__name__
        if self._ws is ws:  # not closed by us
            self._ws = None
            self.backoff.lost(detail)
            for inbox in self._inboxes.values():
                inbox.put_nowait((None, ConnectionNote(prompt_id="", state="lost", detail=detail)))
            if not self._inboxes:
                self._unreported_loss = detail

    async def receive(self, prompt_id: str, timeout: float) -> tuple[Any, ConnectionNote | None]:
        """The next message for ``prompt_id`` (or None after ``timeout``), plus a note if the socket changed."""
        inbox = self._inboxes.setdefault(prompt_id, asyncio.Queue())
        if not inbox.empty():
            return inbox.get_nowait()
        note = await self.open()
        if note is not None:
            return None, note
        if self._ws is None and self._protocol.use_websocket:
            timeout = self.backoff.pause(timeout)  # wake up when the socket may be reopened
        # Not asyncio.wait_for: on Python 3.11 it returns the item when the awaiting task is
        # cancelled just as the item arrives, and the cancellation is lost, so a cancelled run
        # would go on. asyncio.wait leaves the cancellation to the task.
        getter = asyncio.ensure_future(inbox.get())
        try:
            done, _ = await asyncio.wait({getter}, timeout=max(0.0, timeout))
        finally:
            if not getter.done():
                getter.cancel()
        return getter.result() if getter in done else (None, None)

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                await ws.close()
            except Exception:  # closing a broken socket can fail in many ways; it is gone either way
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
            self._reader = None
