"""``ComfyClient``: a small, race-safe HTTP + WebSocket client for one ComfyUI server.

What makes it safe to build a CLI, a bot or a web backend on:

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
handshake and is never logged or shown in ``repr``. The client is not thread-safe: use one
client per thread (they are cheap).

Modules, one job each (imports run downwards):

* :mod:`~runner.client.comfy` - :class:`ComfyClient`: submit, watch (websocket + history polling), wait, run;
* :mod:`~runner.client.endpoints` - the plain endpoints (queue, history, uploads) and cancelling by id;
* :mod:`~runner.client.http` - HTTP requests with timeouts and retries;
* :mod:`~runner.client.ws` - the websocket connection and its reconnect backoff;
* :mod:`~runner.client.tracker` - one prompt's messages -> typed events, completion noticed;
* :mod:`~runner.client.messages` - websocket frames (text and binary) -> plain dicts;
* :mod:`~runner.client.results` - POST replies, finished runs and their problems as lines;
* :mod:`~runner.client.retry` - backoff policy and deadlines.
"""

from __future__ import annotations

from runner.client.comfy import ComfyClient
from runner.client.http import DEFAULT_SERVER, normalise_server
from runner.client.results import (
    RunResult,
    SubmitResult,
    describe_execution_error,
    is_out_of_memory,
    validation_lines,
)
from runner.client.retry import Deadline, RetryPolicy
from runner.client.ws import websocket_url

__all__ = [
    "DEFAULT_SERVER",
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
