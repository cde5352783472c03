"""Two ComfyUI clients over one protocol core: ``ComfyClient`` (blocking) and ``AsyncComfyClient`` (asyncio).

What makes them safe to build a CLI, a bot or a web backend on:

* every network operation has a timeout (HTTP connect/read, websocket open/recv/close), and a run
  has an optional wall-clock deadline, so nothing waits forever on a stalled socket;
* idempotent requests are retried with exponential backoff and jitter on connection errors, 5xx
  and 429, honouring ``Retry-After``; ``POST /prompt`` is made idempotent by sending our own
  ``prompt_id`` and checking ``/queue`` + ``/history`` before re-posting, so a retry never queues
  the same work twice;
* the websocket is opened before the prompt is posted (frames can arrive before the POST reply)
  and frames for prompts not being watched are buffered; when the socket fails the client
  reconnects with backoff and meanwhile polls ``/history`` (completion can be announced before the
  history entry exists, and a late socket may never see the end); a prompt that vanished from both
  ``/queue`` and ``/history`` is reported instead of waited for;
* cancelling touches only our own prompt: it is deleted from the queue and interrupted by id.

The token, when given, is sent as ``Authorization: Bearer ...`` on HTTP and on the websocket
handshake and is never logged or shown in ``repr``.

All of that is decided once, in steps that do no I/O (generators yielding the actions of
:mod:`~runner.client.actions`); each client is a thin transport that performs them. Modules, one job
each (imports run downwards):

* :mod:`~runner.client.comfy` - :class:`ComfyClient`: requests + the websockets sync client;
* :mod:`~runner.client.aio` - :class:`AsyncComfyClient`: httpx2 + the websockets asyncio client
  (:mod:`~runner.client.aio_http`, :mod:`~runner.client.aio_ws`), loaded on first use;
* :mod:`~runner.client.http`, :mod:`~runner.client.ws` - the blocking transport's HTTP and websocket;
* :mod:`~runner.client.drive` - the loops that run steps, blocking or awaited;
* :mod:`~runner.client.base` - the settings and identity both clients share;
* :mod:`~runner.client.outputs` - downloading a finished prompt's outputs and its manifest;
* :mod:`~runner.client.protocol` - submit and watch (the history race, socket loss, deadlines);
* :mod:`~runner.client.endpoints` - the plain endpoints, request retries, cancelling by id;
* :mod:`~runner.client.tracker` - one prompt's messages -> typed events, completion noticed;
* :mod:`~runner.client.messages` - websocket frames (text and binary) -> plain dicts;
* :mod:`~runner.client.results` - POST replies, finished runs and their problems as lines;
* :mod:`~runner.client.actions` - what the core asks of a transport, and the answers;
* :mod:`~runner.client.retry` - backoff policies and deadlines; :mod:`~runner.client.urls` - URLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.client.comfy import ComfyClient
from runner.client.results import (
    RunResult,
    SubmitResult,
    describe_execution_error,
    is_out_of_memory,
    validation_lines,
)
from runner.client.retry import Deadline, RetryPolicy
from runner.client.urls import DEFAULT_SERVER, normalise_server, websocket_url

if TYPE_CHECKING:
    from runner.client.aio import AsyncComfyClient

__all__ = [
    "DEFAULT_SERVER",
    "AsyncComfyClient",
    "ComfyClient",
    "Deadline",
    "RetryPolicy",
    "RunResult",
    "SubmitResult",
    "describe_execution_error",
    "is_out_of_memory",
    "normalise_server",
    "validation_lines",
    "websocket_url",
]


def __getattr__(name: str) -> Any:
    # The asyncio client pulls in asyncio, httpx2 and the websockets asyncio client (a few hundred
    # ms); only programs that use it pay for that.
    if name == "AsyncComfyClient":
        from runner.client.aio import AsyncComfyClient

        return AsyncComfyClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
