"""Cancelling the task that awaits a run is never lost, even when a message arrives at that moment.

On Python 3.11, ``asyncio.wait_for`` returns the awaited item when the outer task is cancelled as
the item arrives, and the cancellation is dropped; a run cancelled during a busy stretch of
progress messages then went on to the end (seen as a bot's cancelled job finishing 'done').
"""

from __future__ import annotations

import asyncio

import pytest

from runner.client.aio_ws import AsyncEventSocket
from runner.client.protocol import ComfyProtocol


def test_a_cancel_as_a_message_arrives_still_cancels():
    async def scenario() -> None:
        protocol = ComfyProtocol("http://127.0.0.1:9", use_websocket=False)
        socket = AsyncEventSocket("ws://127.0.0.1:9/ws", None, protocol, connect_timeout=1.0)
        socket.watch("p")
        receiving = asyncio.ensure_future(socket.receive("p", timeout=5.0))
        await asyncio.sleep(0)                              # it now waits on the prompt's inbox
        socket._inboxes["p"].put_nowait(({"type": "progress"}, None))  # a frame arrives...
        receiving.cancel()                                  # ...in the same turn as the cancel
        with pytest.raises(asyncio.CancelledError):
            await receiving

    asyncio.run(scenario())


def test_receive_still_times_out_and_returns_messages():
    async def scenario() -> None:
        protocol = ComfyProtocol("http://127.0.0.1:9", use_websocket=False)
        socket = AsyncEventSocket("ws://127.0.0.1:9/ws", None, protocol, connect_timeout=1.0)
        socket.watch("p")
        assert await socket.receive("p", timeout=0.01) == (None, None)
        later = asyncio.get_running_loop().call_later(0.01, socket._inboxes["p"].put_nowait, ("m", None))
        assert await socket.receive("p", timeout=5.0) == ("m", None)
        later.cancel()

    asyncio.run(scenario())
